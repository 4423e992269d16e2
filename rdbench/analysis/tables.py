"""BD tables: every curve against an anchor on mean curves, per dataset (per image: analysis/per_image.py).

What may be compared, and how every row says what it compared:

- Datasets are never pooled: each dataset's curves are compared with that dataset's anchor (a
  `dataset` column; the command line prints one table per dataset).
- Curves over different image sets are not compared: the row carries an error naming both sets
  (count, digest prefix, the images that differ). With `common_images=True` (and the per-image
  `rows`), both curves are recomputed on the images they have in common, and the `images` column
  says so. Published and file curves have no per-image rows: comparing one with a curve over
  another image set (a subset, another dataset) needs `allow_mismatched_reference=True`, and the
  `images` column then says "MISMATCHED".
- Conventions are matched: BD on `ms_ssim_db` (mean of per-image dB) against a curve that has
  MS-SSIM only as the dB of its mean (the published curves) is computed on `ms_ssim_db_of_mean`
  for both; the `metric` column names the column used and `convention` says what it is.
- Every row says its metric, method, mode, anchor (measured here or published, and its version),
  the overlap fraction and interval, and whether the metrics were computed on 8-bit decoded images.

The anchor is the measured curve of that codec in the dataset when there is one; otherwise the
caller passes the curve to use instead (`published_anchor`, loaded at the edge by
`analysis.published.anchor_if_unmeasured`). Nothing here reads a file.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from rdbench.analysis.bd import BDError, bd
from rdbench.analysis.curves import curve_groups, curves, describe_curve, describe_set, restrict_images
from rdbench.bench.columns import CURVE_IDENTITY, METRIC_OF, direction, parse_versions

LISTED_IMAGES = 8  # images named in a message before "and N more"
CONVENTIONS = {
    "ms_ssim_db": "mean of per-image MS-SSIM dB",
    "ms_ssim_db_of_mean": "dB of the mean MS-SSIM",
}


def convention(metric: str, weighting: str = "mean") -> str:
    """What a curve's `metric` column is, in words ('dB of the mean MS-SSIM', 'mean of per-image psnr_rgb')."""
    text = CONVENTIONS.get(metric, f"mean of per-image {metric}")
    return text.replace("mean", "pixel-weighted mean", 1) if weighting == "pixels" else text


def _measured(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["source"] == "measured"]


def measured_anchor(curve_table: pd.DataFrame, anchor: str) -> pd.DataFrame:
    """The measured curve of `anchor` in the table (one dataset): the curve with that label, else the
    codec with that spec, else the only measured spec with that codec name (`bpg` finds
    `bpg:encoder=x265`); else, the same among the curves read from files (`rdbench bdrate a.json
    b.json`); empty when there is none. Several versions of the anchor raise ValueError naming
    their labels (select one version, or pass its label)."""
    found = _find_anchor(_measured(curve_table), anchor)
    if found.empty:
        found = _find_anchor(curve_table[curve_table["source"].astype(str).str.startswith("file:")], anchor)
    return found


def _find_anchor(measured: pd.DataFrame, anchor: str) -> pd.DataFrame:
    found = measured[measured["label"] == anchor] if "label" in measured else measured.iloc[:0]
    if found.empty:
        found = measured[measured["codec"] == anchor]
    if found.empty:
        by_name = measured[measured["codec"].str.split(":").str[0] == anchor]
        if by_name["codec"].nunique() == 1:
            found = by_name
    if found.groupby(["dataset", "codec_version"]).ngroups > 1:
        labels = ", ".join(f"'{lab}'" for lab in found["label"].unique())
        raise ValueError(f"anchor {anchor!r} has several versions in these curves: {labels}; pass one of these "
                         "labels as the anchor, or analyse only the newest version (--versions newest)")
    return found


def resolve_anchor(curve_table: pd.DataFrame, anchor: str, published_anchor: pd.DataFrame | None = None) -> pd.DataFrame:
    """The anchor's curve: measured if it is in the table, else `published_anchor` (given by the caller)."""
    measured = measured_anchor(curve_table, anchor)
    if not measured.empty:
        return measured
    if published_anchor is None:
        raise ValueError(f"anchor {anchor!r} is not measured in these curves, and no published curve of it was given")
    return published_anchor


def _has(curve: pd.DataFrame, metric: str) -> bool:
    return metric in curve and bool(curve[metric].notna().any())


def matched_metric(metric: str, anchor: pd.DataFrame, test: pd.DataFrame) -> tuple[str, str]:
    """The column to compare two curves on for `metric`, and a note when it is not `metric` itself:
    `ms_ssim_db` becomes `ms_ssim_db_of_mean` when one curve has MS-SSIM dB only that way."""
    if metric == "ms_ssim_db" and not (_has(anchor, metric) and _has(test, metric)):
        if _has(anchor, "ms_ssim_db_of_mean") and (_has(test, "ms_ssim_db_of_mean") or not _has(test, metric)):
            which = "the anchor" if not _has(anchor, metric) else "the test"
            return "ms_ssim_db_of_mean", f" (matched: {which} has MS-SSIM dB only as the dB of its mean)"
    return metric, ""


def section_metric(curve_table: pd.DataFrame, metric: str) -> str:
    """The one column a page compares and plots every curve of the table on for `metric`: `ms_ssim_db`
    becomes `ms_ssim_db_of_mean` when a curve of the table has MS-SSIM dB only that way (the published
    ones), so that one figure and one table use one convention."""
    if metric != "ms_ssim_db":
        return metric
    for _, curve in curve_groups(curve_table):
        if not _has(curve, metric) and _has(curve, "ms_ssim_db_of_mean"):
            return "ms_ssim_db_of_mean"
    return metric


def _names(images: pd.DataFrame | None, digest: str, shas) -> str:
    if images is not None and len(images):
        known = images[images["image_set"] == digest].set_index("image_sha256")["image"]
        names = sorted(str(known.get(s, s[:12])) for s in shas)
    else:
        names = sorted(s[:12] for s in shas)
    more = f" and {len(names) - LISTED_IMAGES} more" if len(names) > LISTED_IMAGES else ""
    return ", ".join(names[:LISTED_IMAGES]) + more


def _members(images: pd.DataFrame | None, digest: str) -> set | None:
    if images is None or not digest:
        return None
    members = set(images.loc[images["image_set"] == digest, "image_sha256"])
    return members or None


def image_set_difference(anchor: pd.DataFrame, test: pd.DataFrame, images: pd.DataFrame | None) -> str:
    """Both curves' image sets and the images only one of them has (when `images` lists their members)."""
    a_set, t_set = anchor["image_set"].iloc[0], test["image_set"].iloc[0]
    text = f"anchor {describe_curve(anchor)}; test {describe_curve(test)}"
    a, t = _members(images, a_set), _members(images, t_set)
    if a is None or t is None:
        return text
    parts = []
    if a - t:
        parts.append(f"{len(a - t)} only in the anchor's ({_names(images, a_set, a - t)})")
    if t - a:
        parts.append(f"{len(t - a)} only in the test's ({_names(images, t_set, t - a)})")
    return text + ("; " + "; ".join(parts) if parts else "")


def _row(curve, result, anchor_curve, metric, note, method, mode, n_points, images, n_images, error=None) -> dict:
    first, a = curve.iloc[0], anchor_curve.iloc[0]
    return {
        "codec": first["codec"],
        "label": first["label"],
        "codec_version": first["codec_version"],
        "dataset": first["dataset"],
        "source": first["source"],
        "metric": metric,
        "convention": convention(metric, first["weighting"]) + note,
        "method": method,
        "mode": mode,
        "anchor": a["label"],
        "anchor_version": a["codec_version"],
        "anchor_source": a["source"],
        "images": images,
        "n_images": n_images,
        "bd_rate_pct": result["rate"].value if result else np.nan,
        "bd_metric": result["metric"].value if result else np.nan,
        "overlap": result["rate"].overlap if result else np.nan,
        "interval_lo": result["rate"].interval[0] if result else np.nan,
        "interval_hi": result["rate"].interval[1] if result else np.nan,
        "n_points": n_points,
        "on_8bit_decoded": first["source"] == "measured",
        "error": error or "",
    }


def implementations_differ(anchor: pd.DataFrame, test: pd.DataFrame, column: str) -> str | None:
    """Why BD refuses to compare these curves on `column` (its metric computed by two implementations,
    or by several within one curve), or None. Curves whose implementation is not recorded (published
    ones, files) are not refused here."""
    name = METRIC_OF.get(column)
    if name is None:
        return None
    found = {}
    for who, curve in (("anchor", anchor), ("test", test)):
        cell = curve["metric_versions"].iloc[0] if "metric_versions" in curve and len(curve) else ""
        found[who] = parse_versions(cell if isinstance(cell, str) else "").get(name, "")
        if found[who].startswith("MIXED"):
            return f"the {who} curve's {name} was measured by several implementations ({found[who][7:]}): not averaged"
    if found["anchor"] and found["test"] and found["anchor"] != found["test"]:
        return (f"{name} was computed by {found['anchor']} for the anchor and by {found['test']} for the test: BD "
                "does not compare two implementations of a metric (measure both with one)")
    return None


def _both(anchor: pd.DataFrame, test: pd.DataFrame, metric: str, method: str) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overlap is reported in the table instead
        return {
            kind: bd(anchor["bpp"], anchor[metric], test["bpp"], test[metric], kind, method, direction(metric))
            for kind in ("rate", "metric")
        }


def _curve_rows(rows: pd.DataFrame, curve: pd.DataFrame) -> pd.DataFrame:
    first = curve.iloc[0]
    return rows[(rows["dataset"] == first["dataset"]) & (rows["codec"] == first["codec"])
                & (rows["codec_version"] == first["codec_version"]) & (rows["status"] == "ok")]


def _on_common_images(rows: pd.DataFrame, anchor: pd.DataFrame, test: pd.DataFrame):
    """Both curves recomputed from `rows` on the images both measured, and the words for it."""
    a_rows, t_rows = _curve_rows(rows, anchor), _curve_rows(rows, test)
    common = set(a_rows["image_sha256"]) & set(t_rows["image_sha256"])
    if not common:
        return None, None, "the two image sets have no image in common", 0
    weighting = anchor["weighting"].iloc[0]
    a = curves(restrict_images(a_rows, common), weighting)
    t = curves(restrict_images(t_rows, common), weighting)
    a, t = a.assign(label=anchor["label"].iloc[0]), t.assign(label=test["label"].iloc[0])
    words = (f"common images: {len(common)} (set {describe_set(a['dataset'].iloc[0], len(common), a['image_set'].iloc[0])}"
             f"; anchor has {anchor['image_set_size'].iloc[0]}, test {test['image_set_size'].iloc[0]})")
    return a, t, words, len(common)


def _pair(anchor_curve, curve, rows, images, common_images, allow_mismatched_reference):
    """(anchor curve, test curve, images words, n_images, error) to compare, by the image-set rules."""
    a_set, t_set = anchor_curve["image_set"].iloc[0], curve["image_set"].iloc[0]
    size = curve["image_set_size"].iloc[0]
    n = None if pd.isna(size) else int(size)
    if a_set and a_set == t_set and anchor_curve["dataset"].iloc[0] == curve["dataset"].iloc[0]:
        return anchor_curve, curve, f"same: {describe_curve(curve)}", n, None
    difference = "image sets differ: " + image_set_difference(anchor_curve, curve, images)
    both_measured = (anchor_curve["source"].iloc[0] == "measured") and (curve["source"].iloc[0] == "measured")
    if both_measured:
        if common_images and rows is not None:
            a, t, words, n_common = _on_common_images(rows, anchor_curve, curve)
            if a is None:
                return anchor_curve, curve, words, 0, f"{difference}; {words}"
            return a, t, words, n_common, None
        hint = ("--common-images needs the per-image rows (results.csv inputs)" if common_images
                else "--common-images computes BD on the images both measured")
        return anchor_curve, curve, "differ", n, f"{difference}; refused ({hint})"
    if allow_mismatched_reference:
        return anchor_curve, curve, f"MISMATCHED (allowed): {image_set_difference(anchor_curve, curve, None)}", n, None
    return anchor_curve, curve, "differ", n, (f"{difference}; refused: a published or file curve has no per-image "
                                              "rows (--allow-mismatched-reference compares anyway, labelled)")


def _compared_datasets(curve_table: pd.DataFrame) -> list:
    """The datasets that get a table: those with a measured or file curve (published ones alone get none)."""
    own = curve_table.loc[~curve_table["source"].astype(str).str.startswith("published"), "dataset"]
    return list(dict.fromkeys(own)) or list(dict.fromkeys(curve_table["dataset"]))


def bd_table(curve_table: pd.DataFrame, anchor: str = "bpg", metric: str = "psnr_rgb", method: str = "pchip",
             published_anchor: pd.DataFrame | None = None, rows: pd.DataFrame | None = None,
             images: pd.DataFrame | None = None, common_images: bool = False,
             allow_mismatched_reference: bool = False) -> pd.DataFrame:
    """BD-rate (%) and BD-metric of every curve against `anchor`, on mean curves, per dataset.

    The anchor is its measured curve in each dataset, else `published_anchor` (see resolve_anchor).
    Published curves are compared in every dataset, under the image-set rules of the module
    docstring (rows: the per-image rows, for common images; images: which images each image set
    holds, curves.image_index and published.reference_images, to name the images that differ)."""
    published_curves = curve_table[curve_table["source"].astype(str).str.startswith("published")]
    out, anchored, elsewhere = [], False, set()
    for dataset in _compared_datasets(curve_table):
        here = curve_table[curve_table["dataset"] == dataset]
        group = pd.concat([here, published_curves[published_curves["dataset"] != dataset]], ignore_index=True)
        found = measured_anchor(here, anchor)
        anchor_curve = found if not found.empty else published_anchor
        if anchor_curve is None:  # the anchor is measured on other datasets only: say so here
            missing = f"anchor {anchor!r} is not measured on {dataset}, and no published curve of it was given"
            for _, curve in curve_groups(here):
                nobody = curve.assign(label=anchor, codec_version="", source="")
                out.append(_row(curve, None, nobody, metric, "", method, "mean curves", 0, "", np.nan, missing))
            continue
        anchored = True
        anchor_id = tuple(anchor_curve[list(CURVE_IDENTITY)].iloc[0])
        for ident, curve in curve_groups(group):
            if ident == anchor_id:
                continue
            # a published anchor and a published test of another dataset: their own comparison, listed once
            # under their dataset (never as if it said something about this one)
            home = curve["dataset"].iloc[0] if curve["dataset"].iloc[0] == anchor_curve["dataset"].iloc[0] else dataset
            if home != dataset:
                if ident in elsewhere:
                    continue
                elsewhere.add(ident)
            a, t, words, n_images, error = _pair(anchor_curve, curve, rows, images, common_images,
                                                 allow_mismatched_reference)
            used, note = matched_metric(metric, a, t)
            points = t[t["complete"].astype(bool)]
            if error is None:
                error = implementations_differ(a, t, used)
            if error is None:
                lacking = [who for who, c in (("test", t), ("anchor", a)) if not _has(c, used)]
                if lacking:  # say so plainly, rather than BD's "NaN or infinite values"
                    error = f"no {used} values in " + (f"the {lacking[0]} curve" if len(lacking) == 1 else "either curve")
            if error is None:
                try:
                    result = _both(a[a["complete"].astype(bool)], points, used, method)
                except BDError as exc:
                    result, error = None, str(exc)
            else:
                result = None
            row = _row(curve, result, anchor_curve, used, note, method, "mean curves", len(points), words, n_images, error)
            row["dataset"] = home  # a published curve compared with this dataset's anchor is listed under it
            out.append(row)
    if not anchored:
        raise ValueError(f"anchor {anchor!r} is not measured in these curves, and no published curve of it was given")
    return pd.DataFrame(out)
