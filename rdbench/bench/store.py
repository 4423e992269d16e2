"""ResultStore: the only writer of results. An append-only CSV, one line per finished item.

Each row is written as a single line and flushed at once, so a killed run loses at most the line
being written; opening the store again drops such a torn last line, and the run recomputes that
item. Rows are keyed by (image_sha256, codec, codec_version, quality): a rerun skips every key
already stored. A lock file keeps two runs from writing one store.
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


def row_key(row: dict) -> tuple[str, str, str, str]:
    """The row's identity, in the order of columns.KEY."""
    return (row["image_sha256"], row["codec"], row["codec_version"], quality_key(row["quality"]))


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
        self.rows: list[dict] = []
        self.dropped_lines = 0

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> "ResultStore":
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / ".results.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"{self.directory}: another rdbench run is writing this result store") from None
        try:
            self.rows = self._read_and_repair()
        except BaseException:
            self._lock.close()  # a refused file must not leave the store locked for a retry
            self._lock = None
            raise
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        if self._file.tell() == 0:
            self._file.write(",".join(COLUMNS) + "\n")
            self._file.flush()
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
        reader = csv.reader(io.StringIO(data.decode("utf-8")))
        header = next(reader)
        rows, malformed = [], []
        for fields in reader:
            if len(fields) != len(header):
                self.dropped_lines += 1
                malformed.append(fields)
                continue
            rows.append(dict(zip(header, fields)))
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

    def append(self, row: dict) -> None:
        if self._file is None:
            raise StoreError("store is not open")
        self._file.write(self._line(row))
        self._file.flush()
        self.rows.append({c: _cell(row.get(c)) for c in COLUMNS})

    def close(self) -> None:
        if self._file:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
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
    df = pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str))
    return df.drop_duplicates(subset=list(KEY), keep="last").reset_index(drop=True)
