"""RD curves: per-(dataset, codec, quality) aggregates of result rows.

`curves(rows)` takes the tidy per-image rows of results.csv and returns one row per
(dataset, codec, quality) with:

- weighting="mean" (default; the paper's and CompressAI's convention): mean over images of
  per-image bpp and of per-image metric values (PSNR in dB, MS-SSIM linear, MS-SSIM in dB);
- weighting="pixels" (libjxl, rd_tool): bpp = 8 * sum(bytes) / sum(pixels), metrics weighted by
  each image's pixel count.

Only rows with status "ok" count. `n_images` says how many images a point averages; a point
with fewer images than its codec's most complete point is marked `complete = False` and left out
of BD computations, since means over different image sets do not compare.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rdbench.bench.columns import CURVE_COLUMNS, METRICS, TIMES


def _weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    mask = values.notna()
    if not mask.any():
        return math.nan
    return float(np.average(values[mask], weights=weights[mask]))


def curves(rows: pd.DataFrame, weighting: str = "mean") -> pd.DataFrame:
    if weighting not in ("mean", "pixels"):
        raise ValueError(f"weighting {weighting!r}: expected 'mean' or 'pixels'")
    ok = rows[rows["status"] == "ok"].copy()
    ok["pixels"] = ok["width"] * ok["height"]
    keys = ["dataset", "codec", "quality"]
    if weighting == "mean":
        table = ok.groupby(keys)[["bpp", *METRICS, *TIMES]].mean()
    else:
        def aggregate(g: pd.DataFrame) -> pd.Series:
            out = {"bpp": 8.0 * g["bytes"].sum() / g["pixels"].sum()}
            for col in (*METRICS, *TIMES):
                out[col] = _weighted_mean(g[col], g["pixels"])
            return pd.Series(out)

        table = ok.groupby(keys)[["bytes", "pixels", *METRICS, *TIMES]].apply(aggregate)
    table["n_images"] = ok.groupby(keys)["image_sha256"].nunique()
    table = table.reset_index()
    table["complete"] = table["n_images"] == table.groupby(["dataset", "codec"])["n_images"].transform("max")
    table["source"] = "measured"
    table["weighting"] = weighting
    return table[list(CURVE_COLUMNS)].sort_values(["dataset", "codec", "bpp"]).reset_index(drop=True)


def add_curves(curve_table: pd.DataFrame, extra: list[pd.DataFrame]) -> pd.DataFrame:
    """`curve_table` with the curves in `extra` appended, each unless a curve of that codec is already in it
    (e.g. published reference curves loaded by analysis/published, beside measured ones)."""
    present = set(curve_table["codec"])
    extra = [e for e in extra if e["codec"].iloc[0] not in present]
    return pd.concat([curve_table, *extra], ignore_index=True) if extra else curve_table


def to_compressai_json(curve: pd.DataFrame, name: str, description: str = "") -> dict:
    """One codec's curve in CompressAI's JSON layout (ms-ssim-rgb linear; times in s per image)."""
    c = curve.sort_values("bpp")
    return {
        "name": name,
        "description": description or f"rdbench curve, {c['weighting'].iloc[0]} over images",
        "results": {
            "quality": [float(q) for q in c["quality"]],
            "bpp": [float(v) for v in c["bpp"]],
            "psnr-rgb": [float(v) for v in c["psnr_rgb"]],
            "ms-ssim-rgb": [float(v) for v in c["ms_ssim"]],
            "encoding_time": [float(v) for v in c["enc_s"]],
            "decoding_time": [float(v) for v in c["dec_s"]],
        },
    }
