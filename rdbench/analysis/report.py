"""`rdbench report`: one Markdown page with BD tables, RD plots and how everything was computed."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path

import pandas as pd

from rdbench import __version__
from rdbench.analysis.tables import bd_table, bd_table_per_image, per_image_bd
from rdbench.analysis.curves import curves, to_compressai_json
from rdbench.analysis.published import published, read_compressai_json
from rdbench.bench.store import read_results

DEFAULT_REFERENCES = ("bpg", "mbt2018")
METRIC_TITLES = {"psnr_rgb": "PSNR-RGB", "ms_ssim_db": "MS-SSIM (dB)", "psnr_y": "PSNR-Y"}


def load_inputs(paths: list[str], weighting: str = "mean") -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """Per-image rows (from results.csv inputs) and curves (from all inputs, JSON files included)."""
    rows, tables = [], []
    for p in paths:
        if str(p).endswith(".json"):
            tables.append(read_compressai_json(p))
        else:
            r = read_results(p)
            rows.append(r)
            tables.append(curves(r, weighting))
    all_rows = pd.concat(rows, ignore_index=True) if rows else None
    return all_rows, pd.concat(tables, ignore_index=True)


def with_references(curve_table: pd.DataFrame, names) -> pd.DataFrame:
    extra = [published(n) for n in names]
    extra = [e for e in extra if e["codec"].iloc[0] not in set(curve_table["codec"])]
    return pd.concat([curve_table, *extra], ignore_index=True) if extra else curve_table


def markdown_table(df: pd.DataFrame, floats: str = "{:.2f}") -> str:
    def cell(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else floats.format(v)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


BD_COLUMNS = ["codec", "bd_rate_pct", "bd_metric", "overlap", "interval_lo", "interval_hi", "n_points", "error"]


def write_report(
    rows: pd.DataFrame | None,
    curve_table: pd.DataFrame,
    out_dir: str | Path,
    anchor: str = "bpg",
    method: str = "pchip",
    references=DEFAULT_REFERENCES,
    command: list[str] | None = None,
) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = with_references(curve_table, references)
    table.to_csv(out / "curves.csv", index=False)
    measured = table[table["source"] == "measured"]
    json_curves = {codec: to_compressai_json(c, codec) for codec, c in measured.groupby("codec")}
    (out / "curves-compressai.json").write_text(json.dumps(json_curves, indent=1) + "\n")

    from rdbench.analysis.plots import bd_bar_figure, per_image_figure, rd_figure

    sections = []
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    n_images = int(measured["n_images"].max()) if not measured.empty else 0
    datasets = ", ".join(sorted(measured["dataset"].unique()))
    sections.append(f"# rdbench report\n\nMade {now} by rdbench {__version__} with `{' '.join(command or sys.argv)}`.\n\n"
                    f"Dataset: {datasets} ({n_images} images). Mean curves average per-image values "
                    f"({table['weighting'].iloc[0]} weighting).")
    if rows is not None:
        versions = rows.groupby("codec")["codec_version"].agg(lambda v: ", ".join(sorted(set(v))))
        sections.append("## Codecs\n\n" + markdown_table(versions.reset_index().rename(columns={"codec_version": "version"})))
    for metric in ("psnr_rgb", "ms_ssim_db"):
        title = METRIC_TITLES[metric]
        bd = bd_table(table, anchor, metric, method)
        bd.to_csv(out / f"bd-{metric}.csv", index=False)
        anchor_label = f"{bd['anchor'].iloc[0]} ({bd['anchor_source'].iloc[0]})" if len(bd) else anchor
        text = (f"## BD versus {anchor_label}: {title}\n\nMethod {method}, on mean curves. `bd_rate_pct`: rate change at "
                f"equal {title} (negative: fewer bits). `bd_metric`: {title} change at equal rate. `overlap`: share of the "
                f"joint {title} range both curves cover, over [`interval_lo`, `interval_hi`].\n\n"
                + markdown_table(bd[BD_COLUMNS]))
        fig = rd_figure(table, metric, f"Kodak: {title} vs bpp")
        for ext in ("png", "svg"):
            fig.savefig(out / f"rd-{metric}.{ext}", dpi=130)
        bar = bd_bar_figure(bd, f"BD-rate ({title}, {method}) vs {bd['anchor'].iloc[0] if len(bd) else anchor}")
        bar.savefig(out / f"bd-{metric}.png", dpi=130)
        text += f"\n\n![RD {title}](rd-{metric}.png)\n\n![BD-rate {title}](bd-{metric}.png)"
        if rows is not None and (rows["codec"] == anchor).any():
            per = bd_table_per_image(rows, anchor, metric, method)
            per.to_csv(out / f"bd-per-image-{metric}.csv", index=False)
            per_image_figure(per_image_bd(rows, anchor, metric, method), f"per-image BD-rate vs {anchor}").savefig(
                out / f"bd-per-image-{metric}.png", dpi=130)
            text += ("\n\nPer image, then averaged over images (standard deviation and 95% bootstrap interval over images):\n\n"
                     + markdown_table(per[["codec", "bd_rate_pct", "std_pct", "ci95_lo", "ci95_hi", "n_images", "n_failed"]])
                     + f"\n\n![per-image BD-rate](bd-per-image-{metric}.png)")
        sections.append(text)
    sections.append(HOW)
    path = out / "report.md"
    path.write_text("\n\n".join(sections) + "\n")
    return path


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
