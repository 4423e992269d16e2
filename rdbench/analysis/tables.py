"""BD tables: every codec against an anchor, on mean curves or per image.

Every row says how its numbers were computed: metric, method, mode, anchor (and whether the
anchor was measured here or published), the overlap fraction and interval, and whether the
metrics were computed on 8-bit decoded images.

The anchor is the measured curve of that codec when the table has one; otherwise the caller
passes the curve to use instead (`published_anchor`, loaded at the edge by
`analysis.published.anchor_if_unmeasured`). Nothing here reads a file.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from rdbench.analysis.bd import BDError, bd

BOOTSTRAP_RESAMPLES = 2000


def measured_anchor(curve_table: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """The measured curve of `anchor` in the table: the codec with that spec, else the only measured
    spec with that codec name (`bpg` finds `bpg:encoder=x265`); empty when there is none."""
    measured = curve_table[(curve_table["codec"] == anchor) & (curve_table["source"] == "measured")]
    if measured.empty:
        by_name = curve_table[(curve_table["codec"].str.split(":").str[0] == anchor) & (curve_table["source"] == "measured")]
        if by_name["codec"].nunique() == 1:
            measured = by_name
    return measured


def resolve_anchor(curve_table: pd.DataFrame, anchor: str, published_anchor: pd.DataFrame | None = None) -> pd.DataFrame:
    """The anchor's curve: measured if it is in the table, else `published_anchor` (given by the caller)."""
    measured = measured_anchor(curve_table, anchor)
    if not measured.empty:
        return measured
    if published_anchor is None:
        raise ValueError(f"anchor {anchor!r} is not measured in these curves, and no published curve of it was given")
    return published_anchor


def _row(codec, source, result, anchor_curve, metric, method, mode, n_points, error=None) -> dict:
    return {
        "codec": codec,
        "source": source,
        "metric": metric,
        "method": method,
        "mode": mode,
        "anchor": anchor_curve["codec"].iloc[0],
        "anchor_source": anchor_curve["source"].iloc[0],
        "bd_rate_pct": result["rate"].value if result else np.nan,
        "bd_metric": result["metric"].value if result else np.nan,
        "overlap": result["rate"].overlap if result else np.nan,
        "interval_lo": result["rate"].interval[0] if result else np.nan,
        "interval_hi": result["rate"].interval[1] if result else np.nan,
        "n_points": n_points,
        "on_8bit_decoded": source == "measured",
        "error": error or "",
    }


def _both(anchor: pd.DataFrame, test: pd.DataFrame, metric: str, method: str) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overlap is reported in the table instead
        return {
            kind: bd(anchor["bpp"], anchor[metric], test["bpp"], test[metric], kind, method)
            for kind in ("rate", "metric")
        }


def bd_table(curve_table: pd.DataFrame, anchor: str = "bpg", metric: str = "psnr_rgb", method: str = "pchip",
             published_anchor: pd.DataFrame | None = None) -> pd.DataFrame:
    """BD-rate (%) and BD-metric of every curve in `curve_table` against `anchor`, on mean curves.

    The anchor is its measured curve in the table, else `published_anchor` (see resolve_anchor)."""
    anchor_curve = resolve_anchor(curve_table, anchor, published_anchor)
    anchor_points = anchor_curve[anchor_curve["complete"]]
    rows = []
    for (codec, source), curve in curve_table.groupby(["codec", "source"], sort=False):
        if codec == anchor_curve["codec"].iloc[0]:
            continue
        points = curve[curve["complete"]]
        try:
            result = _both(anchor_points, points, metric, method)
            rows.append(_row(codec, source, result, anchor_curve, metric, method, "mean curves", len(points)))
        except BDError as exc:
            rows.append(_row(codec, source, None, anchor_curve, metric, method, "mean curves", len(points), str(exc)))
    return pd.DataFrame(rows)


def per_image_bd(results: pd.DataFrame, anchor: str, metric: str = "psnr_rgb", method: str = "pchip") -> pd.DataFrame:
    """BD per image (each codec's curve on one image against the anchor's on the same image)."""
    ok = results[results["status"] == "ok"]
    anchor_rows = ok[ok["codec"] == anchor]
    if anchor_rows.empty:
        raise ValueError(
            f"per-image BD needs the anchor {anchor!r} measured on the same images "
            "(published curves are means only); run it, or use mean-curve mode"
        )
    out = []
    for codec, rows in ok.groupby("codec"):
        if codec == anchor:
            continue
        for sha, image_rows in rows.groupby("image_sha256"):
            a = anchor_rows[anchor_rows["image_sha256"] == sha]
            if a.empty:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = bd(a["bpp"], a[metric], image_rows["bpp"], image_rows[metric], "rate", method)
                    m = bd(a["bpp"], a[metric], image_rows["bpp"], image_rows[metric], "metric", method)
                out.append({"codec": codec, "image": image_rows["image"].iloc[0], "bd_rate_pct": r.value,
                            "bd_metric": m.value, "overlap": r.overlap, "error": ""})
            except BDError as exc:
                out.append({"codec": codec, "image": image_rows["image"].iloc[0], "bd_rate_pct": np.nan,
                            "bd_metric": np.nan, "overlap": np.nan, "error": str(exc)})
    return pd.DataFrame(out, columns=["codec", "image", "bd_rate_pct", "bd_metric", "overlap", "error"])


def bootstrap_ci(values: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean, resampling images with replacement."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def bd_table_per_image(results: pd.DataFrame, anchor: str, metric: str = "psnr_rgb", method: str = "pchip") -> pd.DataFrame:
    """Per-image BD averaged over images, with standard deviation and bootstrap 95% interval."""
    per_image = per_image_bd(results, anchor, metric, method)
    anchor_version = results.loc[results["codec"] == anchor, "codec_version"].iloc[0]
    rows = []
    for codec, g in per_image.groupby("codec"):
        good = g["bd_rate_pct"].dropna().to_numpy()
        lo, hi = bootstrap_ci(good)
        rows.append({
            "codec": codec, "source": "measured", "metric": metric, "method": method, "mode": "per image, averaged",
            "anchor": anchor, "anchor_source": f"measured ({anchor_version})",
            "bd_rate_pct": float(np.mean(good)) if good.size else np.nan,
            "bd_metric": float(g["bd_metric"].mean()),
            "overlap": float(g["overlap"].min()) if good.size else np.nan,
            "n_images": int(good.size), "n_failed": int(g["error"].ne("").sum()),
            "std_pct": float(np.std(good, ddof=1)) if good.size > 1 else np.nan,
            "ci95_lo": lo, "ci95_hi": hi,
            "on_8bit_decoded": True,
            "error": "; ".join(sorted(set(g["error"]) - {""}))[:500],
        })
    return pd.DataFrame(rows)
