"""Published RD curves and CompressAI-style JSON result files: the only reader of curve files.

Analysis functions take curves as DataFrames; this module turns the shipped reference files
(rdbench/reference/, see SOURCE.md there) and users' JSON files into such DataFrames, at the edge:
the command line and the ablation load what they need here and pass it in. Besides the analysis
modules it imports `rdbench.packaged` only, to find the shipped files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from rdbench.analysis.curves import add_curves
from rdbench.analysis.tables import measured_anchor
from rdbench.bench.columns import CURVE_COLUMNS
from rdbench.packaged import reference_folder

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


def curve_from_compressai(data: dict, codec: str, source: str, dataset: str) -> pd.DataFrame:
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
    return curve_from_compressai(data, label, f"published: CompressAI results/image/kodak/{stem}.json", dataset)


def read_compressai_json(path: str | Path, dataset: str = "kodak") -> pd.DataFrame:
    """A CompressAI-style result JSON file as a curve (source: the file)."""
    data = json.loads(Path(path).read_text())
    return curve_from_compressai(data, data.get("name", Path(path).stem), f"file: {path}", dataset)


def with_references(curve_table: pd.DataFrame, names) -> pd.DataFrame:
    """`curve_table` plus the published curves `names` (aliases or file stems), each unless already in it."""
    return add_curves(curve_table, [published(n) for n in names])


def anchor_if_unmeasured(curve_table: pd.DataFrame, anchor: str) -> pd.DataFrame | None:
    """The published curve that BD tables fall back on for `anchor`: None when the table has a measured
    curve of it; an unknown name raises ValueError (naming the known curves)."""
    return None if len(measured_anchor(curve_table, anchor)) else published(anchor)
