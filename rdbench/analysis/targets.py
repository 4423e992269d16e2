"""Comparisons at target rates: each codec's quality at fixed bpp, and CLIC's corpus budget.

Two views of the ladder rows of results.csv (target-search rows, `rdbench run --target-bpp`, are
the measured alternative: each image coded once at its own quality):

`at_target_rates(rows, rates)`: per curve (dataset, codec, codec version) and target rate, the
mean over images of each image's metric at exactly that rate, read off the image's own RD curve
by linear interpolation in log(bpp) between its two measured points around the rate. Each value
says how far it was from a measured point (`gap_bpp`: the distance in bpp from the target to the
nearest measured point of that image; the table gives its mean and maximum over images). An image
whose measured rates do not reach the target is not extrapolated: it is counted in `outside`,
and the rate has no mean at all (a mean over fewer images would compare other images; measure
lower or higher qualities, `rdbench run --quality`, to cover it).

`corpus_budget(rows, budgets)`: CLIC's rule: one budget of bits for the whole set (budget bpp x
all pixels), and PSNR pooled over all pixels (the MSE of every pixel of every image, then
10 log10(255^2 / MSE)). Two allocations per codec: `one quality` (the best single quality whose
pooled rate fits the budget) and `per image` (each image's quality chosen to minimise the summed
squared error under the budget: Lagrangian allocation over each image's lower convex hull, the
usual approximation of the optimal choice; it never exceeds the budget).

JPEG AI's test rates are 0.06, 0.12, 0.25, 0.5 and 0.75 bpp; CLIC's (2020 to 2022 image tracks)
0.075, 0.15 and 0.3 bpp.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

JPEG_AI_RATES = (0.06, 0.12, 0.25, 0.5, 0.75)
CLIC_RATES = (0.075, 0.15, 0.3)
TARGET_RATES = {"JPEG AI": JPEG_AI_RATES, "CLIC": CLIC_RATES}
DEFAULT_METRICS = ("psnr_rgb", "ms_ssim_db")
_CURVE = ["dataset", "codec", "codec_version"]


def _ladder_ok(rows: pd.DataFrame) -> pd.DataFrame:
    from rdbench.analysis.curves import ladder_rows

    ok = ladder_rows(rows)
    ok = ok[ok["status"] == "ok"].copy()
    for key in _CURVE:
        ok[key] = ok[key].fillna("").astype(str)
    return ok


def _interpolate(bpp: np.ndarray, values: np.ndarray, rate: float) -> float:
    """The value at `rate` on the piecewise-linear curve (log bpp, value); NaN outside."""
    order = np.argsort(bpp)
    bpp, values = bpp[order], values[order]
    if not (bpp[0] <= rate <= bpp[-1]):
        return math.nan
    return float(np.interp(math.log(rate), np.log(bpp), values))


def at_target_rates(rows: pd.DataFrame, rates=None, metrics=DEFAULT_METRICS) -> pd.DataFrame:
    """One row per (dataset, codec, codec_version, target_bpp): the mean metric values at that rate,
    images used and outside the measured range, and the gap to the nearest measured point."""
    rates = sorted({float(r) for r in (rates or [r for rs in TARGET_RATES.values() for r in rs])})
    ok = _ladder_ok(rows)
    metrics = [m for m in metrics if m in ok and ok[m].notna().any()]
    out = []
    for key, curve in ok.groupby(_CURVE, sort=True):
        images = list(curve.groupby("image_sha256"))
        for rate in rates:
            source = ", ".join(name for name, rs in TARGET_RATES.items() if rate in rs)
            values = {m: [] for m in metrics}
            gaps, outside = [], 0
            for _, points in images:
                bpp = points["bpp"].to_numpy(float)
                usable = np.isfinite(bpp) & (bpp > 0)
                if usable.sum() < 2 or not (bpp[usable].min() <= rate <= bpp[usable].max()):
                    outside += 1
                    continue
                gaps.append(float(np.abs(bpp[usable] - rate).min()))
                for m in metrics:
                    v = points[m].to_numpy(float)
                    good = usable & np.isfinite(v)
                    values[m].append(_interpolate(bpp[good], v[good], rate) if good.sum() >= 2 else math.nan)
            row = dict(zip(_CURVE, key))
            row.update(target_bpp=rate, rates_of=source, n_images=len(gaps), outside=outside)
            for m in metrics:  # a mean over fewer images than the set's would compare other images: none
                complete = not outside and values[m] and np.isfinite(values[m]).all()
                row[m] = float(np.mean(values[m])) if complete else math.nan
            row["gap_bpp_mean"] = float(np.mean(gaps)) if gaps else math.nan
            row["gap_bpp_max"] = float(np.max(gaps)) if gaps else math.nan
            out.append(row)
    columns = [*_CURVE, "target_bpp", "rates_of", "n_images", "outside", *metrics, "gap_bpp_mean", "gap_bpp_max"]
    return pd.DataFrame(out, columns=columns)


def _pooled_psnr(sse: float, samples: float) -> float:
    return math.inf if sse == 0 else 10 * math.log10(255.0 ** 2 * samples / sse)


def _hull(points: pd.DataFrame) -> pd.DataFrame:
    """The image's points on the lower convex hull of (bytes, sse), by increasing bytes."""
    pts = points.sort_values(["bytes", "sse"]).drop_duplicates("bytes")
    hull = []
    for p in pts.itertuples():
        if hull and p.sse >= hull[-1].sse:
            continue  # more bytes for no less error: never chosen
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b is above the segment a-p: drop it
            if (b.sse - a.sse) * (p.bytes - a.bytes) >= (p.sse - a.sse) * (b.bytes - a.bytes):
                hull.pop()
            else:
                break
        hull.append(p)
    return pd.DataFrame(hull)


def corpus_budget(rows: pd.DataFrame, budgets=CLIC_RATES) -> pd.DataFrame:
    """CLIC's corpus-budget view: per curve and budget (bpp over the whole set), the pooled PSNR of
    the best single quality and of a per-image allocation, each within the budget."""
    ok = _ladder_ok(rows)
    ok = ok[np.isfinite(ok["psnr_rgb"].astype(float))]
    out = []
    for key, curve in ok.groupby(_CURVE, sort=True):
        curve = curve.copy()
        curve["pixels"] = curve["width"].astype(float) * curve["height"].astype(float)
        curve["sse"] = 3 * curve["pixels"] * 255.0 ** 2 * 10 ** (-curve["psnr_rgb"].astype(float) / 10)
        per_image = {sha: g for sha, g in curve.groupby("image_sha256")}
        pixels = sum(float(g["pixels"].iloc[0]) for g in per_image.values())
        samples = 3 * pixels
        # one quality for every image: only qualities every image has
        complete = curve.groupby("quality").filter(lambda g: g["image_sha256"].nunique() == len(per_image))
        pooled = complete.groupby("quality").agg(bytes=("bytes", "sum"), sse=("sse", "sum"))
        hulls = [_hull(g) for g in per_image.values()]
        for budget in budgets:
            limit = budget * pixels / 8  # bytes
            row = dict(zip(_CURVE, key))
            row.update(budget_bpp=float(budget), n_images=len(per_image))
            fits = pooled[pooled["bytes"] <= limit]
            if len(fits):
                best = fits["sse"].idxmin()
                row.update(one_quality=best, one_quality_bpp=8 * fits.loc[best, "bytes"] / pixels,
                           one_quality_psnr=_pooled_psnr(fits.loc[best, "sse"], samples))
            else:
                row.update(one_quality=math.nan, one_quality_bpp=math.nan, one_quality_psnr=math.nan)
            row.update(_allocate(hulls, limit, pixels, samples))
            out.append(row)
    return pd.DataFrame(out, columns=[*_CURVE, "budget_bpp", "n_images", "one_quality", "one_quality_bpp",
                                      "one_quality_psnr", "per_image_bpp", "per_image_psnr"])


def _allocate(hulls: list[pd.DataFrame], limit: float, pixels: float, samples: float) -> dict:
    """Per-image qualities minimising the summed SSE with summed bytes <= limit (Lagrangian)."""
    def pick(lam: float):
        chosen = [h.iloc[int(np.argmin(h["sse"].to_numpy() + lam * h["bytes"].to_numpy()))] for h in hulls]
        return sum(c["bytes"] for c in chosen), sum(c["sse"] for c in chosen)

    low_bytes, _ = pick(1e30)  # every image at its smallest hull point
    if low_bytes > limit:
        return {"per_image_bpp": math.nan, "per_image_psnr": math.nan}
    lo, hi = 0.0, 1.0
    while pick(hi)[0] > limit:
        hi *= 4
    if pick(lo)[0] <= limit:
        hi = lo
    for _ in range(60):  # lambda for which the summed bytes just fit
        mid = (lo + hi) / 2
        if pick(mid)[0] > limit:
            lo = mid
        else:
            hi = mid
    total_bytes, sse = pick(hi)
    return {"per_image_bpp": 8 * total_bytes / pixels, "per_image_psnr": _pooled_psnr(sse, samples)}


def searched_targets(target_rows: pd.DataFrame, metrics=DEFAULT_METRICS) -> pd.DataFrame:
    """The rows of `rdbench run --target-bpp/--target-psnr`, per curve and target: the mean of what
    each image reached, and how many images hit a bound of the codec's quality scale."""
    ok = target_rows[target_rows["status"] == "ok"].copy()
    for key in (*_CURVE, "target"):
        ok[key] = ok[key].fillna("").astype(str)
    metrics = [m for m in metrics if m in ok]
    bound = ok["target_bound"].fillna("").astype(str) != "" if "target_bound" in ok else pd.Series(False, ok.index)
    ok["bound_hit"] = bound
    table = ok.groupby([*_CURVE, "target"], sort=True).agg(
        n_images=("image_sha256", "nunique"), bpp=("bpp", "mean"), **{m: (m, "mean") for m in metrics},
        bound_hit=("bound_hit", "sum"))
    return table.reset_index()


def _labels(table: pd.DataFrame) -> pd.Series:
    several = table.groupby(["dataset", "codec"])["codec_version"].transform("nunique") > 1
    return table["codec"].where(~several, table["codec"] + " [" + table["codec_version"] + "]")


def targets_markdown(rates: pd.DataFrame, budget: pd.DataFrame, searched: pd.DataFrame | None = None) -> str:
    """The target-rate views as Markdown: a table per view, one line of method each."""
    from rdbench.analysis.document import markdown_table

    parts = []
    if len(rates):
        shown = rates.assign(codec=_labels(rates)).drop(columns=["codec_version"])
        shown["target_bpp"] = shown["target_bpp"].map(lambda v: f"{v:g}")
        parts.append("### At target rates (interpolated on each image's curve)\n\nMean over the images of each image's "
                     "value at the rate, linear in log(bpp) between its two measured points around it; `gap_bpp`: "
                     "distance from the rate to the image's nearest measured point (mean, max). No extrapolation: "
                     "a rate some images do not reach (`outside`) has no mean.\n\n"
                     + markdown_table(shown, "{:.3f}"))
    if len(budget):
        shown = budget.assign(codec=_labels(budget)).drop(columns=["codec_version"])
        parts.append("### CLIC corpus budget (one budget for the whole set, PSNR pooled over all pixels)\n\n"
                     "`one_quality`: the best single quality whose pooled rate fits; `per_image`: each image's quality "
                     "chosen to minimise the summed squared error within the budget (Lagrangian allocation).\n\n"
                     + markdown_table(shown, "{:.3f}"))
    if searched is not None and len(searched):
        shown = searched.assign(codec=_labels(searched)).drop(columns=["codec_version"])
        parts.append("### Measured at searched targets (`rdbench run --target-bpp/--target-psnr`)\n\n"
                     "Each image coded once at the quality its search found; `bound_hit`: images whose target the "
                     "codec could not reach (the row's `target_bound` says which bound).\n\n"
                     + markdown_table(shown, "{:.3f}"))
    return "\n\n".join(parts)
