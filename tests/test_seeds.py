"""analysis.seeds: BD-rate over training seeds with an interval from image-bootstrap and seed variance.

The simulation has a known effect: at equal quality the test cell's bpp is (1 + effect) times the
anchor's, so the true BD-rate is 100 * effect (%). Around it: image-specific curves shared by both
cells, a per-image deviation of the effect (shared by all seeds: the image's own response), a
random BD shift per (cell, seed), and noise per (cell, seed, image, quality).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from rdbench.analysis import seeds as S
from rdbench.analysis.curves import operational

QUALITIES = 5


def simulate(rng, effect, n_seeds=3, n_images=24, seed_sd=0.01, image_sd=0.03, noise_sd=0.005,
             psnr_noise=0.02, seeds=None):
    """Per-image rows of a test cell 'T' and an anchor cell 'A'."""
    seeds = list(range(n_seeds)) if seeds is None else seeds
    q = np.arange(QUALITIES)
    scale = rng.lognormal(0.0, 0.4, n_images)  # how many bits an image needs
    offset = rng.normal(0.0, 2.0, n_images)  # its PSNR level
    response = rng.normal(0.0, image_sd, n_images)  # how much more or less than `effect` it gains
    anchor_bpp = 0.15 * scale[:, None] * 1.7 ** q[None, :]  # [image, quality]
    psnr = 28.0 + 2.5 * q[None, :] + offset[:, None]
    parts = []
    for cell in ("T", "A"):
        for seed in seeds:
            shift = 1.0 + rng.normal(0.0, seed_sd)
            bpp = anchor_bpp * shift * (1.0 + rng.normal(0.0, noise_sd, anchor_bpp.shape))
            if cell == "T":
                bpp = bpp * (1.0 + effect) * (1.0 + response[:, None])
            value = psnr + rng.normal(0.0, psnr_noise, psnr.shape)
            image, quality = np.meshgrid(np.arange(n_images), q, indexing="ij")
            parts.append(pd.DataFrame({"cell": cell, "seed": seed, "image": [f"im{i:02d}" for i in image.ravel()],
                                       "quality": quality.ravel(), "bpp": bpp.ravel(), "psnr_rgb": value.ravel()}))
    return pd.concat(parts, ignore_index=True)


def exact(effect, n_seeds=3, seed_shift=None):
    """Noise-free rows: BD-rate of seed s is exactly 100 * ((1 + effect) * shift_T[s] / shift_A[s] - 1)."""
    rows = simulate(np.random.default_rng(1), effect, n_seeds=n_seeds, seed_sd=0.0, image_sd=0.0, noise_sd=0.0,
                    psnr_noise=0.0)
    if seed_shift is not None:
        for (cell, seed), factor in seed_shift.items():
            mask = (rows["cell"] == cell) & (rows["seed"] == seed)
            rows.loc[mask, "bpp"] *= factor
    return rows


# -- exactness --------------------------------------------------------------------------------

@pytest.mark.parametrize("effect", [-0.1, 0.0, 0.07])
def test_the_mean_is_the_exact_effect_without_noise(effect):
    r = S.seed_bd(exact(effect), "T", "A", "psnr_rgb", n_boot=50)
    assert r.error == ""
    assert r.mean == pytest.approx(100 * effect, abs=1e-9)
    assert r.per_seed == pytest.approx([100 * effect] * 3, abs=1e-9)
    # nothing varies, so every replicate is the effect itself
    assert r.ci_low == pytest.approx(100 * effect, abs=1e-9) and r.ci_high == pytest.approx(100 * effect, abs=1e-9)
    assert (r.n_seeds, r.n_images, r.n_failed) == (3, 24, 0)


def test_the_mean_is_over_seeds_of_each_seeds_bd():
    shifts = {("T", 0): 1.02, ("A", 1): 1.05, ("T", 2): 0.97}
    r = S.seed_bd(exact(-0.1, seed_shift=shifts), "T", "A", "psnr_rgb", n_boot=200)
    expected = [100 * (0.9 * 1.02 - 1), 100 * (0.9 / 1.05 - 1), 100 * (0.9 * 0.97 - 1)]
    assert r.per_seed == pytest.approx(expected, abs=1e-9)
    assert r.mean == pytest.approx(np.mean(expected), abs=1e-9)
    # images do not vary the BD here, so the interval is the seeds' t interval alone: mean +- t(0.975, 2) * s / sqrt(3)
    from scipy.stats import t

    half = t.ppf(0.975, 2) * np.std(expected, ddof=1) / np.sqrt(3)
    assert (r.ci_low, r.ci_high) == pytest.approx((np.mean(expected) - half, np.mean(expected) + half), abs=1e-6)


def test_ms_ssim_db_of_mean_is_the_db_of_the_mean():
    rows = exact(-0.1)
    rows["ms_ssim"] = 1 - 10 ** (-rows["psnr_rgb"] / 30)  # rising with quality, in (0, 1)
    r = S.seed_bd(rows, "T", "A", "ms_ssim_db_of_mean", n_boot=20)
    assert r.error == "" and r.mean == pytest.approx(-10.0, abs=1e-9)
    # the dB of the mean is not the mean of dB: with noise, the two conventions give different numbers
    noisy = simulate(np.random.default_rng(3), -0.1)
    noisy["ms_ssim"] = 1 - 10 ** (-noisy["psnr_rgb"] / 30)
    noisy["ms_ssim_db"] = -10 * np.log10(1 - noisy["ms_ssim"])
    a = S.seed_bd(noisy, "T", "A", "ms_ssim_db_of_mean", n_boot=20)
    b = S.seed_bd(noisy, "T", "A", "ms_ssim_db", n_boot=20)
    assert a.error == b.error == "" and a.mean != pytest.approx(b.mean, abs=1e-6)


def test_the_array_operational_rule_is_curves_operational():
    rng = np.random.default_rng(5)
    for _ in range(200):
        rate, value = rng.uniform(0.1, 2, 6), rng.normal(30, 3, 6)
        got_rate, got_value = S._operational(rate, value)
        want = operational(pd.DataFrame({"bpp": rate, "psnr_rgb": value}), "psnr_rgb")
        assert np.array_equal(got_rate, want["bpp"].to_numpy())
        assert np.array_equal(got_value, want["psnr_rgb"].to_numpy())


def test_a_dominated_point_is_left_out():
    rows = exact(-0.1)
    top = rows["quality"] == QUALITIES - 1
    rows.loc[top & (rows["cell"] == "T"), "psnr_rgb"] -= 10.0  # the test's top rate is worse than its next
    r = S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=20)
    assert r.error == "" and r.mean == pytest.approx(-10.0, abs=1e-9)


# -- unit cases -------------------------------------------------------------------------------

def test_only_matched_seeds_count():
    rows = simulate(np.random.default_rng(2), -0.1, n_seeds=4)
    rows = rows[~((rows["cell"] == "A") & (rows["seed"] == 3))]
    r = S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=100)
    assert r.error == "" and r.n_seeds == 3 and r.seeds == (0, 1, 2)
    assert "3" in r.note and "not in both cells" in r.note
    alone = S.seed_bd(rows[rows["seed"] != 3], "T", "A", "psnr_rgb", n_boot=100)
    assert (r.mean, r.ci_low, r.ci_high) == (alone.mean, alone.ci_low, alone.ci_high)


def test_an_incomplete_seed_is_left_out():
    rows = simulate(np.random.default_rng(2), -0.1, n_seeds=3)
    rows = rows.drop(rows.index[(rows["cell"] == "T") & (rows["seed"] == 1) & (rows["image"] == "im05")][:1])
    r = S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=50)
    assert r.error == "" and r.seeds == (0, 2) and "lack some image or quality" in r.note


def test_one_seed_covers_images_only():
    rows = simulate(np.random.default_rng(4), -0.1, n_seeds=1)
    r = S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=200)
    assert r.error == "" and r.n_seeds == 1 and "images only (1 seed)" in r.method
    assert r.ci_low < r.mean < r.ci_high and r.ci_high - r.ci_low > 0.1
    several = S.seed_bd(simulate(np.random.default_rng(4), -0.1, n_seeds=3), "T", "A", "psnr_rgb", n_boot=50)
    assert "images only" not in several.method and "seeds and images" in several.method


def test_no_matched_seed_is_an_error_not_an_exception():
    rows = simulate(np.random.default_rng(2), -0.1, n_seeds=2)
    rows = rows[~((rows["cell"] == "A") & (rows["seed"] == 0)) & ~((rows["cell"] == "T") & (rows["seed"] == 1))]
    r = S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=50)
    assert "no seed is present in both cells" in r.error
    assert np.isnan(r.mean) and np.isnan(r.ci_low) and not r.resolved and r.n_seeds == 0


def test_non_overlapping_curves_are_an_error_not_an_exception():
    rows = exact(-0.1)
    rows.loc[rows["cell"] == "T", "psnr_rgb"] += 50.0  # far above every anchor point
    r = S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=50)
    assert "do not overlap" in r.error and r.error.startswith("seed 0")
    assert np.isnan(r.mean) and not r.resolved


def test_many_failed_replicates_withhold_the_verdict():
    rows = exact(-0.1)
    # the test's curves start just below the anchor's top (PSNR +9.7 dB on odd images, +10.2 on even ones,
    # the anchor spanning 10 dB): all images overlap by 0.05 dB, but a draw with 15 or more even images
    # of 24 (about 15% of draws) does not overlap at all
    test = rows["cell"] == "T"
    even = rows["image"].str[2:].astype(int) % 2 == 0
    rows.loc[test, "psnr_rgb"] += np.where(even[test], 10.2, 9.7)
    r = S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=400)
    assert np.isfinite(r.mean) and "lowest overlap" in r.note
    assert 0.05 * 400 < r.n_failed < 0.4 * 400
    assert "bootstrap replicates failed" in r.error and not r.resolved


def test_the_interval_is_reproducible_and_depends_on_the_rng_seed():
    rows = simulate(np.random.default_rng(8), -0.05)
    a, b = (S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=100, rng_seed=1) for _ in range(2))
    c = S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=100, rng_seed=2)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high) and (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert a.mean == c.mean  # the point estimate uses no randomness


def test_seed_table():
    rows = pd.concat([simulate(np.random.default_rng(9), -0.1),
                      simulate(np.random.default_rng(9), 0.0).query("cell == 'T'").assign(cell="U")])
    table = S.seed_table(rows, [("q1", "T", "A"), ("q2", "U", "A"), ("q3", "V", "A")], "psnr_rgb", n_boot=100)
    assert list(table.columns[:12]) == ["question", "test", "anchor", "bd_rate_mean", "bd_rate_ci_low",
                                        "bd_rate_ci_high", "n_seeds", "n_images", "resolved", "per_seed", "method",
                                        "error"]
    assert list(table["question"]) == ["q1", "q2", "q3"]
    first = table.iloc[0]
    assert first["per_seed"].startswith("s0: ") and first["per_seed"].count(";") == 2
    assert bool(first["resolved"]) and first["bd_rate_ci_high"] < 0
    assert table.iloc[2]["error"] == "no rows for cell 'V'" and np.isnan(table.iloc[2]["bd_rate_mean"])


# -- the simulation: coverage, power, false resolutions -----------------------------------------

SETTINGS = {  # (per-seed bpp sd of each cell, per-image sd of the effect)
    "seeds and images alike": (0.005, 0.03),
    "images dominate": (0.001, 0.04),
    "seeds dominate": (0.02, 0.005),
}


@pytest.mark.slow
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_coverage_power_and_false_resolutions(setting):
    """40 experiments with a -10% effect and 40 with none (3 seeds x 24 images, 150 replicates).

    Measured with 100 + 100 experiments and 200 replicates: coverage 96.5% / 92% / 95%, the -10%
    effect resolved in 100% / 100% / 88%, the null in 3% / 6% / 5% (seeds and images alike /
    images dominate / seeds dominate). A percentile interval of a bootstrap that also resamples
    the 3 seeds covered only ~70% where seeds dominate: this test fails on it."""
    seed_sd, image_sd = SETTINGS[setting]
    rng = np.random.default_rng(7)
    start = time.perf_counter()
    covered, resolved = {-0.1: 0, 0.0: 0}, {-0.1: 0, 0.0: 0}
    runs = 40
    for effect in (-0.1, 0.0):
        for k in range(runs):
            rows = simulate(rng, effect, seed_sd=seed_sd, image_sd=image_sd)
            r = S.seed_bd(rows, "T", "A", "psnr_rgb", n_boot=150, rng_seed=k)
            assert r.error == ""
            covered[effect] += r.ci_low <= 100 * effect <= r.ci_high
            resolved[effect] += r.resolved
    elapsed = time.perf_counter() - start
    coverage = (covered[-0.1] + covered[0.0]) / (2 * runs)
    assert coverage >= 0.87, (covered, resolved, elapsed)
    assert resolved[-0.1] >= 0.7 * runs, (covered, resolved)
    assert resolved[0.0] <= 0.15 * runs, (covered, resolved)
