"""Butteraugli through libjxl's own `butteraugli_main` (the reference implementation).

Both images are written as PNG (8-bit sRGB, no profile: butteraugli_main assumes sRGB) to a
private temporary folder (/dev/shm when there is one), and the program's two printed numbers are
read: the max-norm distance (first line, the `butteraugli` column) and the 3-norm
(`3-norm: x`, the `butteraugli_3norm` column). Default viewing conditions (intensity target 80
nits), as butteraugli_main and libjxl's benchmark use them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from rdbench.data.images import encode_png
from rdbench.metrics.programs import run_program, scratch_folder
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


class Butteraugli:
    reason = None

    def __init__(self, original: np.ndarray):
        self.original = original
        self._png = encode_png(original, compress_level=1)

    def measure(self, decoded: np.ndarray, scratch: dict) -> dict:
        with scratch_folder("butteraugli") as tmp:
            a, b = tmp / "reference.png", tmp / "distorted.png"
            a.write_bytes(self._png)
            b.write_bytes(encode_png(decoded, compress_level=1))
            distance, pnorm = run_butteraugli(a, b)
        if not (math.isfinite(distance) and math.isfinite(pnorm)):
            raise ValueError(f"butteraugli_main gave {distance}, {pnorm}")
        return {"butteraugli": distance, "butteraugli_3norm": pnorm}


def prepare_butteraugli(original: np.ndarray) -> Butteraugli:
    return Butteraugli(original)
