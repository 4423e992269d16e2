"""Raw planar 4:4:4 8-bit frames for reference encoders (VTM, HM) that read and write YUV files.

The colour conversion is part of what an anchor's curve means (CompressAI #189: VTM numbers that
do not reproduce because of RGB vs YCbCr). `ycbcr-bt709-compressai` is the conversion of
CompressAI's bench (`compressai/utils/bench/codecs.py`, classes VTM and HM, with
`compressai.transforms.functional.rgb2ycbcr` / `ycbcr2rgb`), written down as facts so that the
published `vtm.json` / `hm.json` can be reproduced:

- forward: RGB / 255 in float32; BT.709 weights Kr, Kg, Kb = 0.2126, 0.7152, 0.0722;
  Y = Kr R + Kg G + Kb B, Cb = 0.5 (B - Y) / (1 - Kb) + 0.5, Cr = 0.5 (R - Y) / (1 - Kr) + 0.5
  (full range, chroma centred on 0.5); clipped to [0, 1], times 255, **truncated** to uint8;
  written as three planes Y, Cb, Cr (4:4:4), 8 bits.
- backward: planes / 255 in float32; R = Y + (2 - 2 Kr)(Cr - 0.5), B = Y + (2 - 2 Kb)(Cb - 0.5),
  G = (Y - Kr R - Kb B) / Kg; clipped to [0, 1], times 255, truncated to uint8.

The truncations (not rounding) cost a few tenths of a dB at high rates; they are kept because
they are what the published curves measured. Each step is float32 like CompressAI's torch
tensors, in the same order (tests/test_anchors.py checks bit-exactness against compressai).
"""

from __future__ import annotations

import numpy as np

COLOURS = ("ycbcr-bt709-compressai",)
KR, KG, KB = 0.2126, 0.7152, 0.0722  # ITU-R BT.709


def rgb_to_planes(image: np.ndarray, colour: str) -> bytes:
    """H x W x 3 uint8 RGB -> the bytes of three H x W uint8 planes (4:4:4)."""
    if colour != "ycbcr-bt709-compressai":
        raise ValueError(f"colour conversion {colour!r}: expected one of {', '.join(COLOURS)}")
    rgb = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32) / np.float32(255)
    r, g, b = rgb[0], rgb[1], rgb[2]
    y = KR * r + KG * g + KB * b
    cb = 0.5 * (b - y) / (1 - KB) + 0.5
    cr = 0.5 * (r - y) / (1 - KR) + 0.5
    planes = np.clip(np.stack([y, cb, cr]), 0, 1)
    return (planes * 255).astype(np.uint8).tobytes()


def planes_to_float_rgb(data: bytes, height: int, width: int, colour: str) -> np.ndarray:
    """The bytes of three 8-bit H x W planes (4:4:4) -> 3 x H x W float32 RGB clipped to [0, 1],
    not rounded (what `planes_to_rgb` truncates; what the 2020 run behind vtm.json measured)."""
    if colour != "ycbcr-bt709-compressai":
        raise ValueError(f"colour conversion {colour!r}: expected one of {', '.join(COLOURS)}")
    expected = 3 * height * width
    if len(data) != expected:
        raise ValueError(f"decoded YUV file has {len(data)} bytes, expected {expected} for {width}x{height} 4:4:4 8-bit")
    planes = np.frombuffer(data, dtype=np.uint8).reshape(3, height, width).astype(np.float32) / np.float32(255)
    y, cb, cr = planes[0], planes[1], planes[2]
    r = y + (2 - 2 * KR) * (cr - 0.5)
    b = y + (2 - 2 * KB) * (cb - 0.5)
    g = (y - KR * r - KB * b) / KG
    return np.stack([r, g, b]).clip(0, 1)


def planes_to_rgb(data: bytes, height: int, width: int, colour: str) -> np.ndarray:
    """The bytes of three 8-bit H x W planes (4:4:4) -> H x W x 3 uint8 RGB."""
    rgb = planes_to_float_rgb(data, height, width, colour).transpose(1, 2, 0) * 255.0
    return np.ascontiguousarray(rgb.astype(np.uint8))
