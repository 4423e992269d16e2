"""The interactive report: one self-contained HTML page (plotly.js inline, no network) as text.

RD curves with hover (codec, version, quality, bpp, metric, images), legend toggling and zoom are
plotly's own; the per-image view is a plotly figure whose dropdown picks the image. The BD tables
are plain HTML tables; a dozen lines of script sort them by a click on a heading. Pure: returns
the page's text; analysis/report.py writes it. The same input gives the same bytes (fixed div
ids, no dates).
"""

from __future__ import annotations

import html
import re

import pandas as pd

from rdbench.analysis import styles
from rdbench.analysis.curves import curve_groups
from rdbench.bench import columns

PAGE = "report.html"

_SORT_SCRIPT = """<script>
// Click a heading to sort its table by that column (numbers as numbers); click again to reverse.
document.querySelectorAll("table.bd th").forEach(function (th, index) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], up = th.dataset.order !== "up";
    var key = function (row) { var t = row.cells[index].textContent, n = parseFloat(t); return isNaN(n) ? t : n; };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return up ? c : -c;
    }).forEach(function (row) { body.appendChild(row); });
    th.closest("tr").querySelectorAll("th").forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = up ? "up" : "down";
  });
});
</script>"""

_STYLE = """<style>
body { font-family: sans-serif; margin: 1.5em; max-width: 1200px; }
table.bd { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
table.bd th, table.bd td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
table.bd th { cursor: pointer; background: #f2f2f2; }
table.bd th[data-order="up"]::after { content: " \\25B2"; }
table.bd th[data-order="down"]::after { content: " \\25BC"; }
table.bd td:first-child { text-align: left; }
p.warning { color: #8a4b00; background: #fff4e0; padding: 0.3em 0.6em; }
</style>"""


def _text(value) -> str:
    """An outside string (codec, version, dataset, image name) for plotly, which renders names,
    titles, button labels and hover text as HTML-like markup (<a href>, <b>, ...): escaped, so it
    shows as written and never becomes a link or markup."""
    return html.escape(str(value))


def _rd_plot(curve_table: pd.DataFrame, metric: str, title: str, style_map: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    for index, (_, curve) in enumerate(curve_groups(curve_table)):
        curve = curve.sort_values("bpp").dropna(subset=[metric])
        if curve.empty:
            continue
        label = str(curve["label"].iloc[0])
        style = style_map.get(label) or styles.curve_style(index, curve["source"].iloc[0] != "measured")
        custom = [[_text(v) for v in row] for row in curve[["codec", "codec_version", "quality", "n_images"]].to_numpy()]
        fig.add_trace(go.Scatter(
            x=curve["bpp"], y=curve[metric], mode="lines+markers", name=_text(styles.legend_text(label)),
            **style.plotly(), customdata=custom,
            hovertemplate=("%{customdata[0]}<br>version %{customdata[1]}<br>quality %{customdata[2]}<br>"
                           f"bpp %{{x:.4f}}<br>{columns.label(metric)} %{{y:.3f}}<br>%{{customdata[3]}} images"
                           "<extra></extra>")))
    fig.update_layout(title=_text(title), xaxis_title=columns.label("bpp"), yaxis_title=columns.label(metric),
                      height=560, template="plotly_white", legend={"itemclick": "toggle"})
    return fig


def _per_image_plot(rows: pd.DataFrame, metric: str, title: str, style_map: dict, labels: dict):
    """Every codec's curve on one image; the dropdown picks the image (first image shown). Each codec
    in the style of its curve in the report's other charts (labels: {codec spec: curve label}).

    One trace per codec; each image's button carries that image's points and sets them on the
    traces, so the page grows with the number of points (images x codecs x qualities), not with
    images x traces as one visibility list per image would (3,000 images: 60 MB)."""
    import plotly.graph_objects as go

    ok = rows[rows["status"] == "ok"].dropna(subset=[metric])
    images = sorted(ok["image"].unique())
    codecs = list(dict.fromkeys(ok["codec"]))
    fallback = {codec: styles.curve_style(i, False) for i, codec in enumerate(codecs)}
    groups = dict(tuple(ok.sort_values("bpp", kind="stable").groupby(["image", "codec"], sort=False)))
    empty = ok.iloc[:0]

    def points(image: str) -> dict:
        """The update of every trace (codec) for one image: x, y and hover data (empty where the
        codec has no point on the image)."""
        xs, ys, custom = [], [], []
        for codec in codecs:
            p = groups.get((image, codec), empty)
            xs.append(p["bpp"].tolist())
            ys.append(p[metric].tolist())
            custom.append([[_text(q), _text(image)] for q in p["quality"].astype(str)])
        return {"x": xs, "y": ys, "customdata": custom}

    fig = go.Figure()
    first = points(images[0]) if images else None
    for n, codec in enumerate(codecs):
        label = labels.get(codec, codec)
        fig.add_trace(go.Scatter(
            x=first["x"][n], y=first["y"][n], customdata=first["customdata"][n], mode="lines+markers",
            name=_text(styles.legend_text(label)), **(style_map.get(label) or fallback[codec]).plotly(),
            hovertemplate=(f"%{{customdata[1]}}<br>{_text(codec)}<br>quality %{{customdata[0]}}<br>"
                           f"bpp %{{x:.4f}}<br>{columns.label(metric)} %{{y:.3f}}<extra></extra>")))
    buttons = [{"label": _text(image), "method": "update",
                "args": [points(image), {"title.text": _text(f"{title}: {image}")}]} for image in images]
    fig.update_layout(title=_text(f"{title}: {images[0]}" if images else title), xaxis_title=columns.label("bpp"),
                      yaxis_title=columns.label(metric), height=520, template="plotly_white",
                      updatemenus=[{"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right", "y": 1.15,
                                    "showactive": True}] if buttons else [])
    return fig


def _table(table: pd.DataFrame, table_id: str) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.3f}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    return f'<table class="bd" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _paragraphs(texts) -> str:
    """Paragraphs of report text, its `code` spans (Markdown's backticks) as <code>."""
    return "".join("<p>" + re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(t)) + "</p>" for t in texts if t)


def html_report(sections: list[dict], heading: str, preface=(), appendix=(), style_map: dict | None = None) -> str:
    """The page: `sections` is a list of {"title", "curves" (curve table), "metric", "bd" (BD table,
    shown columns only), "about" (what the table compares: anchor, method, metric and its
    convention), "warning" ('' or the low-overlap warning), "rows" (per-image rows of the
    dataset, or None), "row_metric" (the rows' column for the per-image view)}, in order.
    preface: paragraphs under the heading (how the report was made, its datasets and rules);
    appendix: (title, table, text) sections after them (coding speed, failed items, the runs);
    style_map: {label: styles.Style} for every chart (one per report: a codec keeps its look).

    plotly.js is written once, inline, in the first figure, so the page works offline."""
    style_map = style_map if style_map is not None else {}
    parts, first = [_paragraphs(preface)], True
    for n, section in enumerate(sections):
        parts.append(f"<h2>{html.escape(section['title'])}</h2>")
        curves = section["curves"]
        labels = dict(zip(curves["codec"].astype(str), curves["label"].astype(str)))
        figures = [("rd", _rd_plot(curves, section["metric"], section["title"], style_map))]
        rows = section.get("rows")
        if rows is not None and len(rows) and section.get("row_metric") in rows:
            figures.append(("image", _per_image_plot(rows, section["row_metric"], "per image", style_map, labels)))
        for kind, fig in figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=first, div_id=f"{kind}-{n}",
                                     config={"displaylogo": False}))
            first = False
        about = section.get("about") or ""
        warning = section.get("warning") or ""
        parts.append(f"<h3>{html.escape(section.get('bd_title') or 'BD table')} (click a heading to sort)</h3>"
                     + _paragraphs([about])
                     + (f'<p class="warning">Warning: {html.escape(warning)}</p>' if warning else "")
                     + _table(section["bd"], f"bd-{n}"))
    for n, (title, table, text) in enumerate(appendix):
        if table is not None and len(table):  # Markdown's code spans are text here
            table = table.map(lambda v: v.strip("`") if isinstance(v, str) else v)
        parts.append(f"<h2>{html.escape(title)}</h2>" + _paragraphs([text])
                     + (_table(table, f"extra-{n}") if table is not None and len(table) else ""))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(heading) + "</title>"
            + _STYLE + "</head><body><h1>" + html.escape(heading) + "</h1>\n" + "\n".join(parts) + "\n"
            + _SORT_SCRIPT + "</body></html>\n")
