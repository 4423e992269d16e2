"""Plots: functions that take DataFrames and return matplotlib Figures (saving is the caller's).

Figures are built with matplotlib.figure.Figure, not pyplot, so they need no display and leave
no global state behind.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from rdbench.analysis.curves import curve_groups
from rdbench.bench import columns


def rd_figure(curve_table: pd.DataFrame, metric: str = "psnr_rgb", title: str = "") -> Figure:
    """Quality versus bpp, one line per curve identity (its label in the legend); measured curves solid
    with markers, published and file curves dashed. Curves without values of `metric` are left out."""
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    for _, curve in curve_groups(curve_table):
        curve = curve.sort_values("bpp")
        if curve[metric].isna().all():
            continue
        is_published = curve["source"].iloc[0] != "measured"
        ax.plot(curve["bpp"], curve[metric], linestyle="--" if is_published else "-",
                marker="x" if is_published else "o", markersize=4, linewidth=1.2, label=curve["label"].iloc[0])
    ax.set_xlabel(columns.label("bpp"))
    ax.set_ylabel(columns.label(metric))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def bd_bar_figure(table: pd.DataFrame, title: str = "") -> Figure:
    """BD-rate of each codec versus the anchor (negative is better), with intervals where known."""
    table = table.dropna(subset=["bd_rate_pct"]).sort_values("bd_rate_pct")
    fig = Figure(figsize=(7, 0.45 * len(table) + 1.5), layout="constrained")
    ax = fig.subplots()
    errors = None
    if {"ci95_lo", "ci95_hi"} <= set(table.columns):
        errors = [table["bd_rate_pct"] - table["ci95_lo"], table["ci95_hi"] - table["bd_rate_pct"]]
    ax.barh(table["label"] if "label" in table else table["codec"], table["bd_rate_pct"], xerr=errors, color=["tab:green" if v < 0 else "tab:red" for v in table["bd_rate_pct"]])
    for y, value in enumerate(table["bd_rate_pct"]):
        ax.annotate(f"{value:+.1f}%", (value, y), xytext=(4 if value >= 0 else -4, 0), textcoords="offset points",
                    ha="left" if value >= 0 else "right", va="center", fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    anchor = table["anchor"].iloc[0] if len(table) else ""
    ax.set_xlabel(f"BD-rate vs {anchor} (%)  [negative: fewer bits at equal quality]")
    ax.set_title(title)
    return fig


def per_image_figure(per_image: pd.DataFrame, title: str = "") -> Figure:
    """The spread of per-image BD-rates: one box per codec, every image as a dot."""
    data = per_image.dropna(subset=["bd_rate_pct"])
    if data.groupby("codec")["codec_version"].nunique().gt(1).any():  # one box per version
        data = data.assign(codec=data["codec"] + " [" + data["codec_version"] + "]")
    codecs = sorted(data["codec"].unique(), key=lambda c: data.loc[data.codec == c, "bd_rate_pct"].median())
    fig = Figure(figsize=(7, 0.5 * len(codecs) + 1.5), layout="constrained")
    ax = fig.subplots()
    values = [data.loc[data.codec == c, "bd_rate_pct"].to_numpy() for c in codecs]
    ax.boxplot(values, vert=False, tick_labels=codecs, showfliers=False)
    for i, v in enumerate(values, start=1):
        ax.scatter(v, [i] * len(v), s=8, alpha=0.6, color="tab:blue")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("per-image BD-rate (%)")
    ax.set_title(title)
    return fig
