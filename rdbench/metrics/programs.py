"""Running a metric's reference program on files: a private scratch folder and one checked call.

Butteraugli, SSIMULACRA 2 and VMAF are measured by their authors' own programs (the reference
implementations); each writes the original and the reconstruction to a private temporary folder
(/dev/shm when there is one, so nothing touches a disk), runs the program once and reads its output.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

TIMEOUT_S = 600.0


@contextlib.contextmanager
def scratch_folder(name: str) -> Iterator[Path]:
    """A private temporary folder (in /dev/shm when there is one), removed afterwards."""
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix=f"rdbench-{name}-", dir=shm) as tmp:
        yield Path(tmp)


def run_program(args: list, timeout_s: float = TIMEOUT_S) -> str:
    """The stdout of `args` (a program and its arguments); RuntimeError naming the program and its
    exit status with the end of its stderr when it fails."""
    done = subprocess.run([str(a) for a in args], capture_output=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(str(args[0])).name} exited {done.returncode}: "
                           f"{done.stderr[-500:].decode(errors='replace')}")
    return done.stdout.decode(errors="replace")


class ProgramMetric:
    """A metric that a program measures on two files: the original's file is made once, the
    reconstruction's on each call, both in a private scratch folder. A subclass names the metric
    (`name`, its `columns`, the files' `suffix`) and gives `file_bytes(pixels)`, `run(original,
    distorted, folder) -> {column: value}` and, when some images cannot be measured,
    `refusal(pixels) -> reason or None` (the columns are then NaN and `reason` says why)."""

    name = ""
    columns: tuple[str, ...] = ()
    suffix = ""

    def __init__(self, original):
        self.height, self.width = original.shape[:2]
        self.reason = self.refusal(original)
        if self.reason is None:
            self._original_file = self.file_bytes(original)

    def refusal(self, pixels) -> str | None:
        return None

    def file_bytes(self, pixels) -> bytes:
        raise NotImplementedError

    def run(self, original: Path, distorted: Path, folder: Path) -> dict:
        raise NotImplementedError

    def measure(self, decoded, scratch: dict) -> dict:
        if self.reason:
            return dict.fromkeys(self.columns, math.nan)
        with scratch_folder(self.name) as tmp:
            a, b = tmp / f"original.{self.suffix}", tmp / f"distorted.{self.suffix}"
            a.write_bytes(self._original_file)
            b.write_bytes(self.file_bytes(decoded))
            values = self.run(a, b, tmp)
        if not all(math.isfinite(v) for v in values.values()):
            raise ValueError(f"{self.name} gave {values}")
        return values
