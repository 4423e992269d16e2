"""What `rdbench report` says: BD tables, RD plots and how everything was computed, as a Document.

`report_document` is pure: it takes the per-image rows, the curves, the published curves and the
runs (runs.jsonl entries) the caller loaded, and returns the page and its files;
analysis/report.py writes them. The page has one section per dataset (results of two datasets
are never compared), lists every run that contributed, and says which images and which
conventions every table used.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

import pandas as pd

from rdbench import __version__, describe_libraries, library_versions
from rdbench.analysis import DEFAULT_REFERENCES
from rdbench.analysis.curves import add_curves, curve_groups, describe_set, file_stem, to_compressai_json
from rdbench.analysis.document import Document, low_overlap_warning, markdown_table, md_code, md_escape
from rdbench.analysis.items import decode_checks, failed_items, failure_reasons, headings, speed_table
from rdbench.analysis.per_image import bd_table_per_image, per_image_bd
from rdbench.analysis.styles import style_map
from rdbench.analysis.tables import bd_table, convention, section_metric
from rdbench.analysis.jpeg_ai import jpeg_ai_summary, summary_line
from rdbench.bench.columns import HEADLINE_METRICS, REPORT_METRICS, title

BD_COLUMNS = ["label", "bd_rate_pct", "bd_metric", "overlap", "interval_lo", "interval_hi", "n_points", "n_images",
              "images", "error"]
PER_IMAGE_COLUMNS = ["label", "bd_rate_pct", "std_pct", "ci95_lo", "ci95_hi", "n_images", "n_failed", "n_dropped",
                     "dropped"]
JSON_FOLDER = "compressai-json"  # one CompressAI result file per measured curve
DPI = 130


def _command(command) -> str:
    return command if isinstance(command, str) else shlex.join(str(c) for c in command)


def runs_table(runs: Sequence[dict]) -> pd.DataFrame:
    """One row per run (runs.jsonl entries, paths already made relative by the caller)."""
    return pd.DataFrame([{
        "finished at": r.get("finished_at", ""),
        "command": md_code(_command(r.get("command", ""))),
        "rdbench": r.get("rdbench_version", ""),
        "libraries": describe_libraries(r["libraries"]) if r.get("libraries") else "not recorded",
        "dataset": f"{r.get('dataset', '')} ({r.get('dataset_source', '')})",
        "measured": r.get("ok", ""),
        "failed": r.get("failed", ""),
        "already stored": r.get("skipped", ""),
        "codec versions": "; ".join(f"{k}: {v}" for k, v in (r.get("codecs") or {}).items()),
    } for r in runs])


def _datasets(curve_table: pd.DataFrame) -> list:
    own = curve_table.loc[curve_table["source"] == "measured", "dataset"]
    return list(dict.fromkeys(own)) or list(dict.fromkeys(curve_table["dataset"]))


def references_for(references: Sequence[pd.DataFrame], here: pd.DataFrame, allow_mismatched: bool) -> list:
    """The published curves to show in a dataset's section: those over the image set of one of its
    measured curves, or every one when mismatched references are allowed (they are labelled)."""
    sets = set(here.loc[here["source"] == "measured", "image_set"])
    shown = []
    for ref in references:
        if ref["image_set"].iloc[0] in sets:
            shown.append(ref)
        elif allow_mismatched:
            first = ref.iloc[0]
            size = first["image_set_size"]
            count = "images not listed" if pd.isna(size) else f"{int(size)} images"
            shown.append(ref.assign(codec=f"{first['codec']} [MISMATCHED: {first['dataset']}, {count}]"))
    return shown


def _image_sets(measured: pd.DataFrame, dataset: str) -> str:
    """'kodak (24 images, set 1a2b3c4d5e6f)': a dataset and the image sets of its measured curves."""
    sets = measured[measured["dataset"] == dataset].drop_duplicates("image_set")
    described = (describe_set(dataset, n, s).split(", ", 1)[1] for s, n in zip(sets["image_set"], sets["image_set_size"]))
    return f"{md_escape(dataset)} ({md_escape('; '.join(described))})"


def _codecs_table(here: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, curve in curve_groups(here):
        first = curve.iloc[0]
        rows.append({"curve": first["label"], "codec": first["codec"], "version": first["codec_version"],
                     "source": first["source"],
                     "image set": describe_set(first["dataset"], first["image_set_size"], first["image_set"]),
                     "points": len(curve), "complete points": int(curve["complete"].astype(bool).sum())})
    return pd.DataFrame(rows)


def report_document(
    rows: pd.DataFrame | None,
    curve_table: pd.DataFrame,
    anchor: str = "bpg",
    method: str = "pchip",
    references: Sequence[pd.DataFrame] = (),
    published_anchor: pd.DataFrame | None = None,
    made_at: str = "",
    command: Sequence[str] | str = (),
    runs: Sequence[dict] = (),
    notes: Sequence[str] = (),
    images: pd.DataFrame | None = None,
    common_images: bool = False,
    allow_mismatched_reference: bool = False,
    target_rows: pd.DataFrame | None = None,
) -> Document:
    """The report on `curve_table` (and on the per-image `rows`, when given) against `anchor`.

    references: published curves to show beside the measured ones; published_anchor: the curve to
    use as the anchor when it was not measured; runs: the runs.jsonl entries of the inputs (paths
    made relative); notes: what the caller left out (older versions); images: which images each
    image set holds (for messages); common_images, allow_mismatched_reference: the comparison
    rules of analysis/tables.bd_table; target_rows: the rows of target searches (`rdbench run
--target-bpp`), shown in a section of their own. made_at and command go into the page's first line."""
    doc = Document("report.md")
    datasets = _datasets(curve_table)
    several = len(datasets) > 1
    all_curves = add_curves(curve_table, list(references))
    doc.tables["curves.csv"] = all_curves
    member_names = {}
    if images is not None and len(images):
        members = images.drop_duplicates(["image_set", "image_sha256"])
        member_names = members.groupby("image_set")["image"].agg(sorted)
    measured = curve_table[curve_table["source"] == "measured"]
    for _, curve in curve_groups(measured):
        first = curve.iloc[0]
        stem = file_stem(first["label"]) + (f"-{file_stem(first['dataset'])}" if several else "")
        names = member_names.get(first["image_set"]) if len(member_names) else None
        doc.json[f"{JSON_FOLDER}/{stem}.json"] = to_compressai_json(curve, images=None if names is None else list(names))

    from rdbench.analysis.plots import bd_bar_figure, per_image_figure, rd_figure

    weighting = curve_table["weighting"].iloc[0] if len(curve_table) else "mean"
    comparing = (f"Every BD table compares against the anchor {md_code(anchor)} (measured if it was run, else its published "
                 f"curve; each table names which), BD method {method}; MS-SSIM (dB) in the convention each table "
                 "names (the dB of the mean MS-SSIM wherever a published curve is in the comparison).")
    head = [f"# rdbench report\n\nMade {md_escape(made_at)} by rdbench {__version__} ({md_escape(describe_libraries(library_versions()))}) "
            f"with {md_code(_command(command))}.",
            comparing,
            "Datasets: " + "; ".join(_image_sets(measured, d) for d in datasets)
            + f". Curves average per-image values ({weighting} weighting); results of different datasets are never "
            "compared with each other."]
    rules = [md_escape(n) for n in notes]
    if rows is not None:
        flagged = decode_checks(rows).query("flag != ''")
        if len(flagged):
            rules.append("**decode check MISMATCH** (`--check-decode`): streams of " + ", ".join(
                md_code(c) for c in dict.fromkeys(flagged["codec"])) + " decode to other pixels in another process or "
                "thread count; see Decode consistency")
    if common_images:
        rules.append("--common-images: curves over different image sets are compared on the images both measured "
                     "(the `images` column of each BD table says which)")
    if allow_mismatched_reference:
        rules.append("--allow-mismatched-reference: published curves are compared with curves over other image sets "
                     "(rows marked MISMATCHED in the `images` column); those numbers compare different images")
    if rules:
        head.append("\n".join(f"- {r}" for r in rules))
    sections = ["\n\n".join(head)]
    if runs:
        sections.append(f"## Runs that made these results\n\n{RUNS_TEXT}.\n\n" + markdown_table(runs_table(runs), "{:.0f}"))

    interactive = []  # the sections of report.html
    appendix = []  # report.html's sections after the BD ones: speed, failures, runs
    look = style_map(all_curves)  # one style per curve for every chart of the report
    for dataset in datasets:
        here = curve_table[curve_table["dataset"] == dataset]
        table = add_curves(here, references_for(references, here, allow_mismatched_reference))
        suffix = f"-{file_stem(dataset)}" if several else ""
        heading = f"{md_escape(dataset)}: " if several else ""
        sections.append((f"## {md_escape(dataset)}: curves" if several else f"## Curves on {md_escape(dataset)}") + "\n\n"
                        + markdown_table(_codecs_table(table)))
        dataset_rows = rows[rows["dataset"] == dataset] if rows is not None else None
        bd_by_column = {}
        shown = [m for m in REPORT_METRICS if m in HEADLINE_METRICS or (m in table and table[m].notna().any())]
        for metric in shown:
            used = section_metric(table, metric)
            name = f"{title(metric)}, {convention(used, weighting)}" if used.startswith("ms_ssim") else title(metric)
            bd = bd_table(table, anchor, used, method, published_anchor, rows=dataset_rows, images=images,
                          common_images=common_images, allow_mismatched_reference=allow_mismatched_reference)
            doc.tables[f"bd-{metric}{suffix}.csv"] = bd
            bd_by_column[used if used != "ms_ssim_db_of_mean" else "ms_ssim_db"] = bd
            anchor_plain = anchor
            if len(bd):  # "BPG ... (published)" and its source "published: ..." say "published" once
                named = str(bd["anchor"].iloc[0])
                source = str(bd["anchor_source"].iloc[0])
                named = named.removesuffix(" (published)") if source.startswith("published") else named
                anchor_plain = f"{named} ({source})"

            def about(label: str) -> str:
                return (f"Anchor {label}. BD method {method}, on mean curves, metric column `{used}` "
                        f"({convention(used, weighting)}). `bd_rate_pct`: rate change at equal {title(used)} (negative: "
                        f"fewer bits). `bd_metric`: {title(used)} change at equal rate. `overlap`: share of the joint "
                        f"{title(used)} range both curves cover, over [`interval_lo`, `interval_hi`]. `images`: the "
                        "images compared.")

            # report.md gets outside names escaped for Markdown; report.html escapes them for HTML itself
            anchor_label = md_escape(anchor_plain)
            warning = low_overlap_warning(bd)
            text = (f"## {heading}BD versus {anchor_label}: {name}\n\n{about(anchor_label)}\n\n"
                    + (markdown_table(bd[BD_COLUMNS]) if len(bd) else "(no curve to compare)")
                    + (f"\n\n**Warning:** {md_escape(warning)}." if warning else ""))
            doc.add_figure(f"rd-{metric}{suffix}", rd_figure(table, used, f"{dataset}: {title(used)} vs bpp",
                                                             style_map=look), ("png", "svg"), DPI)
            interactive.append({"title": f"{dataset}: {title(used)} vs bpp", "curves": table, "metric": used,
                                "bd": bd[BD_COLUMNS] if len(bd) else pd.DataFrame(columns=BD_COLUMNS),
                                "bd_title": f"{dataset + ': ' if several else ''}BD versus {anchor_plain}: {name}",
                                "about": about(anchor_plain), "warning": warning, "rows": dataset_rows,
                                "row_metric": metric})
            versus = bd["anchor"].iloc[0] if len(bd) else anchor
            bar = bd_bar_figure(bd, f"{dataset}: BD-rate ({title(used)}, {method}) vs {versus}")
            doc.add_figure(f"bd-{metric}{suffix}", bar, ("png",), DPI)
            text += f"\n\n![RD {name}](rd-{metric}{suffix}.png)\n\n![BD-rate {name}](bd-{metric}{suffix}.png)"
            if dataset_rows is not None and bd_anchor_measured(dataset_rows, anchor):
                per_image = per_image_bd(dataset_rows, anchor, metric, method)
                per = bd_table_per_image(dataset_rows, anchor, metric, method, per_image)
                doc.tables[f"bd-per-image-{metric}{suffix}.csv"] = per
                figure = per_image_figure(per_image, f"{dataset}: per-image BD-rate vs {anchor}")
                doc.add_figure(f"bd-per-image-{metric}{suffix}", figure, ("png",), DPI)
                text += ("\n\nPer image, then averaged over images (standard deviation and 95% bootstrap interval over "
                         "images); an image that only one of the two codecs measured is left out and named in "
                         "`dropped`:\n\n" + (markdown_table(per[PER_IMAGE_COLUMNS]) if len(per) else "(no codec to compare)")
                         + f"\n\n![per-image BD-rate](bd-per-image-{metric}{suffix}.png)")
            sections.append(text)
        if bd_by_column:
            summary = jpeg_ai_summary(bd_by_column)
            doc.tables[f"jpeg-ai-summary{suffix}.csv"] = summary
            sections.append(f"## {heading}JPEG AI summary versus {anchor_label}\n\nThe mean of the BD-rates (%, "
                            f"{method}) over JPEG AI's seven metrics, for each curve over the metrics it has: "
                            f"{md_escape(summary_line(summary))}.\n\n" + (markdown_table(summary) if len(summary) else ""))
        if dataset_rows is not None:
            sections += _items_sections(doc, dataset_rows, heading, suffix)
            speed = doc.tables[f"speed{suffix}.csv"]
            appendix.append((f"{heading}Coding speed", headings(speed.drop(columns="dataset")), SPEED_TEXT))
            reasons = failure_reasons(dataset_rows)
            appendix.append((f"{heading}Failed items", reasons,
                             f"{int(reasons['items'].sum())} items failed, by reason (failed{suffix}.csv lists each)"
                             if len(reasons) else "None: every item was measured."))
            sections += _target_sections(doc, dataset_rows, heading, suffix)
    if runs:
        appendix.append(("Runs that made these results", runs_table(runs), RUNS_TEXT))
    if target_rows is not None and len(target_rows):
        from rdbench.analysis.targets import searched_targets, targets_markdown

        searched = searched_targets(target_rows)
        doc.tables["searched-targets.csv"] = searched
        sections.append("## Target searches\n\n" + targets_markdown(pd.DataFrame(), pd.DataFrame(), searched))
    sections.append(HOW)
    if interactive:
        from rdbench.analysis.html import PAGE, html_report

        preface = [f"Made {made_at} by rdbench {__version__} with: {_command(command)}", *head[1:3], *rules]
        doc.pages[PAGE] = html_report(interactive, "rdbench report", preface=preface, appendix=appendix,
                                      style_map=look)
        sections.insert(1, f"Interactive version (RD curves with hover and zoom, sortable BD tables, a per-image "
                           f"view; self-contained, works offline): [{PAGE}]({PAGE}).")
    doc.text = "\n\n".join(sections) + "\n"
    return doc


SPEED_TEXT = ("Per codec and version over its ok items: wall-clock seconds per image of the encode and decode calls "
              "alone (see Timing in the README), and megapixels per second (pixels over summed seconds). Single-core "
              "times, noisy on a busy machine: compare codecs of one run.")
RUNS_TEXT = ("Every run logged in the inputs' runs.jsonl, oldest first (paths relative to the folder the report was "
             "made from)")
FAILED_SHOWN = 50  # failed items listed on the page; failed.csv holds every one


def _target_sections(doc: Document, rows: pd.DataFrame, heading: str, suffix: str) -> list[str]:
    """Each codec at JPEG AI's and CLIC's target rates, and CLIC's corpus budget (analysis/targets.py)."""
    from rdbench.analysis.targets import at_target_rates, corpus_budget, targets_markdown

    rates, budget = at_target_rates(rows), corpus_budget(rows)
    if not len(rates):
        return []
    doc.tables[f"target-rates{suffix}.csv"] = rates
    doc.tables[f"corpus-budget{suffix}.csv"] = budget
    return [f"## {heading}At target rates\n\n" + targets_markdown(rates, budget)]


def _items_sections(doc: Document, rows: pd.DataFrame, heading: str, suffix: str) -> list[str]:
    """The speed table and the failed items of one dataset's rows (their CSVs added to `doc`)."""
    speed = speed_table(rows)
    doc.tables[f"speed{suffix}.csv"] = speed
    text = (f"## {heading}Coding speed\n\n{SPEED_TEXT}\n\n"
            + (markdown_table(headings(_without_empty_complexity(speed).drop(columns="dataset")), "{:.3g}") if len(speed) else "(no ok item)"))
    checks = decode_checks(rows)
    if len(checks):
        doc.tables[f"decode-check{suffix}.csv"] = checks
        flagged = checks[checks["flag"] != ""]
        text += (f"\n\n## {heading}Decode consistency (--check-decode)\n\nEach stream decoded a second time in "
                 "another process, with another torch thread count and on the CPU. "
                 + (f"**{len(flagged)} curve(s) flagged MISMATCH**: their streams do not decode to the same pixels "
                    "everywhere (CompressAI's float entropy parameters and transforms), so their numbers hold for "
                    "the machine and thread count that measured them only." if len(flagged) else
                    "Every checked stream decoded to identical pixels.")
                 + "\n\n" + markdown_table(headings(checks.drop(columns="dataset"))))
    failed = failed_items(rows)
    if len(failed):
        doc.tables[f"failed{suffix}.csv"] = failed
        shown = failed.head(FAILED_SHOWN).drop(columns="dataset")
        more = f" (the first {FAILED_SHOWN}; {md_code(f'failed{suffix}.csv')} lists all)" if len(failed) > FAILED_SHOWN else ""
        failed_text = (f"## {heading}Failed items\n\n{len(failed)} items failed{more}; they are stored with their "
                       "error, left out of the curves, and run again with `rdbench run --retry-failed`. By reason:\n\n"
                       + markdown_table(failure_reasons(rows)) + "\n\nEach item:\n\n" + markdown_table(headings(shown)))
    else:
        failed_text = f"## {heading}Failed items\n\nNone: every item was measured."
    return [text, failed_text]


def _without_empty_complexity(speed: pd.DataFrame) -> pd.DataFrame:
    """The speed table without the learned-model complexity columns when no codec has them."""
    return speed.drop(columns=[c for c in ("parameters", "enc_kmac_px", "dec_kmac_px") if speed[c].isna().all()])


def bd_anchor_measured(rows: pd.DataFrame, anchor: str) -> bool:
    """The anchor has per-image rows here (by spec, or the only spec with that codec name)."""
    ok = rows[rows["status"] == "ok"]
    return bool((ok["codec"] == anchor).any() or ok.loc[ok["codec"].str.split(":").str[0] == anchor, "codec"].nunique() == 1)


HOW = """## How these numbers were computed

- Rate: bpp = 8 x (bytes of the whole file or bitstream, headers included) / (width x height of the
  original image). Distortion: on the 8-bit RGB decoded image against the original, in float64.
  PSNR-RGB: MSE over all pixels and channels, peak 255. MS-SSIM: pytorch-msssim's conventions
  (Gaussian 11-tap window, sigma 1.5, 5 scales, standard weights), per channel then averaged.
- Curves: one per (dataset, image set, codec spec, codec version); two versions of a codec are two
  curves, never one average. For each quality, the mean over the curve's images of per-image bpp
  and metric values. A curve's image set is every image it measured (digest: SHA-256 of the sorted
  pixel SHA-256s); points that not every image reached (failed items) are left out of BD.
- MS-SSIM in dB, two conventions: `ms_ssim_db` is the mean of per-image -10 log10(1 - MS-SSIM);
  `ms_ssim_db_of_mean` is -10 log10(1 - mean MS-SSIM), CompressAI's convention and the published
  curves'. A comparison with a curve that has only the latter uses the latter on both sides; each
  table names its metric column and convention.
- BD-rate: log10(bpp) interpolated as a function of quality for anchor and test, integrated
  exactly over the quality interval both cover; 100 x (10^mean difference - 1). BD-metric: quality
  as a function of log10(bpp), mean difference over the shared log-rate interval. Interpolation
  as named (pchip: piecewise cubic Hermite, as in current CTCs; cubic: VCEG-M33 polynomial;
  akima). These agree with the `bjontegaard` package to within 0.01 points (tested). Only curves
  over the same image set are compared (unless the report says otherwise above).
- "published" curves are CompressAI's published Kodak results (see rdbench/reference/SOURCE.md),
  not measured here: other library versions, means over Kodak's 24 images; they are compared only
  with curves over those 24 images. Metrics of measured curves were computed on 8-bit decoded images.
- Files: `curves.csv` (all curves), `compressai-json/*.json` (each measured curve as a CompressAI
  result file, which `rdbench bdrate` and `python -m compressai.utils.plot` read), `bd-*.csv`
  (tables above), `rd-*.png|svg`, `bd-*.png` (plots)."""
