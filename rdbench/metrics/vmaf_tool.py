"""VMAF through libvmaf's own command-line tool, `vmaf` (the reference implementation), on one frame.

JPEG AI's common test conditions compute VMAF with this tool (their quality-assessment framework,
jpeg-ai-qaf, runs Netflix's `vmaf` v2.2.1 release) and rdbench follows their convention exactly:

- the default model, vmaf_v0.6.1 (rdbench names it: `--model version=vmaf_v0.6.1`);
- YUV 4:4:4, 10 bits (`-p 444 -b 10`), full range, one frame (so the motion feature is 0);
- RGB to YUV as the framework's DataClass does it, in float32: each RGB value scaled to [0, 1] and
  rounded to 10 bits, then BT.709 (Y = 0.2126 R + 0.7152 G + 0.0722 B, U = (B - Y) / 1.8556 + 0.5,
  V = (R - Y) / 1.5748 + 0.5), clipped to [0, 1], rounded to 10-bit code values;
- the score is the frame's `vmaf` value in the tool's JSON log (6 decimals).

VMAF v0.6.1's features (VIF, ADM, motion) read only the luma plane; chroma is written anyway so
that the files are the framework's. Why not vmaf-torch (PyPI 1.1.0, a float reimplementation of
libvmaf's integer features, 8-bit input): on 12 Kodak JPEG reconstructions (kodim01, 07, 13, 20 at
quality 10, 50, 90; the same 8-bit luma given to both) it differed from libvmaf 3.0.0 by up to
0.038 (both signs), and took 2-10 s per image on this CPU where the tool takes ~0.5 s.

Memory: the original's YUV file is kept in memory (6 bytes per pixel); the tool runs in its own
process: 94 MB peak on a 1.6 Mpx image (~60 bytes per pixel). Above MAX_PIXELS (64 Mpx) rdbench
refuses, with the reason, rather than start it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rdbench.metrics.classic import YCBCR_BT709
from rdbench.metrics.programs import ProgramMetric, run_program

MODEL = "vmaf_v0.6.1"
BITS = 10
MAX_PIXELS = 1 << 26
# BT.709 (rdbench's one statement of it, metrics/classic.py), as jpeg-ai-qaf's color_conv_matrix('709')
_KR, _KG, _KB = (float(w) for w in YCBCR_BT709[0])
_D, _E = 2.0 * (1.0 - _KB), 2.0 * (1.0 - _KR)  # 1.8556, 1.5748


def _round_to_bits(plane: np.ndarray) -> np.ndarray:
    top = np.float32((1 << BITS) - 1)
    return np.round(plane * top) / top  # round half to even, as torch.round


def yuv444_10bit(pixels: np.ndarray) -> bytes:
    """The 10-bit 4:4:4 planar YUV file (little-endian uint16: Y, U, V) of 8-bit RGB `pixels`."""
    rgb = _round_to_bits(pixels.astype(np.float32) / np.float32(255.0))
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = np.float32(_KR) * r + np.float32(_KG) * g + np.float32(_KB) * b
    u = (b - y) / np.float32(_D) + np.float32(0.5)
    v = (r - y) / np.float32(_E) + np.float32(0.5)
    top = np.float32((1 << BITS) - 1)
    planes = [np.round(_round_to_bits(np.clip(p, 0.0, 1.0)) * top).astype("<u2") for p in (y, u, v)]
    return b"".join(p.tobytes() for p in planes)


def vmaf_of_files(reference, distorted, width: int, height: int, folder) -> float:
    """VMAF of two 10-bit 4:4:4 YUV files by libvmaf's `vmaf` tool, JSON log written in `folder`."""
    log = folder / "vmaf.json"
    run_program(["vmaf", "-r", reference, "-d", distorted, "-w", width, "-h", height, "-p", "444", "-b", BITS,
                 "--model", f"version={MODEL}", "--json", "-o", log, "-q"])
    frames = json.loads(log.read_text())["frames"]
    return float(frames[0]["metrics"]["vmaf"])


class Vmaf(ProgramMetric):
    name, columns, suffix = "vmaf", ("vmaf",), "yuv"

    def refusal(self, pixels: np.ndarray) -> str | None:
        h, w = pixels.shape[:2]
        if h * w > MAX_PIXELS:
            return f"vmaf refuses images over {MAX_PIXELS} px (the tool needs ~60 bytes per pixel); image is {w}x{h}"
        if min(h, w) < 32:  # libvmaf's ADM and VIF work on 4 dyadic scales
            return f"vmaf needs both sides >= 32 px; image is {w}x{h}"
        return None

    def file_bytes(self, pixels: np.ndarray) -> bytes:
        return yuv444_10bit(pixels)

    def run(self, original: Path, distorted: Path, folder: Path) -> dict:
        return {"vmaf": vmaf_of_files(original, distorted, self.width, self.height, folder)}


def prepare_vmaf(original: np.ndarray) -> Vmaf:
    return Vmaf(original)
