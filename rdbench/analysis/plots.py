"""Plots: functions that take DataFrames and return matplotlib Figures (saving is the caller's).

Figures are built with matplotlib.figure.Figure, not pyplot, so they need no display and leave
no global state behind.

Every text rdbench puts into a figure (titles, labels, legend entries, tick labels from codec or
dataset names) is plain text: matplotlib's formula parser is off (PLAIN_TEXT) while a figure is
built and while analysis/report.py saves it, so a `$` in a name is a dollar sign, never a formula
that stops the report. Axis numbers are formatted without formulas as well.
"""

from __future__ import annotations

import functools

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from rdbench.analysis import styles
from rdbench.analysis.curves import curve_groups
from rdbench.bench import columns


# matplotlib settings under which rdbench builds and saves figures: no formula parsing of text.
PLAIN_TEXT = {"text.parse_math": False}


def _plain_text(build):
    """Build the figure with matplotlib's formula parser off for every text created (PLAIN_TEXT)."""

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(PLAIN_TEXT):
            return build(*args, **kwargs)

    return wrapper


def curve_style(index: int, published: bool) -> dict:
    """The matplotlib style of the index-th curve of a figure: distinct for every index below 40
    (analysis/styles.py; a report passes one style map to all its charts instead)."""
    return styles.curve_style(index, published).matplotlib()


def _default_title(curve_table: pd.DataFrame, metric: str) -> str:
    """'<dataset>: <metric> vs bpp', naming the dataset(s) of the measured curves (never a fixed name)."""
    measured = curve_table[curve_table["source"] == "measured"] if "source" in curve_table else curve_table
    datasets = list(dict.fromkeys((measured if len(measured) else curve_table)["dataset"].astype(str)))
    return f"{', '.join(datasets)}: {columns.title(metric)} vs bpp" if datasets else ""


@_plain_text
def rd_figure(curve_table: pd.DataFrame, metric: str = "psnr_rgb", title: str = "", codecs=None,
              log_rate: bool = False, xlim=None, ylim=None, style_map: dict | None = None) -> Figure:
    """Quality versus bpp, one line per curve identity (its label in the legend); each curve its own
    colour x marker x line style (`curve_style`), published and file curves dashed. Curves without
    values of `metric` are left out. A curve with the same points as an earlier one is drawn over
    it with hollow, larger markers and "(same points as ...)" in its legend entry, so that both stay
    visible. `codecs`: only curves whose codec or label is listed; `log_rate`: a log bpp axis;
    `xlim` / `ylim`: (lo, hi) axis limits (None: automatic); `title`: default names the dataset;
    `style_map`: {label: styles.Style}, one for every chart of a report (default: a map of this
    table's curves). Legends show styles.legend_text(label): paths cut to their last two parts."""
    style_map = style_map or styles.style_map(curve_table)
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    drawn: list[tuple[str, pd.DataFrame]] = []
    index = 0
    for _, curve in curve_groups(curve_table):
        curve = curve.sort_values("bpp")
        label = str(curve["label"].iloc[0])
        if curve[metric].isna().all() or (codecs and not {label, str(curve["codec"].iloc[0])} & set(codecs)):
            continue
        points = curve[["bpp", metric]].dropna().round(9).reset_index(drop=True)
        twin = next((name for name, other in drawn if other.equals(points)), None)
        style = (style_map.get(label) or styles.curve_style(index, curve["source"].iloc[0] != "measured")).matplotlib()
        label = styles.legend_text(label)
        if twin is not None:
            label += f" (same points as {twin})"
            style.update(markersize=9, markerfacecolor="none", markeredgewidth=1.3, linewidth=0.9)
        ax.plot(curve["bpp"], curve[metric], **{"markersize": 4, "linewidth": 1.2, **style}, label=label,
                zorder=3 if twin else 2)
        drawn.append((label, points))
        index += 1
    if log_rate:
        from matplotlib.ticker import LogFormatter

        ax.set_xscale("log")
        # log axes label their ticks with formulas (10^x) by default: plain numbers instead
        ax.xaxis.set_major_formatter(LogFormatter())
        ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    if xlim:
        ax.set_xlim(*xlim)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_xlabel(columns.label("bpp") + (" (log scale)" if log_rate else ""))
    ax.set_ylabel(columns.label(metric))
    ax.grid(True, alpha=0.3, which="both" if log_rate else "major")
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no curve has {columns.label(metric)} values", transform=ax.transAxes, ha="center")
    ax.set_title(_wrapped(title or _default_title(curve_table, metric)), fontsize=11)
    return fig


def _wrapped(text: str, width: int = 70) -> str:
    """A title folded onto lines of at most `width` characters, so that it never runs off the figure."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) if text else ""  # never "MS-" + newline + "SSIM"


def _figure_title(fig: Figure, title: str) -> None:
    """A wrapped title centred on the figure (not on axes pushed right by long tick labels), so
    that constrained layout keeps it whole."""
    if title:
        fig.suptitle(_wrapped(title, 80), fontsize=11)


@_plain_text
def bd_bar_figure(table: pd.DataFrame, title: str = "") -> Figure:
    """BD-rate of each codec versus the anchor (negative is better), with intervals where known.

    The value labels sit past each bar's end inside the axes (the x range is padded for them), so
    negative labels never cover the tick labels; a long title wraps. When no BD-rate could be
    computed, the figure says so and lists why, rather than drawing empty axes."""
    has_values = "bd_rate_pct" in table and table["bd_rate_pct"].notna().any()
    names = table["label"] if "label" in table else table.get("codec", pd.Series(dtype=str))
    if not has_values:
        # one line per distinct reason (the same refusal is usually shared by every codec), each
        # cut to a few wrapped lines, and a figure as tall as the text
        by_reason: dict[str, list[str]] = {}
        for n, e in zip(names, table.get("error", [""] * len(table))):
            if isinstance(e, str) and e:
                by_reason.setdefault(e if len(e) <= 400 else e[:397] + "...", []).append(str(n))
        reasons = [f"{', '.join(codecs)}: {why}" for why, codecs in by_reason.items()]
        if len(reasons) > 6:
            reasons = [*reasons[:6], f"... and {len(reasons) - 6} more"]
        text = "no BD-rate could be computed" + ("\n\n" + "\n".join(_wrapped(r, 90) for r in reasons) if reasons
                                                 else " (no curve to compare with the anchor)")
        # no axes: the text is the figure (axes text would count as decoration and collapse the layout)
        fig = Figure(figsize=(7, 1.4 + 0.19 * text.count("\n")))
        fig.text(0.5, 0.45, text, ha="center", va="center", fontsize=9)
        _figure_title(fig, title)
        return fig
    table = table.dropna(subset=["bd_rate_pct"]).sort_values("bd_rate_pct")
    labels = table["label"] if "label" in table else table["codec"]
    fig = Figure(figsize=(7, 0.45 * len(table) + 1.8), layout="constrained")
    ax = fig.subplots()
    errors = None
    values = table["bd_rate_pct"].to_numpy()
    lo_end, hi_end = values.copy(), values.copy()
    if {"ci95_lo", "ci95_hi"} <= set(table.columns):
        errors = [table["bd_rate_pct"] - table["ci95_lo"], table["ci95_hi"] - table["bd_rate_pct"]]
        lo_end, hi_end = table["ci95_lo"].fillna(table["bd_rate_pct"]).to_numpy(), table["ci95_hi"].fillna(
            table["bd_rate_pct"]).to_numpy()
    ax.barh(range(len(table)), values, xerr=errors, color=["tab:green" if v < 0 else "tab:red" for v in values])
    ax.set_yticks(range(len(table)), [styles.legend_text(lab) for lab in labels])
    for y, value in enumerate(values):
        end = hi_end[y] if value >= 0 else lo_end[y]
        ax.annotate(f"{value:+.1f}%", (end, y), xytext=(4 if value >= 0 else -4, 0), textcoords="offset points",
                    ha="left" if value >= 0 else "right", va="center", fontsize=8)
    left, right = min(0.0, float(lo_end.min())), max(0.0, float(hi_end.max()))
    pad = 0.18 * max(right - left, 1e-9)  # room for the labels, inside the axes
    ax.set_xlim(left - (pad if left < 0 else 0.02 * pad), right + (pad if right > 0 else 0.02 * pad))
    ax.axvline(0, color="black", linewidth=0.8)
    anchor = table["anchor"].iloc[0] if "anchor" in table else ""
    ax.set_xlabel(f"BD-rate vs {anchor} (%)\nnegative: fewer bits at equal quality")
    _figure_title(fig, title)
    return fig


@_plain_text
def per_image_figure(per_image: pd.DataFrame, title: str = "") -> Figure:
    """The spread of per-image BD-rates: one box per codec, every image as a dot."""
    data = per_image.dropna(subset=["bd_rate_pct"])
    if data.groupby("codec")["codec_version"].nunique().gt(1).any():  # one box per version
        data = data.assign(codec=data["codec"] + " [" + data["codec_version"] + "]")
    codecs = sorted(data["codec"].unique(), key=lambda c: data.loc[data.codec == c, "bd_rate_pct"].median())
    fig = Figure(figsize=(7, 0.5 * len(codecs) + 1.5), layout="constrained")
    ax = fig.subplots()
    if not codecs:  # only the anchor, or every per-image BD failed
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no per-image BD-rate could be computed", ha="center", va="center", transform=ax.transAxes)
        _figure_title(fig, title)
        return fig
    values = [data.loc[data.codec == c, "bd_rate_pct"].to_numpy() for c in codecs]
    ax.boxplot(values, orientation="horizontal", tick_labels=[styles.legend_text(c) for c in codecs], showfliers=False)
    for i, v in enumerate(values, start=1):
        ax.scatter(v, [i] * len(v), s=8, alpha=0.6, color="tab:blue")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("per-image BD-rate (%)")
    _figure_title(fig, title)
    return fig


@_plain_text
def learning_figure(bd_steps: pd.DataFrame, losses: pd.DataFrame, title: str = "", style_map: dict | None = None) -> Figure:
    """Learning curves of an ablation. Left: each question's BD-rate (mean over seeds, band from the
    lowest to the highest seed) against training steps; right: each cell's held-out RD loss (mean
    over rates and seeds) against steps. bd_steps: question, step, bd_rate_mean, bd_rate_min,
    bd_rate_max; losses: cell, step, loss. A line still moving at the last step is not settled."""
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    for index, (question, g) in enumerate(bd_steps.groupby("question", sort=False)):
        g = g.sort_values("step")
        style = curve_style(index, False)
        left.plot(g["step"], g["bd_rate_mean"], label=question, markersize=4, linewidth=1.2, **style)
        left.fill_between(g["step"], g["bd_rate_min"], g["bd_rate_max"], color=style["color"], alpha=0.12)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_xlabel("training steps")
    left.set_ylabel("BD-rate on the held-out set (%), estimated bpp\nband: lowest to highest seed")
    left.grid(True, alpha=0.3)
    if len(bd_steps):
        left.legend(fontsize=7)
    for index, (cell, g) in enumerate(losses.groupby("cell", sort=False)):
        g = g.sort_values("step")
        style = (style_map or {}).get(cell) or styles.curve_style(index, False)  # the cell's look in the RD charts
        right.plot(g["step"], g["loss"], label=cell, markersize=4, linewidth=1.2, **style.matplotlib())
    right.set_xlabel("training steps")
    right.set_ylabel("held-out RD loss (lambda * 255^2 MSE + bpp),\nmean over rates and seeds")
    right.grid(True, alpha=0.3)
    if len(losses):
        right.legend(fontsize=7)
    _figure_title(fig, title)
    return fig


@_plain_text
def tradeoff_figure(table: pd.DataFrame, anchor: str, title: str = "", style_map: dict | None = None) -> Figure:
    """Gain against cost, one point per cell: BD-rate versus `anchor` (mean over seeds, 95% interval
    as error bars) against decoder kMAC per pixel (left) and decode seconds per image (right).
    table: cell, bd_rate_mean, bd_rate_ci_low, bd_rate_ci_high, dec_kmac_px, dec_s."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, column, xlabel in zip(axes, ("dec_kmac_px", "dec_s"),
                                  ("decoder kMAC per pixel (masked convolution at its causal taps)",
                                   "decode seconds per image (this machine, one thread)")):
        for index, row in enumerate(table.itertuples(index=False)):
            y, x = row.bd_rate_mean, getattr(row, column)
            if pd.isna(y) or pd.isna(x):
                continue
            lo, hi = row.bd_rate_ci_low, row.bd_rate_ci_high
            err = [[y - lo], [hi - y]] if not (pd.isna(lo) or pd.isna(hi)) else None
            style = ((style_map or {}).get(row.cell) or styles.curve_style(index, False)).matplotlib()
            ax.errorbar([x], [y], yerr=err, fmt=style["marker"], color=style["color"], capsize=3, label=row.cell)
            ax.annotate(row.cell, (x, y), xytext=(5, 3), textcoords="offset points", fontsize=7)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"BD-rate vs {anchor} (%), 95% interval over seeds and images\nnegative: fewer bits")
    _figure_title(fig, title)
    return fig
