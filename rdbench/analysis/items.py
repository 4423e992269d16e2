"""Per-item tables of a report: how fast each codec coded, and which items failed.

Pure functions of the per-image result rows (bench/columns.py names every column).
"""

from __future__ import annotations

import re

import pandas as pd

from rdbench.bench.columns import SPEED_COLUMNS, label

FAILED_COLUMNS = ["dataset", "image", "codec", "codec_version", "quality", "error"]


def _quality_range(values: pd.Series) -> str:
    lo, hi = values.min(), values.max()
    return f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"


def speed_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, codec, codec version) over its ok items: the quality range, items,
    mean seconds per image to encode and decode, and megapixels per second (pixels / summed
    seconds, so large images weigh as much as they cost). Columns are SPEED_COLUMNS' names."""
    names = ["dataset", "codec", "codec_version", *(c.name for c in SPEED_COLUMNS)]
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=names)
    ok = ok.assign(megapixels=ok["width"].astype(float) * ok["height"].astype(float) / 1e6,
                   quality=pd.to_numeric(ok["quality"], errors="coerce"))
    grouped = ok.groupby(["dataset", "codec", "codec_version"], sort=False)
    table = grouped.agg(qualities=("quality", _quality_range), n_items=("quality", "size"),
                        megapixels=("megapixels", "mean"), enc_s_per_image=("enc_s", "mean"),
                        dec_s_per_image=("dec_s", "mean"), pixels=("megapixels", "sum"), enc_sum=("enc_s", "sum"),
                        dec_sum=("dec_s", "sum")).reset_index()
    table["enc_mpx_s"] = table["pixels"] / table["enc_sum"]
    table["dec_mpx_s"] = table["pixels"] / table["dec_sum"]
    for name, how in (("parameters", "max"), ("enc_kmac_px", "mean"), ("dec_kmac_px", "mean")):  # learned codecs' complexity
        values = pd.to_numeric(ok[name], errors="coerce") if name in ok else pd.Series(float("nan"), index=ok.index)
        table[name] = values.groupby([ok["dataset"], ok["codec"], ok["codec_version"]], sort=False).agg(how).to_numpy()
    return table[names]


DECODE_CHECK_COLUMNS = ["dataset", "codec", "codec_version", "checked", "identical", "mismatch", "error", "flag", "example"]


def decode_checks(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, codec, version) with rows checked by --check-decode: how many streams decoded
    to identical pixels elsewhere, how many did not; `flag` is MISMATCH for a curve with any."""
    if "decode_check" not in rows:
        return pd.DataFrame(columns=DECODE_CHECK_COLUMNS)
    checked = rows[rows["decode_check"].fillna("").astype(str).str.len() > 0]
    if checked.empty:
        return pd.DataFrame(columns=DECODE_CHECK_COLUMNS)
    text = checked["decode_check"].astype(str)
    checked = checked.assign(identical=text == "identical", mismatch=text.str.startswith("mismatch"),
                             error=text.str.startswith("error"))
    table = checked.groupby(["dataset", "codec", "codec_version"], sort=False).agg(
        checked=("decode_check", "size"), identical=("identical", "sum"), mismatch=("mismatch", "sum"),
        error=("error", "sum")).reset_index()
    bad = checked[~checked["identical"]]
    first = bad.groupby(["dataset", "codec", "codec_version"], sort=False).first()
    table["example"] = [f"{first.loc[k, 'image']} q{first.loc[k, 'quality']}: {first.loc[k, 'decode_check']}"
                        if k in first.index else "" for k in zip(table["dataset"], table["codec"], table["codec_version"])]
    table["flag"] = ["MISMATCH" if m or e else "" for m, e in zip(table["mismatch"], table["error"])]
    return table[DECODE_CHECK_COLUMNS]


def failed_items(rows: pd.DataFrame) -> pd.DataFrame:
    """Every failed item: dataset, image, codec, version, quality and the error it stored."""
    return rows.loc[rows["status"] != "ok"].reindex(columns=FAILED_COLUMNS).reset_index(drop=True)


def headings(table: pd.DataFrame) -> pd.DataFrame:
    """The table with each column renamed to its label (for Markdown)."""
    return table.rename(columns={c: label(c) for c in table.columns})


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # "<_io.BytesIO object at 0x7f...>": one reason, not one per item
SHOWN_IMAGES = 3  # images named per reason


def _reason(error: str, image: str) -> str:
    """An item's error without what makes it this item's: the leading path of its image, addresses."""
    text = _ADDRESS.sub("", str(error))
    head, sep, rest = text.partition(": ")
    if sep and image and (head == image or head.endswith(("/" + image, "\\" + image))):
        text = rest
    return text.strip()


def failure_reasons(rows: pd.DataFrame) -> pd.DataFrame:
    """The failed items grouped by reason, most frequent first: reason, items, images (how many),
    codecs, and a few of the images by name. One line per way of failing, for the end of a run and
    the report, instead of one line per item."""
    columns = ["reason", "items", "images", "codecs", "examples"]
    failed = rows.loc[rows["status"] != "ok"] if len(rows) else rows
    if not len(failed):
        return pd.DataFrame(columns=columns)
    failed = failed.assign(reason=[_reason(e, i) for e, i in zip(failed["error"].fillna(""), failed["image"].astype(str))])
    out = []
    for reason, group in failed.groupby("reason", sort=False):
        images = list(dict.fromkeys(group["image"].astype(str)))
        out.append({"reason": reason, "items": len(group), "images": len(images),
                    "codecs": ", ".join(dict.fromkeys(group["codec"].astype(str))),
                    "examples": ", ".join(images[:SHOWN_IMAGES]) + (", ..." if len(images) > SHOWN_IMAGES else "")})
    return pd.DataFrame(out, columns=columns).sort_values("items", ascending=False, kind="stable").reset_index(drop=True)


def failure_lines(rows: pd.DataFrame) -> list[str]:
    """failure_reasons as terminal lines: '6 x 16-bit PNG; ... (3 images: a.png, b.png, c.png; jpeg)'."""
    return [f"  {r.items} x {r.reason} ({r.images} image{'s' if r.images != 1 else ''}: {r.examples}; {r.codecs})"
            for r in failure_reasons(rows).itertuples(index=False)]
