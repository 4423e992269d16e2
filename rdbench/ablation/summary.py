"""The ablation summary: per-metric tables, the paper's questions as pairs of cells, plots, ablation.md.

`summarize` is pure: it takes the evaluation rows (codec = cell name), each cell's facts and the
published curves, and returns a Document; ablation/files.py reads those inputs and writes it.
"""

from __future__ import annotations

import warnings

from rdbench.ablation.config import AblationConfig, Cell
from rdbench.analysis.bd import BDError, bd
from rdbench.analysis.document import Document, markdown_table
from rdbench.analysis.curves import operational  # noqa: F401 - re-exported: the ablation's rule
from rdbench.analysis.tables import convention, matched_metric
from rdbench.bench.columns import HEADLINE_METRICS

# The paper's questions put our BD-rate beside the same pair's published one: on MS-SSIM (dB) both
# are computed on the dB of the mean MS-SSIM, the only convention the published curves have.
QUESTION_METRIC = {"ms_ssim_db": "ms_ssim_db_of_mean"}

BPG = "bpg"  # the published classical anchor every cell is also compared with
DPI = 120


# The paper's questions, each a pair of cells (test, anchor) and, where published curves of the same
# pair are shipped, the model names of that pair: "paper" are the points read from the papers
# (Minnen et al. 2018 for mbt2018 and mbt2018-mean, Balle et al. 2018 for bmshj2018-*; PSNR only),
# "CompressAI zoo" CompressAI's MSE-trained reimplementations measured with real bitstreams.
PAPER_QUESTIONS = (
    ("hyperprior vs factorized prior", "hyperprior", "factorized", "bmshj2018-hyperprior", "bmshj2018-factorized"),
    ("predicted mean on top of the scale hyperprior", "mean-scale", "hyperprior", "mbt2018-mean", "bmshj2018-hyperprior"),
    ("context model alone vs factorized prior", "context-k5", "factorized", None, None),
    ("context on top of the mean-scale hyperprior", "joint-k5", "mean-scale", "mbt2018", "mbt2018-mean"),
    ("hyperprior on top of the context model", "joint-k5", "context-k5", None, None),
    ("joint vs the scale hyperprior (paper's text: -15.8%)", "joint-k5", "hyperprior", "mbt2018", "bmshj2018-hyperprior"),
    ("context-only vs mean-scale hyperprior", "context-k5", "mean-scale", None, None),
)
PUBLISHED_SOURCES = {"paper": "paper-{}", "CompressAI zoo": "compressai-{}_mse_cpu"}


def _joint(cell: Cell) -> bool:
    """The cell has both the hyperprior and the context model (the paper's joint model)."""
    return cell.model_config.has_hyperprior and cell.model_config.has_context


def _questions(config: AblationConfig) -> list[tuple]:
    """PAPER_QUESTIONS whose cells are in the grid, plus context size and mixture questions."""
    names = {c.name for c in config.cells}
    found = [q for q in PAPER_QUESTIONS if q[1] in names and q[2] in names]
    for cell in config.cells:
        if not _joint(cell):
            continue
        single = next((c.name for c in config.cells
                       if _joint(c) and c.k == cell.k and c.K == 1 and (c.N, c.M) == (cell.N, cell.M)), None)
        if cell.K > 1 and single:
            found.append((f"{cell.K}-Gaussian mixture vs one Gaussian (k = {cell.k})", cell.name, single, None, None))
        if cell.K == 1 and cell.name != config.reference and config.reference in names:
            found.append((f"context size k = {cell.k} vs the reference", cell.name, config.reference, None, None))
    return found


def _points(curve, metric: str):
    """The points of a curve that BD can use: complete (every image measured), with a value."""
    return curve[curve["complete"]].dropna(subset=[metric])


def operational_table(table, metric: str):
    """`operational` applied to every curve of a curve table; also {codec: points left out}."""
    import pandas as pd

    parts, dropped = [], {}
    keys = [k for k in ("dataset", "codec", "codec_version") if k in table]
    for key, curve in table.groupby(keys, sort=False):
        codec = curve["codec"].iloc[0]
        points = _points(curve, metric)
        if len(points) == 0:  # no value of the metric: kept as it is, so that BD says why
            parts.append(curve)
            continue
        kept = operational(points, metric)
        parts.append(kept)
        dropped[codec] = len(points) - len(kept)
    return (pd.concat(parts, ignore_index=True) if parts else table.iloc[:0]), dropped


def _bd_between(test, anchor, metric: str) -> tuple[float, str]:
    """BD-rate of two curves on their operational points, in matched conventions (tables.matched_metric),
    and a note: the overlap and the convention, or why there is no number."""
    metric, _ = matched_metric(metric, anchor, test)
    test, anchor = operational(_points(test, metric), metric), operational(_points(anchor, metric), metric)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = bd(anchor["bpp"], anchor[metric], test["bpp"], test[metric], "rate", "pchip")
    except BDError as exc:
        return float("nan"), str(exc)
    return result.value, f"overlap {result.overlap:.2f}; {convention(metric)}"


def published_needed(config: AblationConfig) -> list[str]:
    """The published curves (names for analysis.published.published) that `summarize` needs."""
    names = [BPG]
    for _, _, _, pub_test, pub_anchor in _questions(config):
        if pub_test:
            names += [stem.format(m) for stem in PUBLISHED_SOURCES.values() for m in (pub_test, pub_anchor)]
    return list(dict.fromkeys(names))


def paper_questions(config: AblationConfig, table, published: dict):
    """BD-rate (pchip) of test vs anchor cell for each question, next to the published pair's.

    published: the curves named by `published_needed`, by name."""
    import pandas as pd

    rows = []
    for question, test, anchor, pub_test, pub_anchor in _questions(config):
        row = {"question": question, "test": test, "anchor": anchor}
        for metric in HEADLINE_METRICS:
            used = QUESTION_METRIC.get(metric, metric)
            row[f"{metric} ours (%)"], row[f"{metric} note"] = _bd_between(
                table[table["codec"] == test], table[table["codec"] == anchor], used)
            for source, stem in PUBLISHED_SOURCES.items():
                value = float("nan")
                if pub_test:
                    value, _ = _bd_between(published[stem.format(pub_test)], published[stem.format(pub_anchor)], used)
                row[f"{metric} {source} (%)"] = value
        row["published pair"] = f"{pub_test} vs {pub_anchor}" if pub_test else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _notes(bd, label: str, index):
    """A bd_table's errors as "label: error" per cell ("" where it has a number)."""
    return (label + ": " + bd["error"]).where(bd["error"] != "", "").reindex(index).fillna("")


def summarize(config: AblationConfig, rows, facts: dict[str, dict], published: dict, command: str) -> Document:
    """Tables (per metric), RD curves, BD bar charts and ablation.md, as a Document.

    rows: the evaluation rows of the cells, `codec` being the cell's name; facts: per cell,
    {"params": trainable parameters or None, "steps": training steps}; published: the curves
    named by `published_needed`; command: what made the summary, for its first lines."""
    import pandas as pd

    from rdbench.analysis.curves import add_curves, curves, select_versions
    from rdbench.analysis.plots import bd_bar_figure, rd_figure
    from rdbench.analysis.tables import bd_table, section_metric

    doc = Document("ablation.md")
    bpg = published[BPG]
    # a cell retrained (more steps) is a new model, so a new codec version: its curve is the newest
    # version's alone, never the mean of the old and the new model
    rows, version_notes = select_versions(rows, "newest")
    ok = rows[rows["status"] == "ok"]
    table = curves(rows)
    per_cell = ok.groupby("codec").agg(
        bpp_gap_pct=("bpp", lambda s: 100 * (s.mean() / ok.loc[s.index, "bpp_estimated"].mean() - 1)),
        enc_s=("enc_s", "mean"), dec_s=("dec_s", "mean"), images=("image", "nunique"),
    )
    sections = []
    for metric in HEADLINE_METRICS:
        kept, dropped = operational_table(table, metric)
        vs_ref = bd_table(kept, config.reference, metric).set_index("codec")
        vs_bpg = bd_table(add_curves(kept, [bpg]), BPG, metric, published_anchor=bpg).set_index("codec")
        with_bpg = add_curves(table, [bpg])
        bpg_source = vs_bpg["anchor_source"].iloc[0] if len(vs_bpg) else ""
        result = pd.DataFrame({"cell": [c.name for c in config.cells]}).set_index("cell")
        result[f"BD-rate vs {config.reference} (%)"] = vs_ref["bd_rate_pct"]
        result[f"BD-rate vs BPG, {bpg_source} (%)"] = vs_bpg["bd_rate_pct"]
        result["overlap vs BPG"] = vs_bpg["overlap"]
        result["real/estimated bpp (%)"] = per_cell["bpp_gap_pct"]
        result["params"] = pd.Series({k: v["params"] for k, v in facts.items()})
        result["enc s/image"] = per_cell["enc_s"]
        result["dec s/image"] = per_cell["dec_s"]
        result.loc[config.reference, f"BD-rate vs {config.reference} (%)"] = 0.0
        result["dominated points left out"] = pd.Series(dropped)
        both = _notes(vs_ref, f"vs {config.reference}", result.index) + "; " + _notes(vs_bpg, "vs BPG", result.index)
        result["BD note"] = both.str.strip("; ")
        result["conventions"] = (f"vs {config.reference}: " + vs_ref["convention"].reindex(result.index).fillna("")
                                 + "; vs BPG: " + vs_bpg["convention"].reindex(result.index).fillna(""))
        result = result.reset_index()
        doc.tables[f"ablation_{metric}.csv"] = result
        sections.append((metric, result, bpg_source))
        plotted = section_metric(with_bpg, metric)  # BPG has MS-SSIM dB only as the dB of its mean
        doc.add_figure(f"rd_{metric}", rd_figure(with_bpg, plotted, f"{config.name}: {plotted}"), dpi=DPI)
        doc.add_figure(f"rd_{metric}_cells", rd_figure(table, metric, f"{config.name}: {metric}, cells only"), dpi=DPI)
        bars = vs_ref.reset_index()
        bars = bars[bars["source"] == "measured"]
        doc.add_figure(f"bd_{metric}", bd_bar_figure(bars, f"{config.name}: BD-rate vs {config.reference}, {metric}"), dpi=DPI)

    questions = paper_questions(config, table, published)
    doc.tables["ablation_questions.csv"] = questions
    timing = []
    ok = rows[rows["status"] == "ok"] if len(rows) else rows
    if len(ok) and ("setup_s" not in ok or ok["setup_s"].isna().all()):
        # rows from before rdbench warmed codecs up: each worker's first item of a cell paid its start-up
        timing.append("enc/dec times of these rows were measured before rdbench warmed each codec up in each "
                      "worker (no setup_s): the first item of each cell in each worker includes model loading, "
                      "so enc s/image is biased upwards by about (start-up s x workers) / items per cell.")
    doc.text = _page(config, sections, questions, facts, per_cell, command, version_notes, timing)
    return doc


def _page(config: AblationConfig, sections, questions, facts, per_cell, command: str, notes=(), timing=()) -> str:
    """ablation.md: the scale of the run first, then each metric's table and plots, the questions, the columns."""
    t = config.training
    steps = sorted({v["steps"] for v in facts.values()})
    lines = [
        f"# Ablation `{config.name}`",
        "",
        f"Command: `{command}`",
        "",
        "## Scale (read this first)",
        "",
        f"- Cells: {len(config.cells)}; N = {sorted({c.N for c in config.cells})}, M = {sorted({c.M for c in config.cells})}.",
        f"- Rate points: lambdas {', '.join(f'{x:g}' for x in config.lambdas)} "
        + ("(one variable-rate model per cell: gain units, one lambda drawn per step)." if config.rate_mode == "gain-units"
           else "(one model per lambda)."),
        f"- Training: {', '.join(str(s) for s in steps)} steps of batch {t.batch}, {t.crop}x{t.crop} crops, Adam lr {t.lr:g}, "
        f"metric {t.metric}, images downscaled by {t.downscale}, from `{t.data}`.",
        f"- Evaluation: {config.dataset}, {int(per_cell['images'].max()) if len(per_cell) else 0} images, real bitstreams "
        "(bpp counts every byte). Times are per image on this machine, one worker thread each.",
        *(f"- Left out: {note}" for note in notes),
        *(f"- Timing: {note}" for note in timing),
        "",
    ]
    for metric, result, bpg_source in sections:
        lines += [f"## {metric}", "", markdown_table(result, "{:.2f}"), "",
                  f"![RD curves](rd_{metric}.png)", "", f"![RD curves, cells only](rd_{metric}_cells.png)", "", f"![BD-rate vs {config.reference}](bd_{metric}.png)", ""]
    if len(questions):
        shown = questions[[c for c in questions.columns if not c.endswith(" note")]].dropna(axis=1, how="all")
        lines += ["## The paper's questions", "",
                  "BD-rate (pchip) of the test cell against the anchor cell; negative: the test needs fewer bits. "
                  "'paper' is the same pair computed from the points published in the papers (PSNR only), 'CompressAI zoo' "
                  "from CompressAI's MSE-trained models of the same pair (real bitstreams), where shipped: "
                  "full-scale training, so a direction and size to compare with, not a target for a small run. "
                  "On MS-SSIM (dB) both are computed on the dB of the mean MS-SSIM (the published curves' only "
                  "convention). The CSV (ablation_questions.csv) also says why a number is missing.", "",
                  markdown_table(shown, "{:.2f}"), ""]
    lines += [
        "Columns: BD-rate (pchip, mean curves over images; negative = fewer bits at equal quality) versus the "
        f"reference cell `{config.reference}` and versus BPG ({sections[0][2] if sections else ''}); "
        "real/estimated bpp: how much larger the real bitstream is than the model's own -log2 likelihood estimate; "
        "params: trainable parameters; enc/dec: mean seconds per image; dominated points left out: rate points "
        "that cost more bits than a cheaper point of the same cell for no better quality (off the operational RD "
        "curve; BD uses the rest, and the RD plots show all); conventions: which MS-SSIM (dB) each BD-rate is on "
        "(versus BPG, the dB of the mean MS-SSIM, BPG's only convention; a BD-rate versus BPG needs the 24 Kodak "
        "images BPG's curve averages, else the note says why there is none).",
        "",
    ]
    return "\n".join(lines)

