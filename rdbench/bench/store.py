"""ResultStore: the only writer of results. An append-only CSV, one line per finished item.

Each row is written as a single line and flushed at once, so a killed run loses at most the line
being written; opening the store again drops such a torn last line, and the run recomputes that
item. Rows are keyed by (image_sha256, codec, codec_version, quality, target) (`row_key`): a rerun
skips every key already stored. A lock file keeps two runs from writing one store.
"""

from __future__ import annotations

import csv
import fcntl
import io
import math
import os
import sys
from pathlib import Path

from rdbench.bench.columns import KEY, RESULT_NAMES, TEXT_COLUMNS
from rdbench.codecs.base import canonical_quality

COLUMNS = RESULT_NAMES  # the header, in order (bench/columns.py declares each)
RESULTS_FILE = "results.csv"


class StoreError(RuntimeError):
    pass


def quality_key(quality) -> str:
    """The quality as the store writes it: the text of `canonical_quality` (50, 50.0 and '50' are '50'; 0.5 is '0.5')."""
    return str(canonical_quality(quality))


def row_key(row: dict) -> tuple[str, str, str, str, str]:
    """The row's identity, in the order of columns.KEY. A target row (`rdbench run --target-bpp`)
    is one per image, codec, version and target, whatever quality its search found: its quality
    is left out of the key."""
    target = row.get("target") or ""
    if isinstance(target, float):  # pandas' NaN for an empty cell
        target = ""
    quality = "" if target else quality_key(row["quality"])
    return (row["image_sha256"], row["codec"], row["codec_version"], quality, target)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value)  # round-trips exactly
    # one physical line per row, whatever an error message contains
    return str(value).replace("\r", " ").replace("\n", " | ")


class ResultStore:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / RESULTS_FILE
        self._file = None
        self._lock = None
        self._size = 0  # bytes of results.csv that hold whole lines
        self._failed = False  # a write failed: close() does not report the same fault again
        self.rows: list[dict] = []
        self.dropped_lines = 0

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> "ResultStore":
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.directory / ".results.lock", "w")
        except OSError as exc:  # a read-only or full folder: say so, naming it
            raise StoreError(f"{exc.filename or self.directory}: cannot open the result store: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{self.directory}: another rdbench run is writing this result store") from None
        try:
            self.rows = self._read_and_repair()
            # unbuffered: a row is on its way to the disk when append returns, and a failed write
            # leaves nothing behind in a buffer for close() to fail on again
            self._file = open(self.path, "ab", buffering=0)
            self._size = self._file.tell()
            if self._size == 0:
                self._write((",".join(COLUMNS) + "\n").encode())
        except BaseException as exc:
            self._failed = True
            self.close()  # a refused file must not leave the store locked for a retry
            if isinstance(exc, OSError):
                raise StoreError(f"{exc.filename or self.path}: cannot open the result store: {exc.strerror or exc}") from None
            raise
        return self

    def _read_and_repair(self) -> list[dict]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            # a torn last line from a killed run: drop it, the item will be recomputed
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
            self.dropped_lines += 1
        if not data:
            return []
        try:
            reader = csv.reader(io.StringIO(data.decode("utf-8")))
            header = next(reader)
            rows, malformed = [], []
            for fields in reader:
                if len(fields) != len(header):
                    self.dropped_lines += 1
                    malformed.append(fields)
                    continue
                rows.append(dict(zip(header, fields)))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise StoreError(f"{self.path}: not a results file rdbench can read ({exc}); move it away to start "
                             "a new store") from exc
        if tuple(header) != COLUMNS:
            self._migrate(header, rows, malformed)
        if self.dropped_lines:
            print(f"{self.path}: ignored {self.dropped_lines} incomplete line(s) from an interrupted run", file=sys.stderr)
        return rows

    def _migrate(self, header: list[str], rows: list[dict], malformed: list[list[str]]) -> None:
        """Rewrite a store made with another column set into the current one, keeping every value.

        Lines with the wrong number of fields cannot be mapped to columns; rather than vanish with
        the rewrite they are kept, under the old header, in results.csv.rejected."""
        unknown = set(header) - set(COLUMNS)
        if unknown:
            raise StoreError(f"{self.path}: unknown columns {sorted(unknown)}; written by a newer rdbench?")
        if malformed:
            rejected = self.path.with_suffix(".csv.rejected")
            with open(rejected, "a", newline="", encoding="utf-8") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerows([header, *malformed])
                f.flush()
                os.fsync(f.fileno())
            print(f"{self.path}: {len(malformed)} malformed line(s) kept in {rejected}", file=sys.stderr)
        tmp = self.path.with_suffix(".csv.migrating")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(",".join(COLUMNS) + "\n")
            for row in rows:
                f.write(self._line(row))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # -- reading and writing ---------------------------------------------------------------
    def done_keys(self, include_failed: bool = True) -> set[tuple]:
        return {row_key(r) for r in self.rows if include_failed or r.get("status") == "ok"}

    @staticmethod
    def _line(row: dict) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([_cell(row.get(c)) for c in COLUMNS])
        return buf.getvalue()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._file.write(view):]  # a short write (the disk filling up) goes on, or raises
        self._size += len(data)

    def append(self, row: dict) -> None:
        if self._file is None:
            raise StoreError("store is not open")
        try:
            self._write(self._line(row).encode("utf-8"))
        except OSError as exc:
            # the disk full or turned read-only: take back the part of the line written, if the
            # disk lets us (otherwise the next open drops the torn line), and stop with the reason
            self._failed = True
            try:
                os.ftruncate(self._file.fileno(), self._size)
            except OSError:
                pass
            raise StoreError(
                f"{self.path}: cannot store a result row: {exc.strerror or exc}. The {len(self.rows)} rows stored "
                "are kept: free space or make the folder writable, then run the same command again to "
                "measure only what is missing") from None
        self.rows.append({c: _cell(row.get(c)) for c in COLUMNS})

    def close(self) -> None:
        try:
            if self._file:
                try:
                    os.fsync(self._file.fileno())
                except OSError as exc:
                    if not self._failed:  # else the write that failed is the error being reported
                        raise StoreError(f"{self.path}: cannot sync the rows to disk: {exc.strerror or exc}") from None
                finally:
                    self._file.close()
                    self._file = None
        finally:
            if self._lock:
                self._lock.close()
                self._lock = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()


def read_results(path: str | Path):
    """The rows of a results.csv (or of DIR/results.csv) as a DataFrame, latest row per key."""
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise StoreError(f"{path}: no such results file")
    try:
        df = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str))
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise StoreError(f"{path}: not a results file rdbench can read ({type(exc).__name__}: {exc})") from exc
    for column in ("target", "target_bound"):  # a store written before target rows existed
        if column not in df.columns:
            df[column] = pd.Series([None] * len(df), index=df.index, dtype=df["codec"].dtype)
    missing = [c for c in KEY if c not in df.columns]
    if missing:
        raise StoreError(f"{path}: not a results file: no column {', '.join(missing)}")
    # one row per key (row_key): a target row's quality is no part of its key
    keys = df[list(KEY)].astype(object).where(df[list(KEY)].notna(), "")
    keys.loc[keys["target"] != "", "quality"] = ""
    return df[~keys.duplicated(keep="last")].reset_index(drop=True)
