"""ResultStore: the only writer of results. An append-only CSV, one line per finished item.

Each row is written as a single line and flushed at once, so a killed run loses at most the line
being written; opening the store again drops such a torn last line, and the run recomputes that
item. Rows are keyed by (image_sha256, codec, codec_version, quality, target) (`row_key`): a rerun
skips every key already stored. A lock file keeps two runs from writing one store.

Opening a store reads it line by line and keeps only each row's key and status (planning needs
nothing else): a 300,000-row file costs tens of megabytes, not the gigabyte its rows as dicts
would. Rows are flushed to the operating system as they are written and synced to the disk when
the store closes; with `fsync=True` (`rdbench run --fsync`) every row is synced as it is written.
A write or sync that fails mid-run raises StoreWriteError (the command's exit status 5).
"""

from __future__ import annotations

import csv
import errno
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


class StoreWriteError(StoreError):
    """The disk or the store failed mid-run (full, read-only, I/O error): the rows stored before are kept."""


LOCK_FILE = ".results.lock"


def cut_torn_line(path: Path) -> bool:
    """Drop a torn last line (no final newline, left by a killed writer) from the file at `path`.

    Reads only the file's tail. Returns whether a line was cut; a missing file is left missing."""
    try:
        f = open(path, "r+b")
    except FileNotFoundError:
        return False
    with f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return False
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return False
        pos = end
        while pos > 0:  # back to the last newline, a block at a time
            start = max(pos - 65536, 0)
            f.seek(start)
            block = f.read(pos - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                pos = start + cut + 1
                break
            pos = start
        f.truncate(pos)
    return True


def open_lock(path: Path):
    """The lock file, opened for writing without following a symbolic link and without truncating
    (a link planted at its name must not lead rdbench to empty another file)."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{path}: the lock file is a symbolic link; remove it (rdbench never follows it)") from None
        raise
    return os.fdopen(fd, "r+b", buffering=0)


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
    def __init__(self, directory: str | Path, fsync: bool = False):
        self.directory = Path(directory)
        self.path = self.directory / RESULTS_FILE
        self.fsync = fsync  # sync every row to the disk as it is written (else: at close)
        self._file = None
        self._lock = None
        self._size = 0  # bytes of results.csv that hold whole lines
        self._failed = False  # a write failed: close() does not report the same fault again
        self.keys: dict[tuple, str] = {}  # row_key -> status of every row stored (the latest row of a key)
        self.count = 0  # rows in the file
        self.dropped_lines = 0

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> "ResultStore":
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = open_lock(self.directory / LOCK_FILE)
        except OSError as exc:  # a read-only or full folder: say so, naming it
            raise StoreError(f"{exc.filename or self.directory}: cannot open the result store: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{self.directory}: another rdbench run is writing this result store") from None
        try:
            self._read_and_repair()
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

    def _read_and_repair(self) -> None:
        """Cut a torn last line, then read every row's key and status (and nothing else)."""
        if not self.path.exists():
            return
        if cut_torn_line(self.path):  # a torn last line from a killed run: the item will be recomputed
            self.dropped_lines += 1
        malformed = []
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader, None)
                if header is None:
                    return
                if tuple(header) != COLUMNS:
                    unknown = set(header) - set(COLUMNS)
                    if unknown:
                        raise StoreError(f"{self.path}: unknown columns {sorted(unknown)}; written by a newer rdbench?")
                at = [header.index(c) if c in header else None for c in (*KEY, "status")]
                intern: dict[str, str] = {}  # images, codecs, versions repeat on many rows: one string each
                qualities: dict[str, str] = {}
                for fields in reader:
                    if len(fields) != len(header):
                        self.dropped_lines += 1
                        malformed.append(fields)
                        continue
                    sha, codec, version, quality, target, status = (
                        intern.setdefault(fields[i], fields[i]) if i is not None else "" for i in at)
                    if target:  # a target row's key leaves its quality out, as row_key does
                        self.keys[(sha, codec, version, "", target)] = status
                        self.count += 1
                        continue
                    if quality not in qualities:
                        try:
                            qualities[quality] = quality_key(quality) if quality else quality
                        except (ValueError, TypeError, OverflowError):
                            raise StoreError(f"{self.path}: line {reader.line_num}: quality {quality!r} is not a "
                                             "number; correct or delete that line") from None
                    self.keys[(sha, codec, version, qualities[quality], "")] = status
                    self.count += 1
        except (UnicodeDecodeError, csv.Error) as exc:
            raise StoreError(f"{self.path}: not a results file rdbench can read ({exc}); move it away to start "
                             "a new store") from exc
        if tuple(header) != COLUMNS:
            self._migrate(header, malformed)
        if self.dropped_lines:
            print(f"{self.path}: ignored {self.dropped_lines} incomplete line(s) from an interrupted run", file=sys.stderr)

    def _migrate(self, header: list[str], malformed: list[list[str]]) -> None:
        """Rewrite a store made with another column set into the current one, keeping every value
        (row by row: the file is never held in memory whole).

        Lines with the wrong number of fields cannot be mapped to columns; rather than vanish with
        the rewrite they are kept, under the old header, in results.csv.rejected."""
        if malformed:
            rejected = self.path.with_suffix(".csv.rejected")
            with open(rejected, "a", newline="", encoding="utf-8") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerows([header, *malformed])
                f.flush()
                os.fsync(f.fileno())
            print(f"{self.path}: {len(malformed)} malformed line(s) kept in {rejected}", file=sys.stderr)
        tmp = self.path.with_suffix(".csv.migrating")
        with open(self.path, newline="", encoding="utf-8") as src, open(tmp, "w", newline="", encoding="utf-8") as f:
            reader = csv.reader(src)
            next(reader)
            f.write(",".join(COLUMNS) + "\n")
            for fields in reader:
                if len(fields) == len(header):
                    f.write(self._line(dict(zip(header, fields))))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # -- reading and writing ---------------------------------------------------------------
    def done_keys(self, include_failed: bool = True) -> set[tuple]:
        return {key for key, status in self.keys.items() if include_failed or status == "ok"}

    def __len__(self) -> int:
        """Rows stored (a key stored twice, by --retry-failed, counts twice)."""
        return self.count

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
            if self.fsync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            # the disk full or turned read-only: take back the part of the line written, if the
            # disk lets us (otherwise the next open drops the torn line), and stop with the reason
            self._failed = True
            try:
                os.ftruncate(self._file.fileno(), self._size)
            except OSError:
                pass
            raise StoreWriteError(
                f"{self.path}: cannot store a result row: {exc.strerror or exc}. The {self.count} rows stored "
                "are kept: free space or make the folder writable, then run the same command again to "
                "measure only what is missing") from None
        self.keys[row_key(row)] = str(row.get("status") or "")
        self.count += 1

    def close(self) -> None:
        try:
            if self._file:
                try:
                    os.fsync(self._file.fileno())
                except OSError as exc:
                    if not self._failed:  # else the write that failed is the error being reported
                        raise StoreWriteError(f"{self.path}: cannot sync the rows to disk: {exc.strerror or exc}") from None
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
    except (UnicodeDecodeError, ValueError, OverflowError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        # OverflowError: pandas 3.0 on a number too large for float64 in a cell
        raise StoreError(f"{path}: not a results file rdbench can read ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in KEY if c not in df.columns and c != "target"]
    if missing:
        raise StoreError(f"{path}: not a results file: no column {', '.join(missing)}")
    for column in ("target", "target_bound"):  # a store written before target rows existed
        if column not in df.columns:
            df[column] = pd.Series([None] * len(df), index=df.index, dtype=df["codec"].dtype)
    # one row per key (row_key): a target row's quality is no part of its key
    keys = df[list(KEY)].astype(object).where(df[list(KEY)].notna(), "")
    keys.loc[keys["target"] != "", "quality"] = ""
    return df[~keys.duplicated(keep="last")].reset_index(drop=True)


def read_stored_rows(path: str | Path) -> dict[tuple, dict]:
    """{row_key: row} of a results.csv, every cell as the text stored (the latest row of a key).

    For adding metrics to stored rows (`rdbench run --metric`), which writes a row's other values
    back exactly as they were; opening a store reads keys and statuses only (see the module docstring)."""
    path = Path(path)
    rows: dict[tuple, dict] = {}
    if not path.is_file():
        return rows
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return rows
        for fields in reader:
            if len(fields) == len(header):
                row = dict(zip(header, fields))
                rows[row_key(row)] = row
    return rows
