"""SSIMULACRA 2 through its authors' own program, `ssimulacra2` (the reference implementation).

The program is libjxl's tools/ssimulacra2 (libjxl >= 0.8 builds it with its tools; Cloudinary's
github.com/cloudinary/ssimulacra2 is the same code as a standalone build). It prints one number,
the score (higher is better, 100 = identical), with 8 decimals; rdbench writes both images as
8-bit sRGB PNG without a profile (as butteraugli_main gets them) and reads that number.

The pixels are handed over as decoded (sRGB, no profile) for both images: the Kodak PNGs carry a
gAMA chunk (0.45455) and cHRM, which the program honours when given the file itself, so running it
on kodim07.png directly scores its quality-10 JPEG -2.004 instead of -1.572 (the gamma read for the
original only).

Why not the PyPI port (`ssimulacra2` 0.3.0, pure NumPy/SciPy): on 20 Kodak JPEG reconstructions
(kodim01, 07, 13, 20 at quality 10, 30, 50, 75, 90, both images as plain PNG) it differed from
this program by up to 5.1 points (worst at quality 10; 0.04-0.66 at quality 90) and took 4-7x as
long: its Gaussian blur is SciPy's FIR filter, the reference's a recursive (IIR) approximation.

Memory: the program holds float planes of both images at every scale in its own process: 233 MB
peak on a 1.6 Mpx image (~150 bytes per pixel), over issue 22's 60; so rdbench refuses images
above MAX_PIXELS (32 Mpx, ~5 GB) with the reason rather than let one item take more.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from rdbench.data.images import encode_png
from rdbench.metrics.programs import ProgramMetric, run_program

# 32 Mpx: the program would need ~5 GB; above it the value is NaN with the reason.
MAX_PIXELS = 1 << 25
_SCORE = re.compile(r"\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*$")


def parse_output(text: str) -> float:
    """The score from ssimulacra2's stdout; ValueError showing what it printed instead."""
    found = _SCORE.match(text)
    if not found:
        raise ValueError(f"ssimulacra2 printed no score: {text[-300:]!r}")
    return float(found.group(1))


class Ssimulacra2(ProgramMetric):
    name, columns, suffix = "ssimulacra2", ("ssimulacra2",), "png"

    def refusal(self, pixels: np.ndarray) -> str | None:
        h, w = pixels.shape[:2]
        if h * w > MAX_PIXELS:
            return (f"ssimulacra2 refuses images over {MAX_PIXELS} px (the program needs ~150 bytes per pixel); "
                    f"image is {w}x{h}")
        if min(h, w) < 8:
            return f"ssimulacra2 needs both sides >= 8 px; image is {w}x{h}"
        return None

    def file_bytes(self, pixels: np.ndarray) -> bytes:
        return encode_png(pixels, compress_level=1)

    def run(self, original: Path, distorted: Path, folder: Path) -> dict:
        return {"ssimulacra2": parse_output(run_program(["ssimulacra2", original, distorted]))}


def prepare_ssimulacra2(original: np.ndarray) -> Ssimulacra2:
    return Ssimulacra2(original)
