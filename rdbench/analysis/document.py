"""A page of results as data: its Markdown text and the tables, figures and JSON beside it.

Analysis builds a Document and returns it; `analysis/report.py` writes one into a folder. So the
numbers, plots and prose of a report can be computed and tested without touching a disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from rdbench.bench.columns import BY_NAME

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Document:
    """`page` is the Markdown file's name (report.md) and `text` its content, verbatim.

    tables: file name -> DataFrame, written as CSV without the index.
    figures: file name -> (Figure, dpi); the name's extension picks the format (png, svg, pdf).
    json: file name -> a JSON-able value, written indented by one space.
    pages: file name -> text, written verbatim (the interactive HTML page).
    """

    page: str
    text: str = ""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, tuple[Figure, int]] = field(default_factory=dict)
    json: dict[str, object] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)  # file name -> text (report.html)

    def add_figure(self, stem: str, figure: Figure, formats=("png",), dpi: int = 130) -> None:
        """One figure, to be saved as STEM.png (and STEM.svg, ... for more formats)."""
        for ext in formats:
            self.figures[f"{stem}.{ext}"] = (figure, dpi)


def markdown_table(df: pd.DataFrame, floats: str = "{:.2f}") -> str:
    """A DataFrame as a GitHub Markdown table; floats formatted with `floats`, NaN as an empty cell."""

    def cell(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else floats.format(v)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _pct(value) -> str:
    return "" if pd.isna(value) else f"{value:+.1f}%"


def bd_terminal_lines(part: pd.DataFrame) -> list[str]:
    """A BD table of one dataset as short terminal lines: one per curve (label, BD-rate, BD in the
    metric's unit, overlap, images; per-image mode: std and 95% interval; the error where BD failed).
    The anchor, mode and method are the caller's heading, said once."""
    width = max([len(str(v)) for v in part["label"]] + [5])
    lines = []
    for row in part.to_dict("records"):
        head = f"  {str(row['label']):<{width}}"
        if pd.isna(row.get("bd_rate_pct")):
            lines.append(f"{head}  no BD: {row.get('error') or 'no value'}")
            continue
        text = f"{head}  BD-rate {_pct(row['bd_rate_pct']):>8}"
        if "std_pct" in row and not pd.isna(row.get("std_pct")):
            text += f" ± {row['std_pct']:.1f}  95% [{_pct(row.get('ci95_lo'))}, {_pct(row.get('ci95_hi'))}]"
        if not pd.isna(row.get("bd_metric", float("nan"))):
            column = BY_NAME.get(str(row.get("metric", "")))
            unit = column.unit if column else "dB"  # the metric's own unit (Butteraugli, LPIPS: none)
            text += f"  BD {row['bd_metric']:+.3f}" + (f" {unit}" if unit else "")
        if not pd.isna(row.get("overlap", float("nan"))):
            text += f"  overlap {100 * row['overlap']:.0f}%"
        images = str(row.get("images") or "")
        if images and not images.startswith("same"):  # common images, MISMATCHED: said in full
            text += f"  {images}"
        elif not pd.isna(row.get("n_images", float("nan"))):
            text += f"  {int(row['n_images'])} images"
        if row.get("dropped"):
            text += f"  (dropped: {row['dropped']})"
        lines.append(text)
    return lines
