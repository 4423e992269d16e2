"""A page of results as data: its Markdown text and the tables, figures and JSON beside it.

Analysis builds a Document and returns it; `analysis/report.py` writes one into a folder. So the
numbers, plots and prose of a report can be computed and tested without touching a disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Document:
    """`page` is the Markdown file's name (report.md) and `text` its content, verbatim.

    tables: file name -> DataFrame, written as CSV without the index.
    figures: file name -> (Figure, dpi); the name's extension picks the format (png, svg, pdf).
    json: file name -> a JSON-able value, written indented by one space.
    """

    page: str
    text: str = ""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, tuple[Figure, int]] = field(default_factory=dict)
    json: dict[str, object] = field(default_factory=dict)

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
