"""Per-image BD: each curve on one image against the anchor on the same image, then the mean over
images with its standard deviation and a 95% bootstrap interval (AWCY's and JPEG AI's mode).

Only images both the codec and the anchor measured are compared; every other image is listed
with the reason it was left out (`dropped`). Per dataset, never pooled.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from rdbench.analysis.bd import BDError, bd
from rdbench.bench.columns import direction

BOOTSTRAP_RESAMPLES = 2000
PER_IMAGE_METRIC = {"ms_ssim_db_of_mean": "ms_ssim_db"}  # on one image the two MS-SSIM dB conventions agree


def _anchor_rows(ok: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """The rows of the anchor in one dataset's rows: by codec spec, else the only spec with that name."""
    rows = ok[ok["codec"] == anchor]
    if rows.empty:
        by_name = ok[ok["codec"].str.split(":").str[0] == anchor]
        if by_name["codec"].nunique() == 1:
            rows = by_name
    if rows["codec_version"].nunique() > 1:
        versions = ", ".join(f"'{v}'" for v in sorted(rows["codec_version"].unique()))
        raise ValueError(f"per-image BD: anchor {anchor!r} has several versions ({versions}); analyse the newest "
                         "only (--versions newest)")
    return rows


def per_image_bd(results: pd.DataFrame, anchor: str, metric: str = "psnr_rgb", method: str = "pchip") -> pd.DataFrame:
    """BD per image: each curve (dataset, codec, version) on one image against the anchor's on the same
    image. An image only one of the two measured is listed with an error saying it was left out."""
    metric = PER_IMAGE_METRIC.get(metric, metric)
    ok = results[results["status"] == "ok"]
    out, anchored = [], False
    for dataset, here in ok.groupby("dataset", sort=False):
        anchor_rows = _anchor_rows(here, anchor)
        if anchor_rows.empty:
            continue
        anchored = True
        anchor_key = (anchor_rows["codec"].iloc[0], anchor_rows["codec_version"].iloc[0])
        anchor_by_image = dict(tuple(anchor_rows.groupby("image_sha256")))
        for (codec, version), rows in here.groupby(["codec", "codec_version"]):
            if (codec, version) == anchor_key:
                continue
            base = {"dataset": dataset, "codec": codec, "codec_version": version}
            test_by_image = dict(tuple(rows.groupby("image_sha256")))
            for sha in sorted(set(anchor_by_image) - set(test_by_image)):
                out.append({**base, "image": anchor_by_image[sha]["image"].iloc[0], "bd_rate_pct": np.nan,
                            "bd_metric": np.nan, "overlap": np.nan, "error": "",
                            "dropped": "not measured by this codec: left out"})
            for sha, image_rows in test_by_image.items():
                name = image_rows["image"].iloc[0]
                a = anchor_by_image.get(sha)
                if a is None:
                    out.append({**base, "image": name, "bd_rate_pct": np.nan, "bd_metric": np.nan, "overlap": np.nan,
                                "error": "", "dropped": "the anchor has no measurement of this image: left out"})
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        r = bd(a["bpp"], a[metric], image_rows["bpp"], image_rows[metric], "rate", method,
                               direction(metric))
                        m = bd(a["bpp"], a[metric], image_rows["bpp"], image_rows[metric], "metric", method,
                               direction(metric))
                    out.append({**base, "image": name, "bd_rate_pct": r.value, "bd_metric": m.value,
                                "overlap": r.overlap, "error": "", "dropped": ""})
                except BDError as exc:
                    out.append({**base, "image": name, "bd_rate_pct": np.nan, "bd_metric": np.nan, "overlap": np.nan,
                                "error": str(exc), "dropped": ""})
    if not anchored:
        raise ValueError(
            f"per-image BD needs the anchor {anchor!r} measured on the same images "
            "(published curves are means only); run it, or use mean-curve mode"
        )
    return pd.DataFrame(out, columns=["dataset", "codec", "codec_version", "image", "bd_rate_pct", "bd_metric",
                                      "overlap", "error", "dropped"])


def bootstrap_ci(values: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean, resampling images with replacement."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def bd_table_per_image(results: pd.DataFrame, anchor: str, metric: str = "psnr_rgb", method: str = "pchip",
                       per_image: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-image BD averaged over images, with standard deviation and bootstrap 95% interval, per dataset.
    BD is computed on the images both the codec and the anchor measured; `dropped` names the others."""
    per_image = per_image_bd(results, anchor, metric, method) if per_image is None else per_image
    used = PER_IMAGE_METRIC.get(metric, metric)
    ok = results[results["status"] == "ok"]
    rows = []
    for (dataset, codec, version), g in per_image.groupby(["dataset", "codec", "codec_version"], sort=False):
        anchor_rows = _anchor_rows(ok[ok["dataset"] == dataset], anchor)
        kept = g[g["dropped"] == ""]
        good = kept["bd_rate_pct"].dropna().to_numpy()
        lo, hi = bootstrap_ci(good)
        dropped = g[g["dropped"] != ""]
        versions = per_image.loc[(per_image["dataset"] == dataset) & (per_image["codec"] == codec), "codec_version"]
        label = codec if versions.nunique() == 1 else f"{codec} [{version}]"
        rows.append({
            "codec": codec, "label": label, "codec_version": version, "dataset": dataset, "source": "measured",
            "metric": used, "convention": f"per image ({used} of each image), then the mean over images",
            "method": method, "mode": "per image, averaged",
            "anchor": anchor_rows["codec"].iloc[0], "anchor_version": anchor_rows["codec_version"].iloc[0],
            "anchor_source": f"measured ({anchor_rows['codec_version'].iloc[0]})",
            "bd_rate_pct": float(np.mean(good)) if good.size else np.nan,
            "bd_metric": float(kept["bd_metric"].mean()),
            "overlap": float(kept["overlap"].min()) if good.size else np.nan,
            "n_images": int(good.size), "n_failed": int(kept["error"].ne("").sum()),
            "n_dropped": len(dropped),
            "dropped": ", ".join(f"{img} ({why.split(':')[0]})" for img, why in zip(dropped["image"], dropped["dropped"])),
            "std_pct": float(np.std(good, ddof=1)) if good.size > 1 else np.nan,
            "ci95_lo": lo, "ci95_hi": hi,
            "on_8bit_decoded": True,
            "error": "; ".join(sorted(set(kept["error"]) - {""}))[:500],
        })
    return pd.DataFrame(rows)
