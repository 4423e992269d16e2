"""JPEG AI's summary of a BD comparison: the mean of the per-metric BD-rates over its seven metrics.

JPEG AI's common test conditions report, for each codec against the anchor, a BD-rate per
objective metric (MS-SSIM, VIF, FSIM, NLPD, IW-SSIM, VMAF, PSNR-HVS-M) and their mean. rdbench
takes the mean over the metrics it could compute for that codec and names the others, so a
number over two metrics is never read as one over seven. Pure: BD tables in, a table out.
"""

from __future__ import annotations

import math

import pandas as pd

from rdbench.bench.columns import JPEG_AI_COLUMNS

SUMMARY_COLUMNS = ["label", "mean_bd_rate_pct", "n_metrics", "metrics", "not_computed"]


def jpeg_ai_summary(bd_tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per compared curve: the mean BD-rate (%) over the JPEG AI metrics that have one for it,
    how many, which, and the JPEG AI metrics that have none (not in rdbench, not measured, or BD
    failed). `bd_tables`: {result column: BD table with `label` and `bd_rate_pct`} for one anchor."""
    labels = list(dict.fromkeys(label for table in bd_tables.values() for label in table.get("label", [])))
    out = []
    for label in labels:
        used, values, missing = [], [], []
        for name, column in JPEG_AI_COLUMNS:
            table = bd_tables.get(column) if column else None
            rate = math.nan
            if table is not None and len(table):
                found = table.loc[table["label"] == label, "bd_rate_pct"]
                rate = float(found.iloc[0]) if len(found) and pd.notna(found.iloc[0]) else math.nan
            if math.isfinite(rate):
                used.append(name)
                values.append(rate)
            else:
                missing.append(name)
        out.append({"label": label, "mean_bd_rate_pct": sum(values) / len(values) if values else math.nan,
                    "n_metrics": len(values), "metrics": ", ".join(used), "not_computed": ", ".join(missing)})
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def summary_line(summary: pd.DataFrame) -> str:
    """The report's one-line summary: 'jpeg +12.3%, webp -4.0% (mean over ms_ssim, psnr_hvs_m; not computed: ...)'."""
    if summary.empty:
        return "no curve to summarise"
    parts = [f"{row.label} {row.mean_bd_rate_pct:+.2f}% over {row.n_metrics} of {len(JPEG_AI_COLUMNS)}"
             if row.n_metrics else f"{row.label}: no JPEG AI metric" for row in summary.itertuples()]
    common_missing = set.intersection(*(set(filter(None, m.split(", "))) for m in summary["not_computed"]))
    names = [name for name, _ in JPEG_AI_COLUMNS if name in common_missing]
    return "; ".join(parts) + (f" (not computed: {', '.join(names)})" if names else "")
