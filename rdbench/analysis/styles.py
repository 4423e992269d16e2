"""How a curve looks: one style per curve for a whole report, and the text its legend shows.

A report draws the same codecs in several charts (RD per metric, matplotlib and plotly, per
image). A codec must keep its colour, marker and line style in every one of them, so the styles
are assigned once per report (`style_map`), in a fixed order over every curve the report holds,
and every chart looks its curves up there. Published curves are dashed. Pure: no matplotlib
import; plotly's names for the same marker and dash are given beside matplotlib's.

Legends show `legend_text(label)`: a label with paths in it (learned:checkpoint=/abs/.../model.pt)
keeps the last two parts of each path, so that the legend stays inside the figure; tables, CSV
and JSON keep the full spec. A user's label (`--label SPEC=TEXT`, or `label=` in a run's codec
spec) replaces the spec in legends and tables alike; it is presentation, never identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# tab10, by value so that matplotlib and plotly draw the same colour; 10 colours x 8 markers: the
# first 40 curves are all distinct pairs (lcm(10, 8) = 40), and the line style changes every 10.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
PLOTLY_MARKERS = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond", "v": "triangle-down",
                  "P": "cross", "X": "x", "*": "star"}
LINE_STYLES = ("-", "-.", ":")
PLOTLY_DASHES = {"-": "solid", "-.": "dashdot", ":": "dot", "--": "dash"}


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: str

    def matplotlib(self) -> dict:
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}

    def plotly(self) -> dict:
        """The same style as plotly trace arguments (line, marker)."""
        return {"line": {"color": self.color, "dash": PLOTLY_DASHES[self.linestyle]},
                "marker": {"color": self.color, "symbol": PLOTLY_MARKERS[self.marker]}}


def curve_style(index: int, published: bool) -> Style:
    """The style of the index-th curve: distinct for every index below 40; published curves dashed."""
    return Style(COLOURS[index % len(COLOURS)], MARKERS[index % len(MARKERS)],
                 "--" if published else LINE_STYLES[index // len(COLOURS) % len(LINE_STYLES)])


def style_map(curve_table) -> dict[str, Style]:
    """{label: Style} for every curve of a report, measured curves first, in their order: build it once
    from all the curves a report holds and pass it to every chart."""
    if not len(curve_table):
        return {}
    published = curve_table["source"].astype(str) != "measured"
    order = [*dict.fromkeys(curve_table.loc[~published, "label"].astype(str)),
             *dict.fromkeys(curve_table.loc[published, "label"].astype(str))]
    is_published = dict(zip(curve_table["label"].astype(str), published))
    return {label: curve_style(i, bool(is_published[label])) for i, label in enumerate(order)}


_PATH = re.compile(r"[^\s,=:;()\[\]]*/[^\s,=;()\[\]]*")


def _short_path(match: re.Match) -> str:
    parts = [p for p in match.group(0).split("/") if p]
    return match.group(0) if len(parts) <= 2 else "…/" + "/".join(parts[-2:])


def legend_text(label: str) -> str:
    """A curve's label as a legend shows it: each path in it cut to its last two parts."""
    return _PATH.sub(_short_path, str(label))


def parse_labels(values) -> dict[str, str]:
    """`--label SPEC=TEXT` options as {SPEC: TEXT}, split at the last '=' (a spec may hold '=' in its
    options, the text may not): `--label 'bpg:encoder=x265=BPG (x265)'`."""
    labels = {}
    for value in values or []:
        spec, eq, text = str(value).rpartition("=")
        if not eq or not spec.strip() or not text.strip():
            raise ValueError(f"--label {value!r}: expected SPEC=TEXT (a curve's codec spec or label, then its legend "
                             "text), e.g. --label 'bpg:encoder=x265=BPG (x265)'")
        labels[spec.strip()] = text.strip()
    return labels


def apply_labels(curve_table, labels: dict[str, str]):
    """`curve_table` with each curve whose codec spec or label is a key of `labels` labelled with its
    text (every version of that spec; relabelled, so versions still get their suffix), in a
    `user_label` column that survives add_curves. ValueError when a key names no curve, or when one
    text would name curves of two codecs."""
    import pandas as pd

    from rdbench.analysis.curves import relabel

    if not labels:
        return curve_table
    table = curve_table.copy()
    if "user_label" not in table:
        table["user_label"] = pd.Series(pd.NA, index=table.index, dtype=object)
    for spec, text in labels.items():
        hit = (table["codec"].astype(str) == spec) | (table["label"].astype(str) == spec)
        if not hit.any():
            known = ", ".join(dict.fromkeys(table["label"].astype(str)))
            raise ValueError(f"--label {spec}={text}: no curve has the spec or label {spec!r}; curves: {known}")
        table.loc[hit, "user_label"] = text
    named = table[table["user_label"].notna()]
    codecs = named.groupby(["dataset", "user_label"])["codec"].unique()
    for (_, text), specs in codecs.items():
        others = set(table.loc[table["user_label"].isna(), "codec"].astype(str))
        if len(specs) > 1 or text in others:
            raise ValueError(f"--label: {text!r} would name the curves of {', '.join(sorted({*specs, *({text} & others)}))}; "
                             "give each its own text")
    return relabel(table)
