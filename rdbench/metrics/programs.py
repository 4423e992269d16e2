"""Running a metric's reference program on files: a private scratch folder and one checked call.

Butteraugli, SSIMULACRA 2 and VMAF are measured by their authors' own programs (the reference
implementations); each writes the original and the reconstruction to a private temporary folder
(/dev/shm when there is one, so nothing touches a disk), runs the program once and reads its output.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

from rdbench.conventions import kill_tree, owned_process, scratch_dir

TIMEOUT_S = 600.0


def run_program(args: list, timeout_s: float = TIMEOUT_S) -> str:
    """The stdout of `args` (a program and its arguments); RuntimeError naming the program and its
    exit status with the end of its stderr when it fails."""
    with subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc, \
            owned_process(proc.pid):  # killed with its worker, as a codec binary is
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except BaseException:
            kill_tree(proc.pid)
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(str(args[0])).name} exited {proc.returncode}: "
                           f"{stderr[-500:].decode(errors='replace')}")
    return stdout.decode(errors="replace")


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
        with scratch_dir(f"rdbench-{self.name}-") as tmp:
            a, b = tmp / f"original.{self.suffix}", tmp / f"distorted.{self.suffix}"
            a.write_bytes(self._original_file)
            b.write_bytes(self.file_bytes(decoded))
            values = self.run(a, b, tmp)
        if not all(math.isfinite(v) for v in values.values()):
            raise ValueError(f"{self.name} gave {values}")
        return values
