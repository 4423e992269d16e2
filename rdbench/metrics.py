"""Distortion metrics on 8-bit RGB images (uint8, H x W x 3), compared as decoded.

- psnr_rgb: 10*log10(255^2 / MSE), MSE over every pixel and channel (float64, exact sums).
- psnr_y: the same on luma Y = 0.299 R + 0.587 G + 0.114 B (BT.601 weights, full range, not
  rounded), peak 255.
- psnr_ycbcr: (6 PSNR_Y + PSNR_Cb + PSNR_Cr) / 8, the 6:1:1 weighting of JPEG AI's and MPEG's
  test conditions, each PSNR (peak 255) on one plane of full-range BT.709 YCbCr:
  Y = 0.2126 R + 0.7152 G + 0.0722 B, Cb = (B - Y) / 1.8556 + 128, Cr = (R - Y) / 1.5748 + 128,
  in float64 and not rounded (the 128 offsets cancel in the differences). BT.709 is what JPEG
  AI's reference software converts with by default (src/codec/metrics/metrics.py,
  DataClass.color_conv_matrix, `--color-conv 709`); that tool also rounds each plane to its
  internal bit depth (8 by default) before the PSNR, which rdbench does not. Its Y is BT.709
  luma, so PSNR_Y here is not `psnr_y` (BT.601).
- ms_ssim: multi-scale SSIM (Wang, Simoncelli & Bovik 2003) on RGB with the conventions of
  pytorch-msssim, so that figures compare with CompressAI's: 11-tap Gaussian window (sigma 1.5),
  'valid' filtering, K = (0.01, 0.03), data range 255, level weights (0.0448, 0.2856, 0.3001,
  0.2363, 0.1333), 2x2 average pooling (an odd side is zero-padded on both ends, pads counted),
  negative cs/ssim clipped to 0, computed per channel and averaged over channels. Needs a
  smaller side of at least 161 px; below that the value is NaN with a reason.
- ms_ssim_db: -10*log10(1 - ms_ssim).

Everything is computed in float64 (pytorch-msssim on float32 tensors, as CompressAI runs it, is
off by up to ~1e-4 in MS-SSIM on Kodak; rdbench agrees with it run in float64 to ~1e-13). MS-SSIM
uses OpenCV's separable filter, and the original's statistics are computed once per image
(`Reference`), so each reconstruction costs three filtered maps per scale.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from rdbench.conventions import MS_SSIM_MIN_SIDE, MS_SSIM_WEIGHTS
from rdbench.conventions import MS_SSIM_WIN_SIGMA as WIN_SIGMA
from rdbench.conventions import MS_SSIM_WIN_SIZE as WIN_SIZE

K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0
LUMA_BT601 = np.array([0.299, 0.587, 0.114])
# Full-range BT.709 YCbCr as rows of RGB weights, offsets left out (they cancel in differences).
# ITU-R BT.709-6 derives E'Y = 0.2126 E'R + 0.7152 E'G + 0.0722 E'B, E'CB = (E'B - E'Y) / 1.8556,
# E'CR = (E'R - E'Y) / 1.5748, where 1.8556 = 2 (1 - K_B) and 1.5748 = 2 (1 - K_R).
_KR, _KB = 0.2126, 0.0722
_LUMA_BT709 = np.array([_KR, 1.0 - _KR - _KB, _KB])
YCBCR_BT709 = np.stack([
    _LUMA_BT709,
    (np.array([0.0, 0.0, 1.0]) - _LUMA_BT709) / (2.0 * (1.0 - _KB)),
    (np.array([1.0, 0.0, 0.0]) - _LUMA_BT709) / (2.0 * (1.0 - _KR)),
])
YCBCR_WEIGHTS = (6.0, 1.0, 1.0)  # Y, Cb, Cr

cv2.setNumThreads(1)  # parallelism comes from worker processes


def _gaussian_window() -> np.ndarray:
    x = np.arange(WIN_SIZE, dtype=np.float64) - WIN_SIZE // 2
    g = np.exp(-(x**2) / (2 * WIN_SIGMA**2))
    return g / g.sum()


_WINDOW = _gaussian_window()
_C1 = (K1 * DATA_RANGE) ** 2
_C2 = (K2 * DATA_RANGE) ** 2


def _filter_valid(m: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Separable Gaussian filter keeping only positions where the window fits ('valid')."""
    r = WIN_SIZE // 2
    full = cv2.sepFilter2D(m, -1, _WINDOW, _WINDOW, dst=out, borderType=cv2.BORDER_CONSTANT)
    return full[r:-r, r:-r]


def _pool2(m: np.ndarray) -> np.ndarray:
    """2x2 average pooling; an odd side gets one zero row/column in front (pads counted)."""
    h, w = m.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return cv2.resize(m, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    if h % 2:
        m = np.concatenate([np.zeros_like(m[:1]), m], axis=0)
    if w % 2:
        m = np.concatenate([np.zeros_like(m[:, :1]), m], axis=1)
    h2, w2 = m.shape[0] // 2 * 2, m.shape[1] // 2 * 2
    m = m[:h2, :w2]
    return (m[0::2, 0::2] + m[1::2, 0::2] + m[0::2, 1::2] + m[1::2, 1::2]) * 0.25


def mse_to_psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(DATA_RANGE**2 / mse)


def psnr_rgb(original: np.ndarray, decoded: np.ndarray) -> float:
    sse = cv2.norm(original, decoded, cv2.NORM_L2SQR)  # exact: integer sums in float64
    return mse_to_psnr(sse / original.size)


def psnr_y(original: np.ndarray, decoded: np.ndarray) -> float:
    diff = original.reshape(-1, 3).astype(np.int16) - decoded.reshape(-1, 3)
    return mse_to_psnr(float(np.mean((diff @ LUMA_BT601) ** 2)))


def psnr_ycbcr_planes(original: np.ndarray, decoded: np.ndarray) -> tuple[float, float, float]:
    """(PSNR_Y, PSNR_Cb, PSNR_Cr) in dB on full-range BT.709 YCbCr (unrounded, peak 255)."""
    diff = original.reshape(-1, 3).astype(np.int16) - decoded.reshape(-1, 3)
    mse = np.mean((diff @ YCBCR_BT709.T) ** 2, axis=0)
    return tuple(mse_to_psnr(float(m)) for m in mse)


def psnr_ycbcr(original: np.ndarray, decoded: np.ndarray) -> float:
    """(6 PSNR_Y + PSNR_Cb + PSNR_Cr) / 8 on full-range BT.709 YCbCr (see the module docstring)."""
    planes = psnr_ycbcr_planes(original, decoded)
    return sum(w * p for w, p in zip(YCBCR_WEIGHTS, planes)) / sum(YCBCR_WEIGHTS)


def ms_ssim_to_db(value: float) -> float:
    if math.isnan(value):
        return math.nan
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


class _Level:
    """The original at one scale, its filtered statistics, and scratch buffers for comparisons."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.mu_x = _filter_valid(x)
        self.sigma_xx_c2 = _filter_valid(x * x) - self.mu_x * self.mu_x + _C2
        self.mu_xx_c1 = self.mu_x * self.mu_x + _C1
        self._scratch = [np.empty_like(x) for _ in range(4)]

    def factor(self, y: np.ndarray, luminance: bool) -> np.ndarray:
        """Per-channel mean of the contrast-structure map (times luminance at the coarsest scale)."""
        prod, f_y, f_yy, f_xy = self._scratch
        mu_y = _filter_valid(y, f_y)
        np.multiply(y, y, out=prod)
        e_yy = _filter_valid(prod, f_yy)
        np.multiply(self.x, y, out=prod)
        e_xy = _filter_valid(prod, f_xy)
        mu_xy = np.multiply(self.mu_x, mu_y, out=prod[: mu_y.shape[0], : mu_y.shape[1]])
        # cs = (2 sigma_xy + C2) / (sigma_xx + sigma_yy + C2), built in place
        cs = np.subtract(e_xy, mu_xy, out=e_xy)
        cs *= 2.0
        cs += _C2
        den = np.subtract(e_yy, np.square(mu_y), out=e_yy)
        den += self.sigma_xx_c2
        cs /= den
        if luminance:
            lum = np.square(mu_y, out=f_yy[: mu_y.shape[0], : mu_y.shape[1]])
            lum += self.mu_xx_c1
            np.divide(mu_xy * 2.0 + _C1, lum, out=lum)
            cs *= lum
        return np.array(cv2.mean(cs)[:3])  # cv2.mean accumulates in float64


class Reference:
    """An original image with the statistics that every comparison against it reuses."""

    def __init__(self, pixels: np.ndarray):
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected uint8 H x W x 3, got {pixels.dtype} {pixels.shape}")
        self.pixels = pixels
        h, w = pixels.shape[:2]
        self.ms_ssim_reason = None
        self._levels: list[_Level] = []
        if min(h, w) < MS_SSIM_MIN_SIDE:
            self.ms_ssim_reason = (
                f"MS-SSIM needs both sides >= {MS_SSIM_MIN_SIDE} px (5 scales, 11-px window); image is {w}x{h}"
            )
            return
        x = pixels.astype(np.float64)
        for level in range(len(MS_SSIM_WEIGHTS)):
            if level:
                x = _pool2(x)
            self._levels.append(_Level(x))

    def ms_ssim(self, decoded: np.ndarray) -> float:
        if self.ms_ssim_reason:
            return math.nan
        y = decoded.astype(np.float64)
        last = len(self._levels) - 1
        factors = np.empty((len(MS_SSIM_WEIGHTS), 3), dtype=np.float64)
        for i, level in enumerate(self._levels):
            if i:
                y = _pool2(y)
            factors[i] = level.factor(y, luminance=i == last)
        factors = np.maximum(factors, 0.0)  # negative cs/ssim clipped, as pytorch-msssim does
        per_channel = np.prod(factors ** np.array(MS_SSIM_WEIGHTS)[:, None], axis=0)
        return float(per_channel.mean())

    def measure(self, decoded: np.ndarray) -> dict:
        """All distortion columns of a result row (dB where the name says so)."""
        if decoded.shape != self.pixels.shape or decoded.dtype != np.uint8:
            raise ValueError(
                f"decoded image is {decoded.dtype} {decoded.shape}, original is uint8 {self.pixels.shape}"
            )
        value = self.ms_ssim(decoded)
        return {
            "psnr_rgb": psnr_rgb(self.pixels, decoded),
            "psnr_y": psnr_y(self.pixels, decoded),
            "psnr_ycbcr": psnr_ycbcr(self.pixels, decoded),
            "ms_ssim": value,
            "ms_ssim_db": ms_ssim_to_db(value),
        }


def ms_ssim(original: np.ndarray, decoded: np.ndarray) -> float:
    return Reference(original).ms_ssim(decoded)
