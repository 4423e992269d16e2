import itertools
import json
import warnings

import bjontegaard
import numpy as np
import pytest

from rdbench.analysis.bd import BDError, LowOverlapWarning, bd, bd_psnr, bd_rate
from rdbench.packaged import reference_folder

NAMES = ["bpg_444_x265_ycbcr", "jpeg", "webp", "jpeg2000", "vtm", "paper-mbt2018", "paper-mbt2018-mean",
         "compressai-mbt2018_mse_cpu", "compressai-bmshj2018-hyperprior_mse_cpu"]


def curve(name, metric="psnr-rgb"):
    r = json.loads((reference_folder() / f"{name}.json").read_text())["results"]
    return np.array(r["bpp"]), np.array(r[metric])


PAIRS = list(itertools.permutations(NAMES, 2))


@pytest.mark.parametrize("method", ["cubic", "pchip", "akima"])
def test_agrees_with_bjontegaard_on_published_curves(method):
    rate_diff, psnr_diff, rates = {}, {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, t in PAIRS:
            (ar, ad), (tr, td) = curve(a), curve(t)
            expected_rate = bjontegaard.bd_rate(ar, ad, tr, td, method, require_matching_points=False, min_overlap=0)
            expected_psnr = bjontegaard.bd_psnr(ar, ad, tr, td, method, require_matching_points=False, min_overlap=0)
            ours_rate, ours_psnr = bd_rate(ar, ad, tr, td, method), bd_psnr(ar, ad, tr, td, method)
            # a NaN on either side is a disagreement, not a pass: abs() of a NaN difference stays NaN
            rate_diff[a, t] = abs(ours_rate - expected_rate) if np.isfinite([ours_rate, expected_rate]).all() else np.inf
            psnr_diff[a, t] = abs(ours_psnr - expected_psnr) if np.isfinite([ours_psnr, expected_psnr]).all() else np.inf
            rates.append(expected_rate)
    # every one of the 72 ordered pairs was compared, each with a finite value on both sides
    assert set(rate_diff) == set(psnr_diff) == set(PAIRS) and len(PAIRS) == len(NAMES) * (len(NAMES) - 1)
    worst_rate = max(rate_diff, key=rate_diff.get)
    worst_psnr = max(psnr_diff, key=psnr_diff.get)
    assert rate_diff[worst_rate] <= 0.01, f"BD-rate differs by {rate_diff[worst_rate]:.4g} points for {worst_rate}"
    assert psnr_diff[worst_psnr] <= 0.001, f"BD-PSNR differs by {psnr_diff[worst_psnr]:.4g} dB for {worst_psnr}"
    # the pairs are not degenerate: the codecs really differ, in both directions
    assert min(rates) < -20 and max(rates) > 20


def test_agrees_on_ms_ssim_db_and_unsorted_input():
    ar, ad = curve("bpg_444_x265_ycbcr", "ms-ssim-rgb")
    tr, td = curve("compressai-mbt2018_mse_cpu", "ms-ssim-rgb")
    ad, td = -10 * np.log10(1 - ad), -10 * np.log10(1 - td)
    expected = bjontegaard.bd_rate(ar, ad, tr, td, "pchip", require_matching_points=False, min_overlap=0)
    shuffle = np.random.default_rng(0).permutation(len(tr))
    assert bd_rate(ar[::-1], ad[::-1], tr[shuffle], td[shuffle]) == pytest.approx(expected, abs=0.01)


def test_known_values():
    # the same curve shifted to half the rate: BD-rate -50% for every method
    r = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    d = np.array([28.0, 31.0, 34.5, 38.0, 41.0])
    for method in ("cubic", "pchip", "akima"):
        assert bd_rate(r, d, r / 2, d, method) == pytest.approx(-50.0, abs=1e-9)
        assert bd_psnr(r, d, r, d + 0.7, method) == pytest.approx(0.7, abs=1e-9)
    result = bd(r, d, r / 2, d)
    assert result.overlap == pytest.approx(1.0) and result.interval == (28.0, 41.0)


def test_edge_cases_have_clear_messages():
    r = np.array([0.25, 0.5, 1.0, 2.0])
    d = np.array([28.0, 31.0, 34.5, 38.0])
    with pytest.raises(BDError, match="3 points; BD needs at least 4"):
        bd_rate(r[:3], d[:3], r, d)
    with pytest.raises(BDError, match="test: not monotonic: quality falls from 34.5 to 33"):
        bd_rate(r, d, r, [28.0, 31.0, 34.5, 33.0])
    with pytest.raises(BDError, match="do not overlap in quality"):
        bd_rate(r, d, r, d + 20)
    with pytest.raises(BDError, match="method 'linear'"):
        bd_rate(r, d, r, d, method="linear")
    with pytest.raises(BDError, match="rates must be positive"):
        bd_rate([0, 1, 2, 3], d, r, d)
    with pytest.warns(LowOverlapWarning, match="overlap on only"):
        res = bd(r, d, r, d + 8)
    assert 0 < res.overlap < 0.75


def test_rank_warning_is_the_class_numpy_raises_in_every_supported_numpy():
    """numpy 1.26 (what compressai 1.2.8 resolves) has no numpy.exceptions.RankWarning: bd() failed
    with AttributeError on every call there (issue 20). The class must be the one polyfit warns with."""
    import warnings

    import numpy as np

    from rdbench.analysis import bd as bd_module

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.polyfit([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], 3)
    assert any(issubclass(w.category, bd_module.RankWarning) for w in caught)
    # a curve whose cubic fit is rank-deficient is a named BDError, never an AttributeError
    with pytest.raises(bd_module.BDError):
        bd_module.bd([1, 2, 3, 4], [30, 30, 30, 30 + 1e-14], [1, 2, 3, 4], [30, 31, 32, 33], "rate", "cubic")


def test_pchip_integral_is_scipys_on_every_shape_of_curve():
    """bd.py integrates PCHIP itself (speed: the ablation's bootstrap takes ~100,000 BDs): on 6,000
    random curves of 2 to 9 points, rising (as BD's), wavy, and with flat pieces and extrema (every
    branch of the slope formulas), over random sub-intervals and the whole range, it equals
    scipy's PchipInterpolator.integrate to 1e-12."""
    from scipy.interpolate import PchipInterpolator

    from rdbench.analysis.bd import _pchip_integral

    rng = np.random.default_rng(20261207)
    worst, shapes = 0.0, set()
    for trial in range(6000):
        n = int(rng.integers(2, 10))
        x = np.sort(rng.uniform(-5, 50, n))
        if np.any(np.diff(x) < 1e-6):
            continue
        shape = trial % 3
        y = (np.cumsum(rng.uniform(0.01, 3, n)), rng.normal(0, 3, n), np.round(rng.normal(0, 1, n)))[shape]
        lo, hi = (x[0], x[-1]) if trial % 5 == 0 else tuple(np.sort(rng.uniform(x[0], x[-1], 2)))
        expected = float(PchipInterpolator(x, y).integrate(lo, hi))
        worst = max(worst, abs(_pchip_integral(x, y, lo, hi) - expected) / max(1.0, abs(expected)))
        shapes.add((shape, n))
    assert len(shapes) == 3 * 8  # every shape at every point count was compared
    assert worst <= 1e-12, worst
