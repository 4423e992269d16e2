"""What `rdbench report` says: BD tables, RD plots and how everything was computed, as a Document.

`report_document` is pure: it takes the per-image rows, the curves and the published curves the
caller loaded (analysis/published), and returns the page and its files; analysis/report.py
writes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from rdbench import __version__
from rdbench.analysis.curves import add_curves, to_compressai_json
from rdbench.analysis.document import Document, markdown_table
from rdbench.analysis.tables import bd_table, bd_table_per_image, per_image_bd
from rdbench.bench.columns import HEADLINE_METRICS, title

DEFAULT_REFERENCES = ("bpg", "mbt2018")  # published curves a report shows beside the measured ones
BD_COLUMNS = ["codec", "bd_rate_pct", "bd_metric", "overlap", "interval_lo", "interval_hi", "n_points", "error"]
PER_IMAGE_COLUMNS = ["codec", "bd_rate_pct", "std_pct", "ci95_lo", "ci95_hi", "n_images", "n_failed"]
DPI = 130


def report_document(
    rows: pd.DataFrame | None,
    curve_table: pd.DataFrame,
    anchor: str = "bpg",
    method: str = "pchip",
    references: Sequence[pd.DataFrame] = (),
    published_anchor: pd.DataFrame | None = None,
    made_at: str = "",
    command: Sequence[str] = (),
) -> Document:
    """The report on `curve_table` (and on the per-image `rows`, when given) against `anchor`.

    references: published curves to show beside the measured ones; published_anchor: the curve to
    use as the anchor when it was not measured. made_at and command go into the page's first line.
    """
    doc = Document("report.md")
    table = add_curves(curve_table, list(references))
    doc.tables["curves.csv"] = table
    measured = table[table["source"] == "measured"]
    doc.json["curves-compressai.json"] = {codec: to_compressai_json(c, codec) for codec, c in measured.groupby("codec")}

    from rdbench.analysis.plots import bd_bar_figure, per_image_figure, rd_figure

    sections = []
    n_images = int(measured["n_images"].max()) if not measured.empty else 0
    datasets = ", ".join(sorted(measured["dataset"].unique()))
    sections.append(f"# rdbench report\n\nMade {made_at} by rdbench {__version__} with `{' '.join(command)}`.\n\n"
                    f"Dataset: {datasets} ({n_images} images). Mean curves average per-image values "
                    f"({table['weighting'].iloc[0]} weighting).")
    if rows is not None:
        versions = rows.groupby("codec")["codec_version"].agg(lambda v: ", ".join(sorted(set(v))))
        sections.append("## Codecs\n\n" + markdown_table(versions.reset_index().rename(columns={"codec_version": "version"})))
    for metric in HEADLINE_METRICS:
        name = title(metric)
        bd = bd_table(table, anchor, metric, method, published_anchor)
        doc.tables[f"bd-{metric}.csv"] = bd
        anchor_label = f"{bd['anchor'].iloc[0]} ({bd['anchor_source'].iloc[0]})" if len(bd) else anchor
        text = (f"## BD versus {anchor_label}: {name}\n\nMethod {method}, on mean curves. `bd_rate_pct`: rate change at "
                f"equal {name} (negative: fewer bits). `bd_metric`: {name} change at equal rate. `overlap`: share of the "
                f"joint {name} range both curves cover, over [`interval_lo`, `interval_hi`].\n\n"
                + markdown_table(bd[BD_COLUMNS]))
        doc.add_figure(f"rd-{metric}", rd_figure(table, metric, f"Kodak: {name} vs bpp"), ("png", "svg"), DPI)
        bar = bd_bar_figure(bd, f"BD-rate ({name}, {method}) vs {bd['anchor'].iloc[0] if len(bd) else anchor}")
        doc.add_figure(f"bd-{metric}", bar, ("png",), DPI)
        text += f"\n\n![RD {name}](rd-{metric}.png)\n\n![BD-rate {name}](bd-{metric}.png)"
        if rows is not None and (rows["codec"] == anchor).any():
            per = bd_table_per_image(rows, anchor, metric, method)
            doc.tables[f"bd-per-image-{metric}.csv"] = per
            figure = per_image_figure(per_image_bd(rows, anchor, metric, method), f"per-image BD-rate vs {anchor}")
            doc.add_figure(f"bd-per-image-{metric}", figure, ("png",), DPI)
            text += ("\n\nPer image, then averaged over images (standard deviation and 95% bootstrap interval over images):\n\n"
                     + markdown_table(per[PER_IMAGE_COLUMNS])
                     + f"\n\n![per-image BD-rate](bd-per-image-{metric}.png)")
        sections.append(text)
    sections.append(HOW)
    doc.text = "\n\n".join(sections) + "\n"
    return doc


HOW = """## How these numbers were computed

- Rate: bpp = 8 x (bytes of the whole file or bitstream, headers included) / (width x height of the
  original image). Distortion: on the 8-bit RGB decoded image against the original, in float64.
  PSNR-RGB: MSE over all pixels and channels, peak 255. MS-SSIM: pytorch-msssim's conventions
  (Gaussian 11-tap window, sigma 1.5, 5 scales, standard weights), per channel then averaged;
  MS-SSIM (dB) = -10 log10(1 - MS-SSIM), averaged per image.
- Curves: for each codec and quality, the mean over images of per-image bpp and per-image metric
  values. Points that not every image reached (failed items) are left out of BD.
- BD-rate: log10(bpp) interpolated as a function of quality for anchor and test, integrated
  exactly over the quality interval both cover; 100 x (10^mean difference - 1). BD-metric: quality
  as a function of log10(bpp), mean difference over the shared log-rate interval. Interpolation
  as named (pchip: piecewise cubic Hermite, as in current CTCs; cubic: VCEG-M33 polynomial;
  akima). These agree with the `bjontegaard` package to within 0.01 points (tested).
- "published" curves are CompressAI's published Kodak results (see rdbench/reference/SOURCE.md),
  not measured here: other library versions, and their MS-SSIM dB is from the mean linear MS-SSIM.
  Metrics of measured curves were computed on 8-bit decoded images.
- Files: `curves.csv` (all curves), `curves-compressai.json` (measured curves in CompressAI's JSON
  layout), `bd-*.csv` (tables above), `rd-*.png|svg`, `bd-*.png` (plots)."""
