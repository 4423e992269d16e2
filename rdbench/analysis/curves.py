"""RD curves: one per curve identity, aggregated per quality from the per-image result rows.

A curve's identity is (dataset, image set, codec spec, codec version; columns.CURVE_IDENTITY,
with `source` telling measured curves from published and file ones). Nothing here groups by
fewer keys: two versions of a codec are two curves, never one average, and results of two
datasets are never pooled. A learned codec's version names its model (a hash of the models'
ids), so a retrained model is a new version too.

`curves(rows)` takes the tidy per-image rows of results.csv and returns one row per identity and
quality with:

- weighting="mean" (default; the paper's and CompressAI's convention): mean over images of
  per-image bpp and of per-image metric values (PSNR in dB, MS-SSIM linear, MS-SSIM in dB);
- weighting="pixels" (libjxl, rd_tool): bpp = 8 * sum(bytes) / sum(pixels), metrics weighted by
  each image's pixel count.

MS-SSIM in dB both ways: `ms_ssim_db` is the mean of per-image dB values, `ms_ssim_db_of_mean`
the dB of the mean linear MS-SSIM (CompressAI's convention, and the published curves'). They
differ by a few tenths of a dB, enough to move a BD-rate by several percent.

Image sets: a curve's image set is every image its codec version measured without error on that
dataset; `image_set` is the SHA-256 of their pixel SHA-256s (sorted), `image_set_size` their
count. A point that not every image of the set reached (a failed item) is marked
`complete = False` and left out of BD, since means over different images do not compare.

Only rows with status "ok" count, and only a quality ladder's rows (`ladder_rows`): the rows of a
target search (`target` set; each image at its own quality) are read by analysis/targets.py.
`select_versions` keeps, per (dataset, codec), the version
measured last, and says what it left out.
"""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import pandas as pd

from rdbench import __version__
from rdbench.bench.columns import (CURVE_COLUMNS, CURVE_IDENTITY, METRIC_COLUMNS, METRICS, TIMES, format_versions,
                                   parse_versions)

VERSION_CHOICES = ("newest", "all")  # select_versions: the version measured last, or every version as its own curve
MEASURED_CONVENTIONS = ("{weighting} of per-image values over the image set; ms_ssim_db: {weighting} of per-image "
                        "dB; ms_ssim_db_of_mean: dB of the {weighting} linear MS-SSIM")
SHORT_DIGEST = 12  # hex digits of an image set's digest shown in messages and labels


def image_set_digest(shas) -> str:
    """The identity of a set of images: SHA-256 (hex) of their pixel SHA-256s, sorted, one per line."""
    return hashlib.sha256("\n".join(sorted(set(shas))).encode()).hexdigest()


def describe_set(dataset: str, size, digest: str) -> str:
    """'kodak, 24 images, set 1a2b3c4d5e6f': a curve's image set in a message or table cell."""
    count = "?" if size is None or (isinstance(size, float) and math.isnan(size)) else int(size)
    return f"{dataset}, {count} images, set {digest[:SHORT_DIGEST] if digest else 'unknown'}"


def describe_curve(curve: pd.DataFrame) -> str:
    first = curve.iloc[0]
    return describe_set(first["dataset"], first["image_set_size"], first["image_set"])


def select_versions(rows: pd.DataFrame, versions: str = "newest", by: tuple[str, ...] = ()) -> tuple[pd.DataFrame, list[str]]:
    """The rows to analyse and a note per (dataset, codec, *by) whose older versions were left out.

    versions="newest": per dataset and codec spec (and each value of the columns in `by`, e.g. an
    ablation's seed), only the rows of the version measured last (the latest `finished_at` among its
    rows); "all": every row (each version is its own curve). Identity is carried in columns, never
    joined into one string."""
    if versions not in VERSION_CHOICES:
        raise ValueError(f"versions {versions!r}: expected one of {', '.join(VERSION_CHOICES)}")
    if versions == "all" or rows.empty:
        return rows, []
    when = rows["finished_at"].fillna("").astype(str) if "finished_at" in rows else pd.Series("", index=rows.index)
    keys = ["dataset", "codec", *by]
    ident = rows[[*keys, "codec_version"]].fillna("").astype(str)
    last = when.groupby([ident[k] for k in [*keys, "codec_version"]]).max()
    keep, notes = [], []
    for group, by_version in last.groupby(level=list(range(len(keys)))):
        versions_of = by_version.droplevel(list(range(len(keys))))
        newest = versions_of.sort_values(kind="stable").index[-1]
        keep.append((*group, newest))
        dataset, codec, *extra = group
        where = "".join(f", {k} {v}" for k, v in zip(by, extra))
        for old in versions_of.index:
            if old == newest:
                continue
            n = int(((ident[keys] == pd.Series(group, index=keys)).all(axis=1) & (ident["codec_version"] == old)).sum())
            notes.append(f"{codec}{where} on {dataset}: shown is version '{newest}' (measured last); {n} rows of "
                         f"version '{old}' are left out (--versions all shows each version as its own curve)")
    kept = pd.MultiIndex.from_frame(ident).isin(keep)
    return rows[kept], notes


def operational(curve, metric: str):
    """The points of one curve on its operational RD curve: sorted by rate, each point kept only
    if its quality beats every cheaper point's. A point that costs more bits for no better quality
    (a saturated model's top rate) is dominated, and BD's interpolation needs quality to rise."""
    curve = curve.sort_values("bpp")
    best = curve[metric].cummax().shift(fill_value=float("-inf"))
    return curve[curve[metric] > best]


def drop_duplicate_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Rows with one row per (dataset, image, codec, version, quality) key: the first of each (two
    result folders can hold the same measurement); also how many were dropped."""
    keys = [c for c in ("dataset", "image_sha256", "codec", "codec_version", "quality") if c in rows]
    number = pd.to_numeric(rows["quality"], errors="coerce").astype(float)
    quality = number.map(repr).where(number.notna(), rows["quality"].astype(str))  # 50 and 50.0 are one quality
    duplicated = rows.assign(quality=quality).duplicated(subset=keys, keep="first")
    return rows[~duplicated], int(duplicated.sum())


def image_index(rows: pd.DataFrame) -> pd.DataFrame:
    """Which images each measured curve's image set holds: one row per (image_set, image_sha256), with
    the image's name. Pass it (with the published sets) to BD tables to name the images that differ."""
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=["image_set", "image", "image_sha256"])
    names = ok["image"] if "image" in ok else ok["image_sha256"]
    members = pd.DataFrame({"dataset": ok["dataset"], "codec": ok["codec"], "codec_version": ok["codec_version"],
                            "image": names, "image_sha256": ok["image_sha256"]}).drop_duplicates()
    digests = members.groupby(["dataset", "codec", "codec_version"])["image_sha256"].agg(image_set_digest)
    members = members.join(digests.rename("image_set"), on=["dataset", "codec", "codec_version"])
    return members[["image_set", "image", "image_sha256"]].drop_duplicates(["image_set", "image_sha256"])


def restrict_images(rows: pd.DataFrame, shas) -> pd.DataFrame:
    """The rows of the images in `shas` (pixel SHA-256s) only."""
    return rows[rows["image_sha256"].isin(set(shas))]


def _weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    mask = values.notna()
    if not mask.any():
        return math.nan
    return float(np.average(values[mask], weights=weights[mask]))


def ms_ssim_to_db(values) -> np.ndarray:
    """-10 log10(1 - MS-SSIM), inf for a perfect 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -10 * np.log10(1 - np.asarray(values, dtype=float))


def is_target_row(rows: pd.DataFrame) -> pd.Series:
    """True for the rows of `rdbench run --target-bpp/--target-psnr` (a `target` is set)."""
    if "target" not in rows:
        return pd.Series(False, index=rows.index)
    return rows["target"].fillna("").astype(str) != ""


def ladder_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of quality ladders: those of target searches left out (their qualities differ per image)."""
    return rows[~is_target_row(rows)]


def curves(rows: pd.DataFrame, weighting: str = "mean") -> pd.DataFrame:
    """One row per curve identity and quality (columns.CURVE_COLUMNS), sorted by dataset, label and bpp."""
    if weighting not in ("mean", "pixels"):
        raise ValueError(f"weighting {weighting!r}: expected 'mean' or 'pixels'")
    rows = ladder_rows(rows)
    ok = rows[rows["status"] == "ok"].copy()
    if ok.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    for key in ("dataset", "codec", "codec_version"):  # an empty field is a value, not a row to drop
        ok[key] = ok[key].fillna("").astype(str)
    metrics = [m for m in METRICS if m in ok]
    ok["pixels"] = ok["width"] * ok["height"]
    by_curve = ["dataset", "codec", "codec_version"]
    keys = [*by_curve, "quality"]
    if weighting == "mean":
        table = ok.groupby(keys)[["bpp", *metrics, *TIMES]].mean()
    else:
        def aggregate(g: pd.DataFrame) -> pd.Series:
            out = {"bpp": 8.0 * g["bytes"].sum() / g["pixels"].sum()}
            for col in (*metrics, *TIMES):
                out[col] = _weighted_mean(g[col], g["pixels"])
            return pd.Series(out)

        table = ok.groupby(keys)[["bytes", "pixels", *metrics, *TIMES]].apply(aggregate)
    table["n_images"] = ok.groupby(keys)["image_sha256"].nunique()
    table = table.reset_index()
    sets = ok.groupby(by_curve)["image_sha256"].agg(image_set=image_set_digest, image_set_size="nunique")
    table = table.join(sets, on=by_curve)
    for missing in set(METRICS) - set(metrics):
        table[missing] = math.nan
    table = _without_mixed_metrics(ok, table, by_curve)
    table["ms_ssim_db_of_mean"] = ms_ssim_to_db(table["ms_ssim"])
    table["complete"] = table["n_images"] == table["image_set_size"]
    table["source"] = "measured"
    table["weighting"] = weighting
    table["conventions"] = MEASURED_CONVENTIONS.format(weighting="mean" if weighting == "mean" else "pixel-weighted mean")
    return finish(table)


def _without_mixed_metrics(ok: pd.DataFrame, table: pd.DataFrame, by_curve: list[str]) -> pd.DataFrame:
    """`table` with each curve's `metric_versions` (the implementations of its metrics), and the
    columns of a metric measured by several implementations within one curve set to NaN: two
    implementations (or versions) of a metric are never averaged (its entry reads 'MIXED: a | b')."""
    table = table.copy()
    table["metric_versions"] = ""
    if "metric_versions" not in ok:
        return table
    for ident, rows in ok.groupby(by_curve, sort=False, dropna=False):
        seen: dict[str, set] = {}
        for cell, values in zip(rows["metric_versions"], rows[[c for cs in METRIC_COLUMNS.values() for c in cs
                                                                if c in rows]].to_dict("records")):
            for name, identity in parse_versions(cell if isinstance(cell, str) else "").items():
                columns = METRIC_COLUMNS.get(name, ())
                if any(pd.notna(values.get(c)) for c in columns):
                    seen.setdefault(name, set()).add(identity)
        here = np.logical_and.reduce([table[k] == v for k, v in zip(by_curve, ident)])
        versions = {}
        for name, identities in seen.items():
            if len(identities) == 1:
                versions[name] = next(iter(identities))
            else:
                versions[name] = "MIXED: " + " | ".join(sorted(identities))
                table.loc[here, [c for c in METRIC_COLUMNS[name] if c in table]] = math.nan
        table.loc[here, "metric_versions"] = format_versions(versions)
    return table


def finish(table: pd.DataFrame) -> pd.DataFrame:
    """A curve table in CURVE_COLUMNS order, labelled (see `relabel`) and sorted."""
    if "metric_versions" not in table:  # published and file curves: their implementations are not known
        table = table.assign(metric_versions="")
    table = relabel(table[[c for c in CURVE_COLUMNS if c != "label"]].copy())
    return table[list(CURVE_COLUMNS)].sort_values(["dataset", "label", "bpp"], kind="stable").reset_index(drop=True)


def relabel(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with a `label` that names each curve uniquely within its dataset: the codec spec, then
    its version in brackets where the dataset holds several versions of the spec, then the image
    count and the source where that is still not enough."""
    table = table.copy()
    if table.empty:
        table["label"] = pd.Series(dtype=str)
        return table
    # one integer per curve identity, from the identity columns themselves (never a joined string)
    ident = table.groupby(list(CURVE_IDENTITY), sort=False, dropna=False).ngroup()
    label = table["codec"].astype(str)
    if "user_label" in table:  # a user's label (analysis/styles.apply_labels) replaces the spec
        label = table["user_label"].astype(object).where(table["user_label"].notna(), label).astype(str)

    def ambiguous(lab: pd.Series) -> pd.Series:
        return pd.DataFrame({"d": table["dataset"], "l": lab, "i": ident}).groupby(["d", "l"])["i"].transform("nunique") > 1

    for part in (lambda t: " [" + t["codec_version"].astype(str) + "]",
                 lambda t: " (" + t["image_set_size"].map(lambda n: "?" if pd.isna(n) else str(int(n))) + " images)",
                 lambda t: " (" + t["source"].astype(str) + ")"):
        clash = ambiguous(label)
        if not clash.any():
            break
        label = label.where(~clash, label + part(table))
    table["label"] = label
    return table


def add_curves(curve_table: pd.DataFrame, extra: list[pd.DataFrame]) -> pd.DataFrame:
    """`curve_table` with the curves in `extra` appended, each unless a curve of that codec is already in it
    (e.g. published reference curves loaded by analysis/published, beside measured ones); relabelled."""
    present = set(curve_table["codec"])
    extra = [e for e in extra if len(e) and e["codec"].iloc[0] not in present]
    if not extra:
        return curve_table
    parts = [t for t in (curve_table, *extra) if len(t)]
    return relabel(pd.concat(parts, ignore_index=True))


def curve_groups(table: pd.DataFrame):
    """(identity tuple, curve) for every curve of the table, in table order."""
    return table.groupby(list(CURVE_IDENTITY), sort=False, dropna=False)


def file_stem(text: str) -> str:
    """A file name part from a label or spec: letters, digits, '.', '-' and '_' kept, the rest '_'."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9._-]", "_", text)).strip("_.") or "curve"


def _series(values) -> list:
    return [None if pd.isna(v) else float(v) for v in values]


def to_compressai_json(curve: pd.DataFrame, name: str | None = None, description: str = "",
                       images: list[str] | None = None) -> dict:
    """One curve in CompressAI's JSON layout: `name`, `description`, `results` with `bpp`, `psnr-rgb`,
    `ms-ssim-rgb` (mean linear MS-SSIM, so its dB is the dB of the mean, as CompressAI's plot
    computes it), `encoding_time` and `decoding_time` (s per image), as `compressai.utils.plot` and
    `rdbench bdrate` read it. Only the complete points (every image of the set) are written.

    rdbench's own columns go beside them under their rdbench names (`quality`, `psnr_y`,
    `ms_ssim_db` = the mean of per-image dB, `ms_ssim_db_of_mean`, `n_images`), and `meta` holds
    the identity (dataset, image set, codec, version, weighting, conventions; `images`: the names)."""
    c = curve[curve["complete"].astype(bool)].sort_values("bpp")
    first = curve.iloc[0]
    results = {"bpp": _series(c["bpp"])}
    for key, column in (("psnr-rgb", "psnr_rgb"), ("ms-ssim-rgb", "ms_ssim"), ("encoding_time", "enc_s"),
                        ("decoding_time", "dec_s")):
        if c[column].notna().any():  # CompressAI's plot cannot read a series of nulls
            results[key] = _series(c[column])
    results["quality"] = [v if isinstance(v, str) else float(v) for v in c["quality"]]
    # rdbench's names contain no "ms-ssim", which CompressAI's plot would convert to dB a second time
    for column in (*(m for m in METRICS if m not in ("psnr_rgb", "ms_ssim")), "ms_ssim_db_of_mean"):
        if column in c and c[column].notna().any():
            results[column] = _series(c[column])
    results["n_images"] = [int(n) for n in c["n_images"]]
    meta = {
        "source": "rdbench",
        "rdbench_version": __version__,
        "dataset": str(first["dataset"]),
        "image_set": str(first["image_set"]),
        "n_images": None if pd.isna(first["image_set_size"]) else int(first["image_set_size"]),
        "codec": str(first["codec"]),
        "codec_version": str(first["codec_version"]),
        "weighting": str(first["weighting"]),
        "conventions": str(first["conventions"]),
        "points_left_out": int(len(curve) - len(c)),
    }
    if images is not None:
        meta["images"] = list(images)
    return {
        "name": name or str(first["label"]),
        "description": description or (f"rdbench {first['source']} curve of {first['codec']} "
                                        f"({first['codec_version']}) on {describe_curve(curve)}, {first['weighting']} "
                                        "over images"),
        "meta": meta,
        "results": results,
    }
