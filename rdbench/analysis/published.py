"""Published RD curves and CompressAI-style JSON result files: the only reader of curve files.

Analysis functions take curves as DataFrames; this module turns the shipped reference files
(rdbench/reference/, see SOURCE.md there) and users' JSON files into such DataFrames, at the edge:
the command line and the ablation load what they need here and pass it in. Besides the analysis
modules it imports `rdbench.packaged` only, to find the shipped files.

Every curve it returns carries its dataset and image set, and states its conventions:

- shipped published curves are means over Kodak's 24 images (SOURCE.md), so their image set is
  the digest of the 24 pixel SHA-256s of datasets/kodak.toml, which a measured full-Kodak curve
  matches exactly; their MS-SSIM is the mean of per-image linear MS-SSIM, so they have MS-SSIM in
  dB only as `ms_ssim_db_of_mean` (their `ms_ssim_db`, the mean of per-image dB, is unknown: NaN);
- a JSON file written by rdbench (`meta.source` "rdbench") carries its identity in `meta` and
  both MS-SSIM dB conventions in `results`;
- any other CompressAI result file names no image set: it is taken as Kodak's 24 images (the
  convention of CompressAI's results), and its `source` says so.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from rdbench.analysis.curves import add_curves, finish, image_set_digest, ms_ssim_to_db
from rdbench.analysis.tables import measured_anchor
from rdbench.bench.columns import METRICS
from rdbench.packaged import manifests_folder, reference_folder

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
REFERENCE_DATASET = "kodak"  # every shipped published curve is a mean over the 24 Kodak images
PUBLISHED_CONVENTIONS = ("published means over the image set; MS-SSIM (dB) only as the dB of the mean linear "
                         "MS-SSIM (ms_ssim_db_of_mean); ms_ssim_db (mean of per-image dB) not published")


def kodak_images() -> pd.DataFrame:
    """Kodak's 24 images as datasets/kodak.toml lists them: image (file name) and image_sha256 (pixels)."""
    manifest = tomllib.loads((manifests_folder() / f"{REFERENCE_DATASET}.toml").read_text())
    return pd.DataFrame({"image": [i["file"] for i in manifest["images"]],
                         "image_sha256": [i["pixels_sha256"] for i in manifest["images"]]})


def reference_images() -> pd.DataFrame:
    """The image sets of the shipped published curves, as curves.image_index lists measured ones."""
    images = kodak_images()
    return images.assign(image_set=image_set_digest(images["image_sha256"]))[["image_set", "image", "image_sha256"]]


def _kodak_identity() -> dict:
    images = kodak_images()
    return {"dataset": REFERENCE_DATASET, "image_set": image_set_digest(images["image_sha256"]),
            "image_set_size": len(images)}


def curve_from_compressai(data: dict, codec: str, source: str, identity: dict, codec_version: str = "",
                          conventions: str = PUBLISHED_CONVENTIONS) -> pd.DataFrame:
    """A CompressAI result dict as a curve. identity: dataset, image_set, image_set_size (and weighting)."""
    results = data["results"]
    n = len(results["bpp"])

    def values(key):
        return np.asarray([math.nan if v is None else v for v in results.get(key, [math.nan] * n)], dtype=float)

    ms = values("ms-ssim-rgb")
    frame = pd.DataFrame({
        "dataset": identity["dataset"],
        "image_set": identity["image_set"],
        "image_set_size": identity["image_set_size"],
        "codec": codec,
        "codec_version": codec_version,
        "source": source,
        "quality": results.get("quality", range(n)),
        "n_images": results.get("n_images", [identity["image_set_size"]] * n),
        "complete": True,
        "bpp": values("bpp"),
        "psnr_rgb": values("psnr-rgb"),
        "ms_ssim": ms,
        "ms_ssim_db_of_mean": ms_ssim_to_db(ms),
        "enc_s": values("encoding_time"),
        "dec_s": values("decoding_time"),
        "weighting": identity.get("weighting", "mean"),
        "conventions": conventions,
    })
    for column in METRICS:  # rdbench's own names (psnr_y, ms_ssim_db, ...): written by to_compressai_json only
        if column not in frame:
            frame[column] = values(column)
    return finish(frame.sort_values("bpp"))


def published_names() -> list[str]:
    return sorted(p.name[:-5] for p in reference_folder().iterdir() if p.name.endswith(".json"))


def published(name: str) -> pd.DataFrame:
    """A shipped published Kodak curve, by alias (bpg, mbt2018, ...) or file stem, labelled as published."""
    stem = PUBLISHED_ALIASES.get(name, name)
    res = reference_folder() / f"{stem}.json"
    if not res.is_file():
        raise ValueError(f"no published curve {name!r}; known: {', '.join(sorted(PUBLISHED_ALIASES))} or {', '.join(published_names())}")
    data = json.loads(res.read_text())
    label = f"{data.get('name', stem)} (published)"
    return curve_from_compressai(data, label, f"published: CompressAI results/image/kodak/{stem}.json",
                                 _kodak_identity(), data.get("description", ""))


def _check_compressai(data, path) -> None:
    """Refuse, naming the file, what curve_from_compressai cannot read: every `results` entry a list
    as long as `bpp`, of numbers or nulls (quality: also strings); the names and `meta` of the right types."""

    def fail(message):
        raise ValueError(f"{path}: not a CompressAI result file: {message}")

    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or "bpp" not in data["results"]:
        fail("expected an object with 'results' holding 'bpp'")
    results = data["results"]
    n = len(results["bpp"]) if isinstance(results["bpp"], list) else -1
    for key, values in results.items():
        if not isinstance(values, list) or len(values) != n:
            fail(f"results[{key!r}] must be a list as long as results['bpp'] ({max(n, 0)})")
        for v in values:
            number = isinstance(v, (int, float)) and not isinstance(v, bool) and (not isinstance(v, int) or abs(v) < 2**1000)
            if not (v is None or number or (key == "quality" and isinstance(v, str))):
                fail(f"results[{key!r}] holds {v!r}, not a number")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            fail(f"{key!r} must be a string")
    meta = data.get("meta")
    if meta is not None and not isinstance(meta, dict):
        fail("'meta' must be an object")
    meta = meta or {}
    if meta.get("source") == "rdbench" and "dataset" not in meta:
        fail("meta (source rdbench) names no dataset")
    for key in ("dataset", "image_set", "weighting", "codec", "codec_version", "conventions"):
        if key in meta and not isinstance(meta[key], str):
            fail(f"meta[{key!r}] must be a string")
    if "n_images" in meta and not (isinstance(meta["n_images"], (int, float)) and not isinstance(meta["n_images"], bool)):
        fail("meta['n_images'] must be a number")


def read_compressai_json(path: str | Path) -> pd.DataFrame:
    """A CompressAI-style result JSON file as a curve (source: the file); see the module's docstring
    for the identity and conventions it is given."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path}: not a CompressAI result file: not JSON ({exc})") from None
    _check_compressai(data, path)
    meta = data.get("meta") or {}
    if meta.get("source") == "rdbench":
        identity = {"dataset": meta["dataset"], "image_set": meta.get("image_set", ""),
                    "image_set_size": meta.get("n_images", math.nan), "weighting": meta.get("weighting", "mean")}
        # the file's name is its curve's name, as in any CompressAI file (to_compressai_json writes the label)
        return curve_from_compressai(data, data.get("name") or meta.get("codec", Path(path).stem), f"file: {path}",
                                     identity, meta.get("codec_version", ""), meta.get("conventions", ""))
    dataset = meta.get("dataset", REFERENCE_DATASET)
    if dataset == REFERENCE_DATASET:
        identity, assumed = _kodak_identity(), " (no image set stated: taken as Kodak's 24 images)"
    else:
        identity, assumed = {"dataset": dataset, "image_set": "", "image_set_size": math.nan}, " (no image set stated)"
    conventions = ("means as in the file; MS-SSIM (dB) only as the dB of its mean linear MS-SSIM "
                   "(ms_ssim_db_of_mean; CompressAI's convention)")
    return curve_from_compressai(data, data.get("name", Path(path).stem), f"file: {path}{assumed}", identity,
                                 data.get("description", ""), conventions)


def with_references(curve_table: pd.DataFrame, names) -> pd.DataFrame:
    """`curve_table` plus the published curves `names` (aliases or file stems), each unless already in it."""
    return add_curves(curve_table, [published(n) for n in names])


def anchor_if_unmeasured(curve_table: pd.DataFrame, anchor: str) -> pd.DataFrame | None:
    """The published curve that BD tables fall back on for `anchor`: None when every dataset of the table
    has a measured curve of it. When none has, an unknown name raises ValueError (naming the known curves);
    when only some have, the datasets without it get no anchor (their BD rows say so)."""
    datasets = curve_table.loc[~curve_table["source"].astype(str).str.startswith("published"), "dataset"].unique()
    missing = [d for d in datasets if measured_anchor(curve_table[curve_table["dataset"] == d], anchor).empty]
    if len(datasets) and not missing:
        return None
    if len(missing) == len(datasets):
        try:
            return published(anchor)
        except ValueError as exc:
            raise ValueError(_unknown_anchor(curve_table, anchor, exc)) from None
    try:
        return published(anchor)
    except ValueError:
        return None


def _unknown_anchor(curve_table: pd.DataFrame, anchor: str, exc: ValueError) -> str:
    """An anchor that is neither measured nor published: the measured curves first, with a did-you-mean
    (`jpg` -> the measured `jpeg`), then the published names."""
    import difflib

    measured = curve_table[~curve_table["source"].astype(str).str.startswith("published")]
    names = list(dict.fromkeys([*measured["label"].astype(str), *measured["codec"].astype(str),
                                *measured["codec"].astype(str).str.split(":").str[0]]))
    close = difflib.get_close_matches(anchor, names, n=1, cutoff=0.6)
    guess = f"did you mean the measured {close[0]!r}? " if close else ""
    return (f"--anchor {anchor!r}: not measured here and not a published curve; {guess}"
            f"measured: {', '.join(dict.fromkeys(measured['label'].astype(str))) or 'none'}; {exc}")
