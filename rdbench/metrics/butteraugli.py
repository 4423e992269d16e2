"""Butteraugli through libjxl's own `butteraugli_main` (the reference implementation).

Both images are written as PNG (8-bit sRGB, no profile: butteraugli_main assumes sRGB) to a
private temporary folder (/dev/shm when there is one), and the program's two printed numbers are
read: the max-norm distance (first line, the `butteraugli` column) and the 3-norm
(`3-norm: x`, the `butteraugli_3norm` column). Default viewing conditions (intensity target 80
nits), as butteraugli_main and libjxl's benchmark use them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rdbench.data.images import encode_png
from rdbench.metrics.programs import ProgramMetric, run_program

_NUMBER = r"([0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"


def parse_output(text: str) -> tuple[float, float]:
    """(max-norm, 3-norm) from butteraugli_main's stdout; ValueError naming what is missing."""
    first = re.match(r"\s*" + _NUMBER + r"\s*$", text.splitlines()[0] if text.strip() else "")
    pnorm = re.search(r"^3-norm:\s*" + _NUMBER + r"\s*$", text, re.MULTILINE)
    if not (first and pnorm):
        raise ValueError(f"butteraugli_main printed no distance and 3-norm: {text[-300:]!r}")
    return float(first.group(1)), float(pnorm.group(1))


def run_butteraugli(reference_png: Path, distorted_png: Path) -> tuple[float, float]:
    return parse_output(run_program(["butteraugli_main", reference_png, distorted_png]))


class Butteraugli(ProgramMetric):
    name, columns, suffix = "butteraugli", ("butteraugli", "butteraugli_3norm"), "png"

    def file_bytes(self, pixels: np.ndarray) -> bytes:
        return encode_png(pixels, compress_level=1)

    def run(self, original: Path, distorted: Path, folder: Path) -> dict:
        distance, pnorm = run_butteraugli(original, distorted)
        return {"butteraugli": distance, "butteraugli_3norm": pnorm}


def prepare_butteraugli(original: np.ndarray) -> Butteraugli:
    return Butteraugli(original)
