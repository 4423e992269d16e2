"""Running a metric's reference program on files: a private scratch folder and one checked call.

Butteraugli, SSIMULACRA 2 and VMAF are measured by their authors' own programs (the reference
implementations); each writes the original and the reconstruction to a private temporary folder
(/dev/shm when there is one, so nothing touches a disk), runs the program once and reads its output.
"""

from __future__ import annotations

import contextlib
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
