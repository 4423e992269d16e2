"""RD curves: per-(dataset, codec, quality) aggregates of result rows, and published curves.

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

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from rdbench.packaged import reference_folder

METRICS = ("psnr_rgb", "psnr_y", "ms_ssim", "ms_ssim_db")
CURVE_COLUMNS = ("dataset", "codec", "source", "quality", "n_images", "complete", "bpp", *METRICS, "enc_s", "dec_s", "weighting")

# Short names for the shipped published curves (any file stem in rdbench/reference works too).
PUBLISHED_ALIASES = {
    "bpg": "bpg_444_x265_ycbcr",
    "jpeg": "jpeg",
    "webp": "webp",
    "jpeg2000": "jpeg2000",
    "vtm": "vtm",
    "hm": "hm",
    "av1": "av1",
    "mbt2018": "paper-mbt2018",
    "mbt2018-mean": "paper-mbt2018-mean",
}


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
        table = ok.groupby(keys)[["bpp", *METRICS, "enc_s", "dec_s"]].mean()
    else:
        def aggregate(g: pd.DataFrame) -> pd.Series:
            out = {"bpp": 8.0 * g["bytes"].sum() / g["pixels"].sum()}
            for col in (*METRICS, "enc_s", "dec_s"):
                out[col] = _weighted_mean(g[col], g["pixels"])
            return pd.Series(out)

        table = ok.groupby(keys)[["bytes", "pixels", *METRICS, "enc_s", "dec_s"]].apply(aggregate)
    table["n_images"] = ok.groupby(keys)["image_sha256"].nunique()
    table = table.reset_index()
    table["complete"] = table["n_images"] == table.groupby(["dataset", "codec"])["n_images"].transform("max")
    table["source"] = "measured"
    table["weighting"] = weighting
    return table[list(CURVE_COLUMNS)].sort_values(["dataset", "codec", "bpp"]).reset_index(drop=True)


def _json_curve(data: dict, codec: str, source: str, dataset: str) -> pd.DataFrame:
    results = data["results"]
    n = len(results["bpp"])
    ms = np.asarray(results.get("ms-ssim-rgb", [math.nan] * n), dtype=float)
    with np.errstate(divide="ignore"):
        ms_db = -10 * np.log10(1 - ms)
    frame = pd.DataFrame({
        "dataset": dataset,
        "codec": codec,
        "source": source,
        "quality": results.get("quality", range(n)),
        "n_images": np.nan,
        "complete": True,
        "bpp": np.asarray(results["bpp"], dtype=float),
        "psnr_rgb": np.asarray(results.get("psnr-rgb", [math.nan] * n), dtype=float),
        "psnr_y": np.nan,
        "ms_ssim": ms,
        "ms_ssim_db": ms_db,
        "enc_s": np.asarray(results.get("encoding_time", [math.nan] * n), dtype=float),
        "dec_s": np.asarray(results.get("decoding_time", [math.nan] * n), dtype=float),
        "weighting": "mean",
    })
    return frame[list(CURVE_COLUMNS)].sort_values("bpp").reset_index(drop=True)


def published_names() -> list[str]:
    return sorted(p.name[:-5] for p in reference_folder().iterdir() if p.name.endswith(".json"))


def published(name: str, dataset: str = "kodak") -> pd.DataFrame:
    """A shipped published Kodak curve, by alias (bpg, mbt2018, ...) or file stem, labelled as published."""
    stem = PUBLISHED_ALIASES.get(name, name)
    res = reference_folder() / f"{stem}.json"
    if not res.is_file():
        raise ValueError(f"no published curve {name!r}; known: {', '.join(sorted(PUBLISHED_ALIASES))} or {', '.join(published_names())}")
    data = json.loads(res.read_text())
    label = f"{data.get('name', stem)} (published)"
    return _json_curve(data, label, f"published: CompressAI results/image/kodak/{stem}.json", dataset)


def read_compressai_json(path: str | Path, dataset: str = "kodak") -> pd.DataFrame:
    """A CompressAI-style result JSON file as a curve (source: the file)."""
    data = json.loads(Path(path).read_text())
    return _json_curve(data, data.get("name", Path(path).stem), f"file: {path}", dataset)


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
