"""Bjøntegaard deltas: BD-rate and BD-PSNR (or BD of any distortion metric in dB).

The definitions of VCEG-M33 (Bjøntegaard 2001), with the interpolation of one's choice:

- BD-rate: log10(rate) is interpolated as a function of distortion for anchor and test; the
  mean of (test - anchor) over the overlapping distortion interval, d, gives the percent rate
  change 100 * (10**d - 1). Negative: the test needs fewer bits for the same quality.
- BD-PSNR (BD-metric): distortion as a function of log10(rate); the mean difference over the
  overlapping log-rate interval, in the metric's unit (dB). Positive: the test is better (for a
  metric where lower is better, `direction="lower"`: negative is better).

Methods: `cubic` (VCEG-M33: least-squares cubic polynomial, the original), `pchip` (piecewise
cubic Hermite, monotone, as in current common test conditions and AWCY), `akima` (Akima spline).
Integrals are exact integrals of the interpolants (PCHIP's written out here, Akima's by scipy), not
sampled.

The functions are pure: arrays in, number out. `bd()` returns a BDResult with the overlap
fraction (overlap / union of the two intervals) and the interval itself; `bd_rate()` and
`bd_psnr()` return the number alone. On identical inputs they agree with the `bjontegaard` PyPI
package (tested).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

# numpy >= 2.0 has it in numpy.exceptions only; numpy 1.26 (what compressai 1.2.8 requires) at the top
# level only. Both are supported (pyproject.toml).
RankWarning = getattr(np.exceptions, "RankWarning", None) or getattr(np, "RankWarning")

METHODS = ("cubic", "pchip", "akima")
MIN_POINTS = 4
LOW_OVERLAP = 0.75  # below this fraction of the union, a warning says the number is fragile


class BDError(ValueError):
    """BD cannot be computed from these curves; the message says why."""


class LowOverlapWarning(UserWarning):
    pass


@dataclass(frozen=True)
class BDResult:
    value: float  # percent for kind="rate", metric units (dB) for kind="metric"
    kind: str  # "rate" or "metric"
    method: str
    overlap: float  # fraction of the union of the two intervals that both curves cover
    interval: tuple[float, float]  # integration interval: distortion (rate) or log10 rate (metric)


def _curve(rate, dist, which: str) -> tuple[np.ndarray, np.ndarray]:
    rate = np.asarray(rate, dtype=np.float64).ravel()
    dist = np.asarray(dist, dtype=np.float64).ravel()
    if rate.shape != dist.shape:
        raise BDError(f"{which}: {rate.size} rates but {dist.size} distortion values")
    if rate.size < MIN_POINTS:
        raise BDError(f"{which}: {rate.size} points; BD needs at least {MIN_POINTS} rate points per curve")
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(dist))):
        raise BDError(f"{which}: NaN or infinite values")
    if np.any(rate <= 0):
        raise BDError(f"{which}: rates must be positive (log scale)")
    order = np.argsort(rate)
    rate, dist = rate[order], dist[order]
    if np.any(np.diff(rate) <= 0):
        raise BDError(f"{which}: two points share the rate {rate[np.argmin(np.diff(rate))]:g}")
    steps = np.diff(dist)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise BDError(
            f"{which}: not monotonic: quality falls from {dist[i]:g} to {dist[i + 1]:g} as rate rises "
            f"from {rate[i]:g} to {rate[i + 1]:g}; BD needs quality strictly increasing with rate"
        )
    return rate, dist


def _sign(v: float) -> int:
    return (v > 0) - (v < 0)


def _pchip_slopes(h: list[float], m: list[float]) -> list[float]:
    """The slopes at the points of the monotone piecewise cubic Hermite interpolant (Fritsch and
    Butland's weighted harmonic mean inside, the shape-preserving three-point formula at both ends)
    from its pieces' widths `h` and secant slopes `m`: the interpolant of scipy's PchipInterpolator,
    by the same formulas."""
    n = len(h) + 1
    if n == 2:
        return [m[0], m[0]]
    slopes = [0.0] * n
    for k in range(1, n - 1):
        if _sign(m[k]) != _sign(m[k - 1]) or m[k] == 0 or m[k - 1] == 0:
            continue  # a local extremum or a flat piece: slope 0
        w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
        slopes[k] = 1.0 / ((w1 / m[k - 1] + w2 / m[k]) / (w1 + w2))

    def end(h0: float, h1: float, m0: float, m1: float) -> float:
        d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if _sign(d) != _sign(m0):
            return 0.0
        if _sign(m0) != _sign(m1) and abs(d) > 3.0 * abs(m0):
            return 3.0 * m0
        return d

    slopes[0] = end(h[0], h[1], m[0], m[1])
    slopes[-1] = end(h[-1], h[-2], m[-1], m[-2])
    _finite(h, m, slopes)
    return slopes


def _finite(*groups) -> None:
    """Raise FloatingPointError if a value overflowed (inf) or became undefined (nan): what numpy
    raises under bd()'s errstate, which Python's float arithmetic does not (1e200 * 1e200 is inf)."""
    for values in groups:
        if not all(map(math.isfinite, values)):
            raise FloatingPointError("overflow or an undefined value in the PCHIP integral")


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] (within x's range) of the PCHIP interpolant of y(x), x increasing.

    Written out in Python floats (tests/test_bd.py holds it to scipy's PchipInterpolator.integrate
    to 1e-12): the ablation's bootstrap intervals take ~100,000 BDs of curves of a few points, and
    building scipy's interpolant cost ~15 times this arithmetic."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    widths = [x[i + 1] - x[i] for i in range(len(x) - 1)]
    secants = [(y[i + 1] - y[i]) / widths[i] for i in range(len(x) - 1)]
    d = _pchip_slopes(widths, secants)
    total = 0.0
    for i, (h, m) in enumerate(zip(widths, secants)):
        # on the piece, with t = x - x_i: y_i + d_i t + c2 t^2 + c3 t^3; every piece's coefficients
        # are made and checked, as scipy builds the whole interpolant: a curve whose far pieces
        # overflow float64 is refused whatever part of it the integral needs
        c3 = (d[i] + d[i + 1] - 2 * m) / (h * h)
        c2 = (m - d[i]) / h - c3 * h
        _finite((h * h, c2, c3))
        a, b = min(max(lo - x[i], 0.0), h), min(max(hi - x[i], 0.0), h)  # this piece's part of [lo, hi]
        if b > a:
            total += y[i] * (b - a) + d[i] / 2 * (b * b - a * a) + c2 / 3 * (b**3 - a**3) + c3 / 4 * (b**4 - a**4)
    _finite((total,))
    return total


def _integral(x: np.ndarray, y: np.ndarray, method: str, lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] of the interpolant of y(x), x increasing."""
    if method == "cubic":
        antiderivative = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))
    if method == "pchip":
        return _pchip_integral(x, y, lo, hi)
    from scipy.interpolate import Akima1DInterpolator

    return float(Akima1DInterpolator(x, y).integrate(lo, hi))


def bd(anchor_rate, anchor_dist, test_rate, test_dist, kind: str = "rate", method: str = "pchip",
       direction: str = "higher") -> BDResult:
    """BD of test versus anchor. `direction` is the metric's ('higher' or 'lower' is better; see the
    metrics registry): a lower-is-better metric (Butteraugli, LPIPS) is negated before the
    interpolation, so that quality still rises with rate, and BD-metric is negated back: it is
    always the mean of test - anchor in the metric's own unit (negative is better for 'lower')."""
    if direction not in ("higher", "lower"):
        raise BDError(f"direction {direction!r}; expected 'higher' or 'lower'")
    if direction == "lower":
        negated = bd(anchor_rate, -np.asarray(anchor_dist, dtype=np.float64), test_rate,
                     -np.asarray(test_dist, dtype=np.float64), kind, method)
        lo, hi = negated.interval
        if kind == "rate":  # the interval is one of distortion: back in the metric's own values
            return BDResult(negated.value, kind, method, negated.overlap, (-hi, -lo))
        return BDResult(-negated.value, kind, method, negated.overlap, (lo, hi))
    if method not in METHODS:
        raise BDError(f"method {method!r}; expected one of {', '.join(METHODS)}")
    if kind not in ("rate", "metric"):
        raise BDError(f"kind {kind!r}; expected 'rate' or 'metric'")
    ar, ad = _curve(anchor_rate, anchor_dist, "anchor")
    tr, td = _curve(test_rate, test_dist, "test")
    if kind == "rate":  # log rate as a function of distortion
        xa, ya, xt, yt = ad, np.log10(ar), td, np.log10(tr)
    else:  # distortion as a function of log rate
        xa, ya, xt, yt = np.log10(ar), ad, np.log10(tr), td
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    union = max(xa[-1], xt[-1]) - min(xa[0], xt[0])
    if hi <= lo:
        axis = "quality" if kind == "rate" else "rate"
        raise BDError(f"the curves do not overlap in {axis}: anchor {xa[0]:g}..{xa[-1]:g}, test {xt[0]:g}..{xt[-1]:g}")
    overlap = (hi - lo) / union
    if overlap < LOW_OVERLAP:
        warnings.warn(f"curves overlap on only {overlap:.1%} of their joint range; BD is extrapolation-free but "
                      "describes a small part of the curves", LowOverlapWarning, stacklevel=2)
    try:  # curves at the edges of float64 (1e300 rates, 1e-13 quality steps) overflow or fit nothing
        with np.errstate(over="raise", invalid="raise", divide="raise"), warnings.catch_warnings():
            warnings.simplefilter("error", RankWarning)
            mean_diff = (_integral(xt, yt, method, lo, hi) - _integral(xa, ya, method, lo, hi)) / (hi - lo)
            value = 100.0 * (math.pow(10.0, mean_diff) - 1.0) if kind == "rate" else mean_diff
    except (FloatingPointError, OverflowError, ZeroDivisionError, np.linalg.LinAlgError, RankWarning) as exc:
        raise BDError(f"BD cannot be computed in float64 from these curves ({type(exc).__name__}: {exc})") from None
    if not math.isfinite(value):
        raise BDError(f"BD of these curves is {value} (the values are beyond float64's range)")
    return BDResult(value, kind, method, overlap, (float(lo), float(hi)))


def bd_rate(anchor_rate, anchor_dist, test_rate, test_dist, method: str = "pchip") -> float:
    """Percent rate change of test versus anchor at equal quality (negative: test saves bits)."""
    return bd(anchor_rate, anchor_dist, test_rate, test_dist, "rate", method).value


def bd_psnr(anchor_rate, anchor_dist, test_rate, test_dist, method: str = "pchip") -> float:
    """Mean quality change of test versus anchor at equal rate, in the metric's unit (dB for PSNR)."""
    return bd(anchor_rate, anchor_dist, test_rate, test_dist, "metric", method).value
