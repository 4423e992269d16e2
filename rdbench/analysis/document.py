"""A page of results as data: its Markdown text and the tables, figures and JSON beside it.

Analysis builds a Document and returns it; `analysis/report.py` writes one into a folder. So the
numbers, plots and prose of a report can be computed and tested without touching a disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from rdbench.analysis.bd import LOW_OVERLAP
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


class Markdown(str):
    """Text that is Markdown already (made by md_code, or rdbench's own prose): placed verbatim
    where md_escape would escape a plain string."""


# Characters with a meaning in Markdown inline text (CommonMark, GitHub's tables, strikethrough and
# math, Python-Markdown): each gets a backslash (a '(' or '!' means something only beside an
# escaped '[' or ']'; '-' and '+' only at the start, as a list item). & < > and the characters a
# backslash does not escape in every renderer (| outside a table, $ and ~ in Python-Markdown)
# become HTML character references, so no outside string is ever raw HTML, a cell break or math.
_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]{}#]|^[-+])")
_MD_REFERENCES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "$": "&#36;", "~": "&#126;"}


def md_escape(text) -> Markdown:
    """An outside string (a dataset, image or codec name, a version, an error message, a field of
    results.csv) as literal Markdown text: for table cells, headings and prose. Line breaks become
    spaces (a name must not end a table row or a heading)."""
    if isinstance(text, Markdown):
        return text
    text = " ".join(str(text).splitlines()) if "\n" in str(text) or "\r" in str(text) else str(text)
    text = _MD_PUNCTUATION.sub(r"\\\1", text)  # then references: their '#' must stay as it is
    return Markdown("".join(_MD_REFERENCES.get(c, c) for c in text))


def md_code(text) -> Markdown:
    """`text` as a Markdown code span (shown verbatim, never markup): the fence is one backtick
    longer than the longest run of backticks inside, with a space inside each end when the text
    begins or ends with a backtick (CommonMark's rule). Line breaks become spaces."""
    text = " ".join(str(text).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")


# A CSV cell a spreadsheet would take for a formula (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every text cell that a spreadsheet would read as a formula (beginning with
    =, +, -, @, a tab or a carriage return) prefixed with an apostrophe; numbers and other text as
    they are. For the CSV files a user opens (report tables, failed.csv, speed.csv), never
    results.csv, which stays exact."""

    def safe(value):
        if isinstance(value, str) and value.startswith(_FORMULA_START):
            return "'" + value
        return value

    out = table.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(safe)
    out.columns = [safe(c) if isinstance(c, str) else c for c in out.columns]
    return out


def markdown_table(df: pd.DataFrame, floats: str = "{:.2f}") -> str:
    """A DataFrame as a GitHub Markdown table; floats formatted with `floats`, NaN as an empty cell,
    every other cell and heading escaped (md_escape) unless it is Markdown already (md_code)."""

    def cell(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else floats.format(v)
        if isinstance(v, Markdown):
            return v.replace("|", "\\|")
        return md_escape(v)

    lines = ["| " + " | ".join(md_escape(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _pct(value) -> str:
    return "" if pd.isna(value) else f"{value:+.1f}%"


def low_overlap_warning(part: pd.DataFrame) -> str:
    """'' or one sentence naming the curves whose BD rests on less than LOW_OVERLAP of the joint range
    (analysis/bd.py), for the command line and the report alike."""
    if "overlap" not in part or not len(part):
        return ""
    low = part[part["overlap"].notna() & (part["overlap"] < LOW_OVERLAP) & part["bd_rate_pct"].notna()]
    if low.empty:
        return ""
    names = ", ".join(f"{label} ({100 * o:.0f}%)" for label, o in zip(low["label"].astype(str), low["overlap"]))
    return (f"low overlap (under {LOW_OVERLAP:.0%} of the joint quality range) for {names}: each BD number describes "
            "only the shared part of the two curves; measure qualities that reach the anchor's range "
            "for a number that covers more")


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
            text += f"  overlap {100 * row['overlap']:.0f}%" + (" (LOW)" if row["overlap"] < LOW_OVERLAP else "")
        images = str(row.get("images") or "")
        if images and not images.startswith("same"):  # common images, MISMATCHED: said in full
            text += f"  {images}"
        elif not pd.isna(row.get("n_images", float("nan"))):
            text += f"  {int(row['n_images'])} images"
        if row.get("dropped"):
            text += f"  (dropped: {row['dropped']})"
        lines.append(text)
    return lines
