"""BD-rate of an ablation question over training seeds, with a confidence interval and a verdict.

An ablation trains each cell once per seed and evaluates every model on the same images. A
question compares a test cell with an anchor cell. `seed_bd` answers it from the per-image rows:

Point estimate. For each matched seed s (a seed both cells have, with complete curves), the
test's and the anchor's curves of seed s are the mean over all images, per quality, of bpp and
of the metric (for `ms_ssim_db_of_mean`: -10 log10(1 - mean MS-SSIM), the dB of the mean); each
curve keeps its operational points only (`curves.operational`: sorted by bpp, a point kept only if
its quality beats every cheaper point's), and the BD-rate of test vs anchor is `bd.bd(...,
"rate", "pchip")`. The estimate is the mean of these per-seed BD-rates (percent).

Interval: the mean over seeds varies for two reasons, and the interval adds both.
- Images: a paired bootstrap over images within matched seeds. Each of `n_boot` replicates
  draws n_images images with replacement, shared by both cells and by every seed (every model
  was evaluated on the same images, so the pairing is kept); each seed's two curves are
  recomputed as means over the drawn images (an image drawn k times counts k times), reduced to
  operational points, their BD-rate computed, and the replicate's value is the mean over the
  seeds. The image component is the variance of the replicate values.
- Seeds: the sample variance of the per-seed BD-rates divided by n_seeds (the variance of a mean
  of n independent training runs).
The interval is mean +- q * sqrt(image variance + seed variance), q the Student t quantile at
Welch-Satterthwaite degrees of freedom df = total^2 / (seed^2 / (n_seeds - 1)): n_seeds - 1 when
the seeds dominate (with 3 seeds q = 4.30 at 95%), growing towards the normal 1.96 when the
images do. Why not a percentile interval of a two-level bootstrap that also resamples seeds:
resampling 3 seeds reproduces only (n - 1)/n of their variance and no t quantile widens it, and
on simulated ablations where seeds dominate it covered a known effect in only about 70% of
experiments; this interval keeps its coverage near the nominal level (tests/test_seeds.py).
A replicate in which a BD fails (the drawn curves no longer overlap or rise) is dropped and
counted in `n_failed`; if more than 5% fail, `error` says so and the verdict is withheld. The
verdict `resolved` is True when the interval excludes 0.

With one matched seed there is no seed component: the interval covers image-to-image variation
only (normal quantile), and `method` says so.

Which data count. Rows are per image: columns `cell`, `seed`, `image`, `quality` (a rate point
id), `bpp` and the metric's column. A cell's qualities are those in its rows; the images are
those in the rows of either cell. A (cell, seed) is complete when it has one row with finite
bpp and metric for every image at every quality of the cell; an incomplete seed is left out of
the question (for both cells) and named in `note`. Seeds are matched by their id.

Pure: arrays and DataFrames in, numbers out; `rng_seed` makes the interval reproducible.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rdbench.analysis.bd import BDError, bd
from rdbench.analysis.curves import ms_ssim_to_db

# metric -> (per-image column averaged over images, transform of the mean); others: (metric, None)
CURVE_OF_MEAN = {"ms_ssim_db_of_mean": ("ms_ssim", ms_ssim_to_db)}
FAILED_LIMIT = 0.05  # above this fraction of failed replicates the interval is not trusted
REQUIRED = ("cell", "seed", "image", "quality", "bpp")


@dataclass(frozen=True)
class SeedBD:
    test: str
    anchor: str
    metric: str
    mean: float  # mean over matched seeds of the per-seed BD-rate (%), all images
    ci_low: float
    ci_high: float
    level: float
    n_seeds: int  # matched seeds with complete curves in both cells
    n_images: int
    resolved: bool  # the interval excludes 0 (and nothing failed)
    per_seed: tuple[float, ...]  # BD-rate (%) of each matched seed, in the order of `seeds`
    seeds: tuple = ()
    n_boot: int = 0
    n_failed: int = 0  # bootstrap replicates dropped because a BD failed
    method: str = ""
    error: str = ""  # "" when fine; otherwise why there is no number or no verdict
    note: str = ""  # seeds left out, lowest overlap


def _column(metric: str) -> tuple[str, object]:
    return CURVE_OF_MEAN.get(metric, (metric, None))


def _cube(rows: pd.DataFrame, column: str, seeds: list, images: list) -> tuple[np.ndarray, np.ndarray, list]:
    """bpp and metric as arrays [seed, image, quality] (NaN where a row is missing), and the qualities."""
    qualities = sorted(rows["quality"].unique(), key=lambda q: (str(type(q)), q))
    index = pd.MultiIndex.from_product([seeds, images, qualities], names=["seed", "image", "quality"])
    table = rows.set_index(["seed", "image", "quality"])[["bpp", column]].reindex(index)
    shape = (len(seeds), len(images), len(qualities))
    return (table["bpp"].to_numpy(float).reshape(shape), table[column].to_numpy(float).reshape(shape), qualities)


def _operational(rate: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """curves.operational on arrays: sorted by rate, each point kept if it beats every cheaper point."""
    order = np.argsort(rate, kind="stable")
    rate, value = rate[order], value[order]
    best = np.concatenate(([-np.inf], np.maximum.accumulate(value)[:-1]))
    keep = value > best
    return rate[keep], value[keep]


def _bd_rate(test_rate, test_value, anchor_rate, anchor_value):
    """BD-rate (%) and overlap of two mean curves on their operational points; raises BDError."""
    tr, tv = _operational(test_rate, test_value)
    ar, av = _operational(anchor_rate, anchor_value)
    result = bd(ar, av, tr, tv, "rate", "pchip")
    return result.value, result.overlap


def _nan_result(test, anchor, metric, level, n_seeds, n_images, error, note="", seeds=(), per_seed=()):
    return SeedBD(test, anchor, metric, math.nan, math.nan, math.nan, level, n_seeds, n_images, False,
                  tuple(per_seed), tuple(seeds), 0, 0, "", error, note)


def interval_method(n_seeds: int, n_images: int, n_boot: int = 2000, level: float = 0.95) -> str:
    """How `seed_bd` computes an answer and its interval, in words: the same whether or not a
    question got a number (a page's "Method:" line never depends on some question succeeding)."""
    spread = ("seeds and images" if n_seeds > 1
              else "images only (1 seed): seed-to-seed variation not covered")
    return (f"mean of per-seed BD-rate (pchip, operational points); {level:.0%} t interval over {spread}: "
            f"variance = paired image-bootstrap variance ({n_boot} replicates, same images for both cells and "
            f"every seed) + per-seed sample variance / n_seeds, Welch-Satterthwaite df "
            f"({n_seeds} seeds x {n_images} images)")


def seed_bd(rows: pd.DataFrame, test: str, anchor: str, metric: str, n_boot: int = 2000, level: float = 0.95,
            rng_seed: int = 0) -> SeedBD:
    """BD-rate of `test` vs `anchor` over matched seeds: mean, bootstrap interval, verdict (module docstring)."""
    column, transform = _column(metric)
    missing = [c for c in (*REQUIRED, column) if c not in rows.columns]
    if missing:
        raise ValueError(f"rows lack the column(s) {', '.join(missing)}")
    if not 0 < level < 1:
        raise ValueError(f"level {level}: expected a fraction between 0 and 1")
    if n_boot < 1:
        raise ValueError(f"n_boot {n_boot}: expected at least 1")
    parts = {cell: rows[rows["cell"] == cell] for cell in (test, anchor)}
    for cell, part in parts.items():
        if part.empty:
            return _nan_result(test, anchor, metric, level, 0, 0, f"no rows for cell {cell!r}")
        dup = part.duplicated(subset=["seed", "image", "quality"])
        if dup.any():
            first = part[dup].iloc[0]
            return _nan_result(test, anchor, metric, level, 0, 0,
                               f"{cell}: {int(dup.sum())} duplicate rows (e.g. seed {first['seed']}, image "
                               f"{first['image']}, quality {first['quality']})")
    images = sorted(set(parts[test]["image"]) | set(parts[anchor]["image"]), key=str)
    common = set(parts[test]["seed"]) & set(parts[anchor]["seed"])
    unmatched = sorted(set(parts[test]["seed"]) ^ set(parts[anchor]["seed"]), key=str)
    seeds = sorted(common, key=lambda s: (str(type(s)), s))
    notes = [f"seed(s) {', '.join(map(str, unmatched))} not in both cells: left out"] if unmatched else []
    if not seeds:
        return _nan_result(test, anchor, metric, level, 0, len(images), "no seed is present in both cells",
                           "; ".join(notes))
    cubes = {cell: _cube(parts[cell], column, seeds, images) for cell in (test, anchor)}
    complete = np.ones(len(seeds), dtype=bool)
    for cell, (b, v, _) in cubes.items():
        ok = (np.isfinite(b) & np.isfinite(v)).all(axis=(1, 2))
        if not ok.all():
            notes.append(f"{cell}: seed(s) {', '.join(str(s) for s, k in zip(seeds, ok) if not k)} lack some "
                         "image or quality: left out")
        complete &= ok
    seeds = [s for s, k in zip(seeds, complete) if k]
    if not seeds:
        return _nan_result(test, anchor, metric, level, 0, len(images), "no matched seed has complete curves in both "
                           "cells", "; ".join(notes))
    (tb, tv, _), (ab, av, _) = ((b[complete], v[complete], q) for b, v, q in (cubes[test], cubes[anchor]))
    n_seeds, n_images = len(seeds), len(images)

    def curve_values(means: np.ndarray) -> np.ndarray:
        return transform(means) if transform is not None else means

    # point estimate: every image once, every seed once
    per_seed, overlaps = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # low overlap is reported in the note, not warned per replicate
        for k, seed in enumerate(seeds):
            try:
                value, overlap = _bd_rate(tb[k].mean(axis=0), curve_values(tv[k].mean(axis=0)),
                                          ab[k].mean(axis=0), curve_values(av[k].mean(axis=0)))
            except BDError as exc:
                return _nan_result(test, anchor, metric, level, n_seeds, n_images, f"seed {seed}: {exc}",
                                   "; ".join(notes), seeds)
            per_seed.append(value)
            overlaps.append(overlap)
        notes.append(f"lowest overlap {min(overlaps):.2f}")

        # paired bootstrap over images: weights per (replicate, image), every matched seed's curves
        # on the same drawn images, the replicate's value the mean of their BD-rates
        rng = np.random.default_rng(rng_seed)
        image_draws = rng.integers(0, n_images, size=(n_boot, n_images))
        weights = np.zeros((n_boot, n_images))
        np.add.at(weights, (np.arange(n_boot)[:, None], image_draws), 1.0 / n_images)
        curves = {name: np.einsum("ri,siq->rsq", weights, cube) for name, cube in
                  (("tb", tb), ("tv", tv), ("ab", ab), ("av", av))}
        curves["tv"], curves["av"] = curve_values(curves["tv"]), curve_values(curves["av"])
        replicates = np.full(n_boot, np.nan)
        for r in range(n_boot):
            try:
                values = [_bd_rate(curves["tb"][r, k], curves["tv"][r, k], curves["ab"][r, k],
                                   curves["av"][r, k])[0] for k in range(n_seeds)]
            except BDError:
                continue
            replicates[r] = float(np.mean(values))
    kept = replicates[np.isfinite(replicates)]
    n_failed = n_boot - kept.size
    mean = float(np.mean(per_seed))
    # two variance components of the mean over seeds: images (the bootstrap's variance) and seeds
    # (the per-seed values' sample variance / n); a t interval with Welch-Satterthwaite degrees of
    # freedom, which are n_seeds - 1 when seeds dominate and grow without bound when images do
    image_var = float(np.var(kept, ddof=1)) if kept.size > 1 else math.nan
    seed_var = float(np.var(per_seed, ddof=1)) / n_seeds if n_seeds > 1 else 0.0
    total = image_var + seed_var
    if math.isfinite(total) and total > 0:
        df = math.inf if seed_var == 0 else total**2 / (seed_var**2 / (n_seeds - 1))
        from scipy.stats import norm, t as student_t

        q = float(norm.ppf((1 + level) / 2)) if math.isinf(df) else float(student_t.ppf((1 + level) / 2, df))
        ci_low, ci_high = mean - q * math.sqrt(total), mean + q * math.sqrt(total)
    elif math.isfinite(total):  # no variation at all: the interval is the point
        ci_low = ci_high = mean
        df = math.inf
    else:
        ci_low = ci_high = math.nan
        df = math.nan
    error = ""
    if n_failed > FAILED_LIMIT * n_boot:
        error = (f"{n_failed} of {n_boot} bootstrap replicates failed BD (over {FAILED_LIMIT:.0%}): the interval "
                 "is unreliable and no verdict is given")
    elif n_failed:
        notes.append(f"{n_failed} of {n_boot} replicates failed BD and were dropped")
    if math.isfinite(total):
        notes.append(f"sd from images {math.sqrt(image_var):.2f}, from seeds {math.sqrt(seed_var):.2f} (points); "
                     f"df {df:.1f}")
    resolved = not error and math.isfinite(ci_low) and (ci_low > 0 or ci_high < 0)
    method = interval_method(n_seeds, n_images, n_boot, level)
    return SeedBD(test, anchor, metric, mean, ci_low, ci_high, level, n_seeds, n_images, bool(resolved),
                  tuple(float(v) for v in per_seed), tuple(seeds), n_boot, int(n_failed), method, error,
                  "; ".join(notes))


def _seed_name(seed) -> str:
    text = str(seed)
    return f"s{text}" if text.lstrip("-").isdigit() else text


def per_seed_text(result: SeedBD) -> str:
    """'s0: -5.12; s1: -4.87': the per-seed BD-rates of a result."""
    return "; ".join(f"{_seed_name(s)}: {v:.2f}" for s, v in zip(result.seeds, result.per_seed))


def seed_table(rows: pd.DataFrame, questions: list[tuple[str, str, str]], metric: str, **kw) -> pd.DataFrame:
    """One row per (question, test, anchor): the `seed_bd` answer; kw go to seed_bd (n_boot, level, rng_seed)."""
    out = []
    for question, test, anchor in questions:
        r = seed_bd(rows, test, anchor, metric, **kw)
        out.append({"question": question, "test": test, "anchor": anchor, "bd_rate_mean": r.mean,
                    "bd_rate_ci_low": r.ci_low, "bd_rate_ci_high": r.ci_high, "n_seeds": r.n_seeds,
                    "n_images": r.n_images, "resolved": r.resolved, "per_seed": per_seed_text(r),
                    "method": r.method, "error": r.error, "note": r.note})
    columns = ["question", "test", "anchor", "bd_rate_mean", "bd_rate_ci_low", "bd_rate_ci_high", "n_seeds",
               "n_images", "resolved", "per_seed", "method", "error", "note"]
    return pd.DataFrame(out, columns=columns)
