"""The default metrics on 8-bit RGB images (uint8, H x W x 3), compared as decoded.

- psnr_rgb: 10*log10(255^2 / MSE), MSE over every pixel and channel.
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

How, and why it is exact and bounded in memory:

- The three PSNRs come from one 3 x 3 matrix C = sum over pixels of d d^T, d the integer RGB
  difference: every product and partial sum is an integer below 2^53, so C is exact in float64
  whatever the summation order (BLAS). Then MSE_RGB = trace(C) / 3N and the MSE of any plane
  with RGB weights w is w^T C w / N: the same number as the mean of (d . w)^2, rounded once
  instead of once per pixel (exactly: `_plane_mse`), at the cost of one pass over the image instead of one per plane.
- MS-SSIM filters in float64 with OpenCV's separable filter, band by band: a band of output rows
  reads its rows plus the window's 10 more, so every filtered value is the one a whole-image
  filter gives, and only the per-channel sums of the cs (and l) maps leave a band. The 2x2
  pooled levels are made the same way. Peak memory is the pooled levels (12 bytes per pixel of
  the image for x and y together) and a few bands of BAND_PIXELS, not ~200 bytes per pixel.
- An original up to CACHE_PIXELS keeps its own filtered statistics (mu_x and sigma_x^2 at each
  scale), so each reconstruction of it costs three filtered maps per scale, not five; a larger
  original recomputes them band by band, which bounds memory.
- Each band's SSIM arithmetic is five in-place OpenCV passes over contiguous full-width arrays
  (`_band_sum`), the first terms folded into the filters themselves (a kernel times 2 or -1 and
  an added constant, exact): no temporaries, about a fifth of MS-SSIM's time less than numpy's
  nine passes, the same float64 terms summed in another order (within 2e-14 of before).

Everything is float64 (pytorch-msssim on float32 tensors, as CompressAI runs it, is off by up to
~1e-4 in MS-SSIM on Kodak; rdbench agrees with it run in float64 to ~1e-13).
"""

from __future__ import annotations

import math
from fractions import Fraction

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

# Pixels of one band of float64 work (a band of 3-channel float64 is 24 bytes per pixel, and
# MS-SSIM holds about ten such arrays): 2^16 px (1.5 MB an array) keeps a band's arrays within a
# core's L2 cache, where the elementwise passes run ~1.2x faster than at 2^18 (MS-SSIM of a Kodak
# image: 30 ms of CPU against 36 ms, interleaved runs on a 2-core Intel Xeon), and the scratch
# near 15 MB whatever the image size. Results do not depend on it (tested).
BAND_PIXELS = 1 << 16
# Originals up to this many pixels keep their MS-SSIM statistics between reconstructions
# (~64 bytes per pixel: 67 MB at this size; a larger one recomputes them, ~1.5x the time).
CACHE_PIXELS = 1 << 20

cv2.setNumThreads(1)  # parallelism comes from worker processes

_PAD = WIN_SIZE - 1  # rows (and columns) a 'valid' filter loses
_R = WIN_SIZE // 2


def _gaussian_window() -> np.ndarray:
    x = np.arange(WIN_SIZE, dtype=np.float64) - WIN_SIZE // 2
    g = np.exp(-(x**2) / (2 * WIN_SIGMA**2))
    return g / g.sum()


_WINDOW = _gaussian_window()
_C1 = (K1 * DATA_RANGE) ** 2
_C2 = (K2 * DATA_RANGE) ** 2


def _rows_per_band(width: int) -> int:
    return max(8, BAND_PIXELS // max(width, 1))


def mse_to_psnr(mse: float) -> float:
    return math.inf if mse <= 0 else 10.0 * math.log10(DATA_RANGE**2 / mse)


# --- PSNR ---------------------------------------------------------------------------------------

def difference_moments(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """C = sum over pixels of d d^T (3 x 3, float64 holding exact integers), d = original - decoded."""
    h, w = original.shape[:2]
    rows = _rows_per_band(w)
    total = np.zeros((3, 3))
    for r0 in range(0, h, rows):
        d = np.subtract(original[r0:r0 + rows], decoded[r0:r0 + rows], dtype=np.int16).reshape(-1, 3)
        d = d.astype(np.float64)
        total += d.T @ d  # integers < 2^53 throughout: exact in any order
    return total


def _plane_mse(moments: np.ndarray, weights: np.ndarray, pixels: int) -> float:
    """w^T C w / N evaluated exactly (rational arithmetic on the float64 weights and the integer
    moments, rounded once): the chroma weights have mixed signs, and in float64 the nine terms
    cancel to a few 1e-13 relative on images whose chroma error is small."""
    w = [Fraction(float(v)) for v in weights]
    c = [[int(v) for v in row] for row in moments]
    return float(sum(w[i] * w[j] * c[i][j] for i in range(3) for j in range(3)) / pixels)


def psnr_rgb(original: np.ndarray, decoded: np.ndarray, moments: np.ndarray | None = None) -> float:
    moments = difference_moments(original, decoded) if moments is None else moments
    return mse_to_psnr(float(np.trace(moments)) / original.size)


def psnr_y(original: np.ndarray, decoded: np.ndarray, moments: np.ndarray | None = None) -> float:
    moments = difference_moments(original, decoded) if moments is None else moments
    return mse_to_psnr(_plane_mse(moments, LUMA_BT601, original.size // 3))


def psnr_ycbcr_planes(original: np.ndarray, decoded: np.ndarray,
                      moments: np.ndarray | None = None) -> tuple[float, float, float]:
    """(PSNR_Y, PSNR_Cb, PSNR_Cr) in dB on full-range BT.709 YCbCr (unrounded, peak 255)."""
    moments = difference_moments(original, decoded) if moments is None else moments
    return tuple(mse_to_psnr(_plane_mse(moments, row, original.size // 3)) for row in YCBCR_BT709)


def psnr_ycbcr(original: np.ndarray, decoded: np.ndarray, moments: np.ndarray | None = None) -> float:
    """(6 PSNR_Y + PSNR_Cb + PSNR_Cr) / 8 on full-range BT.709 YCbCr (see the module docstring)."""
    planes = psnr_ycbcr_planes(original, decoded, moments)
    return sum(w * p for w, p in zip(YCBCR_WEIGHTS, planes)) / sum(YCBCR_WEIGHTS)


class _Psnr:
    """One of the PSNRs of an original; the difference moments are shared through `scratch`."""

    reason = None

    def __init__(self, original: np.ndarray, function, column: str):
        self.original, self.function, self.column = original, function, column

    def measure(self, decoded: np.ndarray, scratch: dict) -> dict:
        moments = scratch.get("difference_moments")
        if moments is None:
            moments = scratch["difference_moments"] = difference_moments(self.original, decoded)
        return {self.column: self.function(self.original, decoded, moments)}


def prepare_psnr_rgb(original: np.ndarray) -> _Psnr:
    return _Psnr(original, psnr_rgb, "psnr_rgb")


def prepare_psnr_y(original: np.ndarray) -> _Psnr:
    return _Psnr(original, psnr_y, "psnr_y")


def prepare_psnr_ycbcr(original: np.ndarray) -> _Psnr:
    return _Psnr(original, psnr_ycbcr, "psnr_ycbcr")


# --- MS-SSIM ------------------------------------------------------------------------------------

def ms_ssim_to_db(value: float) -> float:
    if math.isnan(value):
        return math.nan
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


def _filter_rows(m: np.ndarray, out: np.ndarray, kernel_x: np.ndarray = _WINDOW, delta: float = 0.0) -> np.ndarray:
    """Separable Gaussian filter in float64 into `out`, keeping the rows where the window fits.

    Full width: the _R columns at each side, where it does not fit, are left in and never summed
    (keeping them keeps every array contiguous, which OpenCV's in-place operations need).
    `m` is float64, or integer (the 8-bit pixels of scale 0, or their exact uint16 products): OpenCV
    converts each row to float64 as it filters, which saves converting whole bands first.
    `kernel_x` may be the window times 2 or -1 (exact scalings) and `delta` is added to every
    output: the first arithmetic of the SSIM terms done inside the filter's own pass."""
    out = cv2.sepFilter2D(m, cv2.CV_64F, kernel_x, _WINDOW, dst=out, delta=delta, borderType=cv2.BORDER_CONSTANT)
    return out[_R:-_R]


_WINDOW_2 = 2.0 * _WINDOW  # scalings by 2 and -1 are exact: the filtered values are 2x and -1x the plain ones
_WINDOW_NEG = -_WINDOW


def _product_dtype(dtype) -> type:
    """Where a * b is exact: uint16 for 8-bit pixels (255^2 < 2^16), else float64."""
    return np.uint16 if dtype == np.uint8 else np.float64


def _product(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a * b, exact (`_product_dtype`)."""
    return np.multiply(a, b, out=out, dtype=_product_dtype(a.dtype))


class _Scratch:
    """The float64 arrays of one band (reused band after band): three filtered maps and a product."""

    def __init__(self, rows: int, width: int, dtype):
        self.maps = [np.empty((rows + _PAD, width, 3)) for _ in range(3)]
        self.product = np.empty((rows + _PAD, width, 3), _product_dtype(dtype))

    def take(self, rows: int) -> tuple[list[np.ndarray], np.ndarray]:
        n = rows + _PAD
        return [m[:n] for m in self.maps], self.product[:n]


def _x_statistics(x: np.ndarray, scratch: _Scratch) -> tuple[np.ndarray, np.ndarray]:
    """(-2 mu_x, -(sigma_x^2 + C2)) of a band, full width, the rows where the window fits: the
    original's terms in the forms the per-reconstruction passes of `_band_sum` take them."""
    (a, b, _), product = scratch.take(x.shape[0] - _PAD)
    mu_x = _filter_rows(x, a)
    neg_sigma = _filter_rows(_product(x, x, product), b, _WINDOW_NEG, -_C2)  # -E[x^2] - C2
    neg_sigma = cv2.accumulateSquare(mu_x, neg_sigma)  # + mu_x^2
    return mu_x * -2.0, neg_sigma.copy()


def _band_sum(x, y, neg2_mu_x, neg_sigma_xx_c2, luminance: bool, scratch: _Scratch) -> np.ndarray:
    """Per-channel sum of the contrast-structure map of a band (times luminance at the coarsest scale).

    cs = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2), in five passes over the band, each one
    OpenCV call writing in place: the numerator is the filter of 2xy plus C2 (one pass) minus
    2 mu_x mu_y (accumulateProduct); the negated denominator is the filter of -y^2 (one pass)
    plus mu_y^2 (accumulateSquare) minus sigma_x^2 + C2 (add); then one divide and one sum. The
    same float64 terms as the textbook order (2 (E[xy] - mu_x mu_y) + C2 ...), summed in another
    order: MS-SSIM agrees with it to ~1e-14."""
    (a, b, c), product = scratch.take(x.shape[0] - _PAD)
    mu_y = _filter_rows(y, a)
    num = _filter_rows(_product(x, y, product), b, _WINDOW_2, _C2)  # 2 E[xy] + C2
    neg_den = _filter_rows(_product(y, y, product), c, _WINDOW_NEG)  # -E[y^2]
    num = cv2.accumulateProduct(neg2_mu_x, mu_y, num)  # - 2 mu_x mu_y
    neg_den = cv2.accumulateSquare(mu_y, neg_den)  # + mu_y^2
    neg_den = cv2.add(neg_den, neg_sigma_xx_c2, dst=neg_den)  # - sigma_x^2 - C2
    cs = cv2.divide(num, neg_den, dst=num, scale=-1.0)
    if luminance:  # the coarsest scale only (1/256 of the pixels): plain numpy
        mu_x = neg2_mu_x * -0.5
        lum = (mu_x * mu_y * 2.0 + _C1) / (mu_x * mu_x + mu_y * mu_y + _C1)
        cs *= lum
    return np.array(cv2.sumElems(cs[:, _R:-_R])[:3])  # accumulates in float64; 'valid' columns only


def _pool2(m: np.ndarray) -> np.ndarray:
    """2x2 average pooling (float64); an odd side gets one zero row/column in front (pads counted).

    Made in bands of output rows; each output pixel is the same arithmetic as on the whole image."""
    h, w = m.shape[:2]
    even = h % 2 == 0 and w % 2 == 0
    out = np.empty(((h + 1) // 2, (w + 1) // 2, 3))
    rows = max(1, _rows_per_band(w) // 2)
    for o0 in range(0, out.shape[0], rows):
        o1 = min(out.shape[0], o0 + rows)
        a, b = 2 * o0 - h % 2, 2 * o1 - h % 2
        chunk = m[max(a, 0):b].astype(np.float64, copy=False)
        if even:
            out[o0:o1] = cv2.resize(chunk, (w // 2, o1 - o0), interpolation=cv2.INTER_AREA)
            continue
        if a < 0:
            chunk = np.concatenate([np.zeros_like(chunk[:1]), chunk], axis=0)
        if w % 2:
            chunk = np.concatenate([np.zeros_like(chunk[:, :1]), chunk], axis=1)
        out[o0:o1] = (chunk[0::2, 0::2] + chunk[1::2, 0::2] + chunk[0::2, 1::2] + chunk[1::2, 1::2]) * 0.25
    return out


class _Statistics:
    """An original's filtered statistics at one scale (kept for originals up to CACHE_PIXELS):
    -2 mu_x and -(sigma_x^2 + C2), full width, the rows where the window fits."""

    def __init__(self, x: np.ndarray):
        h, w = x.shape[:2]
        self.neg2_mu_x = np.empty((h - _PAD, w, 3))
        self.neg_sigma_xx_c2 = np.empty_like(self.neg2_mu_x)
        rows = _rows_per_band(w)
        scratch = _Scratch(min(rows, h - _PAD), w, x.dtype)
        for r0 in range(0, h - _PAD, rows):
            r1 = min(h - _PAD, r0 + rows)
            self.neg2_mu_x[r0:r1], self.neg_sigma_xx_c2[r0:r1] = _x_statistics(x[r0:r1 + _PAD], scratch)


def _level_factor(x: np.ndarray, y: np.ndarray, stats: _Statistics | None, luminance: bool) -> np.ndarray:
    """Per-channel mean of the cs (or cs * l) map of one scale, computed band by band."""
    h, w = x.shape[:2]
    out_h = h - _PAD
    rows = _rows_per_band(w)
    scratch = _Scratch(min(rows, out_h), w, x.dtype)
    total = np.zeros(3)
    for r0 in range(0, out_h, rows):
        r1 = min(out_h, r0 + rows)
        xb, yb = x[r0:r1 + _PAD], y[r0:r1 + _PAD]  # uint8 at scale 0 (see _filter_rows), else float64
        if stats is None:
            neg2_mu_x, neg_sigma = _x_statistics(xb, scratch)
        else:
            neg2_mu_x, neg_sigma = stats.neg2_mu_x[r0:r1], stats.neg_sigma_xx_c2[r0:r1]
        total += _band_sum(xb, yb, neg2_mu_x, neg_sigma, luminance, scratch)
    return total / (out_h * (w - _PAD))


class MsSsim:
    """MS-SSIM (and its dB) of reconstructions of one original; `reason` says why it is NaN."""

    def __init__(self, original: np.ndarray, cache_pixels: int | None = None):
        self.original = original
        h, w = original.shape[:2]
        self.reason = None
        self._levels: list[np.ndarray] = []  # the original at scales 1.. (scale 0 is `original`)
        self._stats: list[_Statistics] | None = None
        if min(h, w) < MS_SSIM_MIN_SIDE:
            self.reason = (f"MS-SSIM needs both sides >= {MS_SSIM_MIN_SIDE} px (5 scales, 11-px window); "
                           f"image is {w}x{h}")
            return
        if h * w <= (CACHE_PIXELS if cache_pixels is None else cache_pixels):
            x = original
            self._stats = [_Statistics(x)]
            for _ in range(len(MS_SSIM_WEIGHTS) - 1):
                x = _pool2(x)
                self._levels.append(x)
                self._stats.append(_Statistics(x))

    def value(self, decoded: np.ndarray) -> float:
        if self.reason:
            return math.nan
        last = len(MS_SSIM_WEIGHTS) - 1
        factors = np.empty((len(MS_SSIM_WEIGHTS), 3))
        x, y = self.original, decoded
        for i in range(len(MS_SSIM_WEIGHTS)):
            if i:
                x = self._levels[i - 1] if self._stats else _pool2(x)
                y = _pool2(y)
            factors[i] = _level_factor(x, y, self._stats[i] if self._stats else None, luminance=i == last)
        factors = np.maximum(factors, 0.0)  # negative cs/ssim clipped, as pytorch-msssim does
        per_channel = np.prod(factors ** np.array(MS_SSIM_WEIGHTS)[:, None], axis=0)
        return float(per_channel.mean())

    def measure(self, decoded: np.ndarray, scratch: dict | None = None) -> dict:
        value = self.value(decoded)
        return {"ms_ssim": value, "ms_ssim_db": ms_ssim_to_db(value)}


def prepare_ms_ssim(original: np.ndarray) -> MsSsim:
    return MsSsim(original)


def ms_ssim(original: np.ndarray, decoded: np.ndarray) -> float:
    return MsSsim(original).value(decoded)
