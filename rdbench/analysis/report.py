"""The only writer of analysis output: Documents, tables, figures and text into files.

Analysis computes (curves, tables, plots, analysis/summary for `rdbench report`,
ablation/summary for `rdbench ablate`) and returns DataFrames, Figures and Documents; the
command line and the ablation hand them to these functions. Like the rest of analysis, this
module imports nothing of the measuring pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from rdbench.analysis.document import Document, spreadsheet_safe
from rdbench.conventions import atomic_path, write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def write_csv(table: pd.DataFrame, path: str | Path, exact: bool = False) -> Path:
    """A table as CSV, without the index, written through a temporary name (atomic_path).

    A CSV is for people to open in a spreadsheet: a text cell that begins with =, +, -, @ (or a tab
    or carriage return) would be read as a formula there, so it gets a leading apostrophe
    (`spreadsheet_safe`); numbers are written as numbers. `exact=True` writes every cell verbatim
    (results.csv, which the store writes, is always exact)."""
    if not exact:
        table = spreadsheet_safe(table)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    """Text (UTF-8) through a temporary name and a rename: a kill never leaves a half file."""
    write_atomic(path, text)
    return Path(path)


def write_json(value, path: str | Path) -> Path:
    """A JSON value indented by one space, with a final newline."""
    return write_text(json.dumps(value, indent=1) + "\n", path)


def write_figure(figure: Figure, path: str | Path, dpi: int = 130) -> Path:
    """A figure in the format of the path's extension (png, svg, pdf); the same figure gives the same
    bytes on every run (no date in SVG or PDF metadata, a fixed salt for SVG's element ids)."""
    import matplotlib

    from rdbench.analysis.plots import PLAIN_TEXT

    fmt = Path(path).suffix.lstrip(".").lower()
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}.get(fmt)
    with matplotlib.rc_context({"svg.hashsalt": "rdbench", **PLAIN_TEXT}), atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, metadata=metadata, format=fmt)
    return Path(path)


def write_document(document: Document, out_dir: str | Path) -> Path:
    """Every file of `document` into `out_dir` (created if needed); returns the Markdown page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in document.pages.items():
        write_text(text, out / name)
    for name in (*document.tables, *document.json, *document.figures):  # names may hold a folder (compressai-json/)
        (out / name).parent.mkdir(parents=True, exist_ok=True)
    for name, table in document.tables.items():
        write_csv(table, out / name)
    for name, value in document.json.items():
        write_json(value, out / name)
    for name, (figure, dpi) in document.figures.items():
        write_figure(figure, out / name, dpi)
    return write_text(document.text, out / document.page)
