"""The ablation summary: per-metric tables, the paper's questions as pairs of cells, plots, ablation.md.

`summarize` is pure: it takes the evaluation rows (codec = cell name), each cell's facts and the
published curves, and returns a Document; ablation/files.py reads those inputs and writes it.
"""

from __future__ import annotations

import warnings

from rdbench.ablation.config import AblationConfig, Cell
from rdbench.analysis.bd import BDError, bd
from rdbench.analysis.document import Document, markdown_table, md_code, md_escape
from rdbench.analysis.curves import operational  # re-exported too: the ablation's rule
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


def _explained(note: str, curves: dict, metric: str, lambdas) -> str:
    """A BD note with, when BD refused too few points, the dominated rate points of the two curves."""
    from rdbench.ablation.dominated import explain

    return explain(note, curves, metric, lambdas)


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
            cells = {anchor: table[table["codec"] == anchor], test: table[table["codec"] == test]}
            value, note = _bd_between(cells[test], cells[anchor], used)
            row[f"{metric} ours (%)"], row[f"{metric} note"] = value, _explained(note, cells, used, config.lambdas)
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


def newest_per_run(rows):
    """The rows of each (cell, seed)'s newest model only (analysis.curves.select_versions per run):
    a run retrained (more steps) is a new model, so a new codec version, and its curve is the newest
    version's alone, never the mean of the old and the new model."""
    from rdbench.analysis.curves import select_versions

    if "seed" not in rows or rows.empty:
        return select_versions(rows, "newest")
    return select_versions(rows, "newest", by=("seed",))


def pooled(rows, seeds):
    """The rows of every seed as one curve per cell: its points are the mean over images and seeds."""
    return rows.assign(codec_version=f"mean of seeds {', '.join(str(s) for s in seeds)}")


def run_rows(rows):
    """Per-image rows in the form analysis.seeds reads: cell, seed, image, quality, bpp, metrics."""
    import pandas as pd

    ok = rows[rows["status"] == "ok"]
    data = {"cell": ok["codec"], "seed": ok["seed"], "image": ok["image_sha256"], "quality": ok["quality"],
            "bpp": ok["bpp"]}
    data.update({m: ok[m] for m in ("psnr_rgb", "ms_ssim_db", "ms_ssim") if m in ok})
    return pd.DataFrame(data)


def learning_tables(config: AblationConfig, learning):
    """From the held-out learning curves (cell, seed, step, rate, bpp, psnr, loss): each question's
    BD-rate (estimated bpp, PSNR, pchip on operational points) per step, as the mean, lowest and
    highest over the seeds both cells have; and each cell's RD loss per step (mean over rates, seeds)."""
    import numpy as np
    import pandas as pd

    out = []
    for question, test, anchor, *_ in _questions(config):
        for step, at in learning.groupby("step"):
            values = []
            for seed in sorted(set(at.loc[at["cell"] == test, "seed"]) & set(at.loc[at["cell"] == anchor, "seed"])):
                t = operational(at[(at["cell"] == test) & (at["seed"] == seed)], "psnr")
                a = operational(at[(at["cell"] == anchor) & (at["seed"] == seed)], "psnr")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        values.append(bd(a["bpp"], a["psnr"], t["bpp"], t["psnr"], "rate", "pchip").value)
                except BDError:
                    continue
            out.append({"question": question, "test": test, "anchor": anchor, "step": int(step),
                        "bd_rate_mean": float(np.mean(values)) if values else float("nan"),
                        "bd_rate_min": min(values, default=float("nan")),
                        "bd_rate_max": max(values, default=float("nan")), "n_seeds": len(values)})
    columns = ["question", "test", "anchor", "step", "bd_rate_mean", "bd_rate_min", "bd_rate_max", "n_seeds"]
    bd_steps = pd.DataFrame(out, columns=columns)
    order = {c.name: i for i, c in enumerate(config.cells)}
    losses = (learning.groupby(["cell", "step"], as_index=False)["loss"].mean()
              .sort_values(["cell", "step"], key=lambda s: s.map(order) if s.name == "cell" else s))
    return bd_steps, losses


COMPLEXITY_COLUMNS = {"enc_kmac_px": "enc kMAC/px", "dec_kmac_px": "dec kMAC/px",
                      "decode_transforms_s": "decode: transforms s", "decode_entropy_parameters_s":
                      "decode: entropy parameters s", "decode_entropy_coding_s": "decode: entropy coding s"}


def summarize(config: AblationConfig, rows, facts: dict[str, dict], published: dict, command: str,
              learning=None) -> Document:
    """Tables (per metric), RD curves, BD bar charts and ablation.md, as a Document.

    rows: the evaluation rows of the cells, `codec` being the cell's name (and `seed` its training
    seed, for a grid trained per seed); facts: per cell, {"params": trainable parameters or None,
    "steps": training steps, "complexity": complexity.json's dict or None}; published: the curves
    named by `published_needed`; command: what made the summary, for its first lines; learning:
    the held-out learning curves (cell, seed, step, rate, bpp, psnr, loss) or None."""
    import pandas as pd

    from rdbench.analysis.curves import add_curves, curves
    from rdbench.analysis.plots import bd_bar_figure, learning_figure, rd_figure, tradeoff_figure
    from rdbench.analysis.styles import style_map
    from rdbench.ablation.answers import Answers
    from rdbench.ablation.dominated import dominated_lines
    from rdbench.analysis.tables import bd_table

    doc = Document("ablation.md")
    bpg = published[BPG]
    replicated = config.training.replicated and "seed" in rows
    rows, version_notes = newest_per_run(rows)
    ok = rows[rows["status"] == "ok"]
    seeds = sorted(int(s) for s in ok["seed"].unique()) if replicated else []
    table = curves(pooled(rows, seeds) if replicated else rows)
    per_run = run_rows(rows) if replicated else None
    vs_reference = [(c.name, c.name, config.reference) for c in config.cells if c.name != config.reference]
    intervals = {}
    per_cell = ok.groupby("codec").agg(
        bpp_gap_pct=("bpp", lambda s: 100 * (s.mean() / ok.loc[s.index, "bpp_estimated"].mean() - 1)),
        enc_s=("enc_s", "mean"), dec_s=("dec_s", "mean"), images=("image", "nunique"),
    )
    answers = Answers(per_run, config.lambdas) if replicated else None
    look = style_map(add_curves(table, [bpg]))  # each cell one look in every chart of the summary
    sections = []
    for metric in HEADLINE_METRICS:
        # one convention per question everywhere: the per-cell table, its charts and the questions all
        # use QUESTION_METRIC's (MS-SSIM dB: the dB of the mean, the published curves' only one)
        used = QUESTION_METRIC.get(metric, metric)
        named = f"{used} ({convention(used)})"
        kept, dropped = operational_table(table, used)
        vs_ref = bd_table(kept, config.reference, used).set_index("codec")
        vs_bpg = bd_table(add_curves(kept, [bpg]), BPG, used, published_anchor=bpg).set_index("codec")
        with_bpg = add_curves(table, [bpg])
        bpg_source = vs_bpg["anchor_source"].iloc[0] if len(vs_bpg) else ""
        result = pd.DataFrame({"cell": [c.name for c in config.cells]}).set_index("cell")
        result[f"BD-rate vs {config.reference} (%)"] = vs_ref["bd_rate_pct"]
        if replicated:  # the mean over seeds of each seed's BD-rate, and its interval (analysis/seeds.py)
            ci = answers.table(vs_reference, used).set_index("test")
            intervals[metric] = ci
            result[f"BD-rate vs {config.reference} (%)"] = ci["bd_rate_mean"]
            for column in ("bd_rate_mean", "bd_rate_ci_low", "bd_rate_ci_high", "n_seeds", "resolved", "verdict"):
                result[column] = ci[column]
            result.loc[config.reference, ["bd_rate_mean", "bd_rate_ci_low", "bd_rate_ci_high"]] = 0.0
            result.loc[config.reference, "verdict"] = "the reference"
        result[f"BD-rate vs BPG, {bpg_source} (%)"] = vs_bpg["bd_rate_pct"]
        result["overlap vs BPG"] = vs_bpg["overlap"]
        result["real/estimated bpp (%)"] = per_cell["bpp_gap_pct"]
        result["params"] = pd.Series({k: v["params"] for k, v in facts.items()})
        result["enc s/image"] = per_cell["enc_s"]
        result["dec s/image"] = per_cell["dec_s"]
        for key, heading in COMPLEXITY_COLUMNS.items():
            result[heading] = pd.Series({k: (v.get("complexity") or {}).get(key) for k, v in facts.items()}, dtype=float)
        result.loc[config.reference, f"BD-rate vs {config.reference} (%)"] = 0.0
        result["dominated points left out"] = pd.Series(dropped)
        ref_notes = _notes(vs_ref, f"vs {config.reference}", result.index)
        ref_curve = table[table["codec"] == config.reference]
        ref_notes = pd.Series({cell: _explained(note, {config.reference: ref_curve, cell: table[table["codec"] == cell]},
                                                used, config.lambdas) for cell, note in ref_notes.items()}, dtype=object)
        bpg_notes = _notes(vs_bpg, "vs BPG", result.index)
        bpg_notes = pd.Series({cell: _explained(note, {cell: table[table["codec"] == cell]}, used, config.lambdas)
                               for cell, note in bpg_notes.items()}, dtype=object)
        both = ref_notes + "; " + bpg_notes
        result["BD note"] = both.str.strip("; ")
        result["conventions"] = (f"vs {config.reference}: " + vs_ref["convention"].reindex(result.index).fillna("")
                                 + "; vs BPG: " + vs_bpg["convention"].reindex(result.index).fillna(""))
        result = result.reset_index()
        doc.tables[f"ablation_{metric}.csv"] = result
        sections.append((metric, used, result, bpg_source))
        doc.add_figure(f"rd_{metric}", rd_figure(with_bpg, used, f"{config.name}: {named}", style_map=look), dpi=DPI)
        doc.add_figure(f"rd_{metric}_cells", rd_figure(table, used, f"{config.name}: {named}, cells only",
                                                       style_map=look), dpi=DPI)
        bars = vs_ref.reset_index()
        bars = bars[bars["source"] == "measured"]
        if replicated:
            ci = intervals[metric]
            bars = bars[bars["codec"].isin(ci.index)].copy()
            bars["bd_rate_pct"] = bars["codec"].map(ci["bd_rate_mean"])
            bars["ci95_lo"] = bars["codec"].map(ci["bd_rate_ci_low"])
            bars["ci95_hi"] = bars["codec"].map(ci["bd_rate_ci_high"])
            withheld = bars["codec"].map(ci["error"]).fillna("").astype(bool)
            bars["label"] = bars["codec"].where(~withheld, bars["codec"] + " (no verdict)")
        what = f", mean of {len(seeds)} seeds, 95% interval" if replicated else ""
        doc.add_figure(f"bd_{metric}", bd_bar_figure(bars, f"{config.name}: BD-rate vs {config.reference}, {named}{what}"),
                       dpi=DPI)
        if replicated:
            trade = result.rename(columns={"dec kMAC/px": "dec_kmac_px", "dec s/image": "dec_s"})
            doc.add_figure(f"tradeoff_{metric}", tradeoff_figure(
                trade, config.reference, f"{config.name}: gain against decoder cost, {named}", style_map=look), dpi=DPI)

    questions = paper_questions(config, table, published)
    seed_answers = None
    if replicated and len(questions):
        parts = []
        for metric in HEADLINE_METRICS:
            used = QUESTION_METRIC.get(metric, metric)
            answered = answers.table([q[:3] for q in _questions(config)], used)
            answered.insert(3, "metric", used)
            parts.append(answered)
            by_question = answered.set_index("question")
            questions[f"{metric} ours (%)"] = questions["question"].map(by_question["bd_rate_mean"])
            error = questions["question"].map(by_question["error"]).fillna("")
            questions[f"{metric} note"] = error.where(error != "", questions[f"{metric} note"])
            at = list(questions.columns).index(f"{metric} ours (%)") + 1
            for offset, (column, heading) in enumerate((("bd_rate_ci_low", "CI low (%)"), ("bd_rate_ci_high", "CI high (%)"),
                                                        ("resolved", "resolved"), ("verdict", "verdict"))):
                questions.insert(at + offset, f"{metric} {heading}", questions["question"].map(by_question[column]))
        questions.insert(3, "n_seeds", questions["question"].map(parts[0].set_index("question")["n_seeds"]))
        seed_answers = pd.concat(parts, ignore_index=True)
        doc.tables["ablation_seeds.csv"] = seed_answers
    doc.tables["ablation_questions.csv"] = questions
    learning_steps = None
    if learning is not None and len(learning):
        learning_steps, losses = learning_tables(config, learning)
        doc.tables["ablation_learning.csv"] = learning_steps
        doc.tables["ablation_learning_loss.csv"] = losses
        doc.add_figure("learning_curves", learning_figure(
            learning_steps, losses, f"{config.name}: learning curves on {config.training.holdout} held-out images",
            style_map=look), dpi=DPI)
    timing = []
    ok = rows[rows["status"] == "ok"] if len(rows) else rows
    if len(ok) and ("setup_s" not in ok or ok["setup_s"].isna().all()):
        # rows from before rdbench warmed codecs up: each worker's first item of a cell paid its start-up
        timing.append("enc/dec times of these rows were measured before rdbench warmed each codec up in each "
                      "worker (no setup_s): the first item of each cell in each worker includes model loading, "
                      "so enc s/image is biased upwards by about (start-up s x workers) / items per cell.")
    doc.text = _page(config, sections, questions, facts, per_cell, command, version_notes, timing,
                     seed_answers=seed_answers, seeds=seeds, learning_steps=learning_steps,
                     dominated=dominated_lines(table, [c.name for c in config.cells],
                                               [QUESTION_METRIC.get(m, m) for m in HEADLINE_METRICS], config.lambdas))
    return doc


def _seed_section(seed_answers, seeds) -> list[str]:
    """The questions' answers over seeds: mean, interval, verdict, per seed; and the method."""
    import pandas as pd

    from rdbench.analysis.seeds import interval_method

    shown = pd.DataFrame({
        "question": seed_answers["question"], "metric": seed_answers["metric"],
        "BD-rate (%)": seed_answers["bd_rate_mean"],
        "95% interval (%)": [f"[{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else "" for lo, hi in
                             zip(seed_answers["bd_rate_ci_low"], seed_answers["bd_rate_ci_high"])],
        "seeds": seed_answers["n_seeds"], "verdict": seed_answers["verdict"],
        "per seed (%)": seed_answers["per_seed"],
    })
    # the method is the procedure, said whether or not any question got a number (it once read
    # "Method: ." when every question had failed)
    n_images = int(seed_answers["n_images"].max()) if len(seed_answers) else 0
    method = interval_method(len(seeds), n_images)
    return ["## What is resolved, and what is noise", "",
            f"Each question's BD-rate is the mean over the {len(seeds)} training seeds ({', '.join(map(str, seeds))}) of "
            "each seed's BD-rate (test seed s against anchor seed s, all images, pchip, operational points). The 95% "
            "interval accounts for seed-to-seed and image-to-image variation; a question is resolved when it excludes "
            f"0. Method: {method}. These are the same numbers, intervals and verdicts as in the per-metric tables, the "
            "charts and the paper's questions below (one computation per question). ablation_seeds.csv has every number.",
            "", markdown_table(shown, "{:.2f}"), ""]


def _page(config: AblationConfig, sections, questions, facts, per_cell, command: str, notes=(), timing=(),
          seed_answers=None, seeds=(), learning_steps=None, dominated=()) -> str:
    """ablation.md: the scale of the run first, then each metric's table and plots, the questions, the columns."""
    t = config.training
    steps = sorted({v["steps"] for v in facts.values()})
    replicated = seed_answers is not None
    lines = [
        f"# Ablation {md_code(config.name)}",
        "",
        f"Command: {md_code(command)}",
        "",
        "## Scale (read this first)",
        "",
        f"- Cells: {len(config.cells)}; N = {sorted({c.N for c in config.cells})}, M = {sorted({c.M for c in config.cells})}.",
        f"- Rate points: lambdas {', '.join(f'{x:g}' for x in config.lambdas)} "
        + ("(one variable-rate model per cell: gain units, one lambda drawn per step)." if config.rate_mode == "gain-units"
           else "(one model per lambda)."),
        f"- Training: {', '.join(str(s) for s in steps)} steps of batch {t.batch}, {t.crop}x{t.crop} crops, Adam lr {t.lr:g}, "
        f"metric {t.metric}, images downscaled by {t.downscale}, from {md_code(t.data)}"
        + (f", {t.holdout} of them held out" if t.holdout else "") + f"; {t.precision}"
        + (" autocast (entropy models in float32)" if t.precision == "bf16" else "")
        + (", channels_last" if t.channels_last else "") + ".",
        *([f"- Seeds: each cell trained {len(seeds)} times (seeds {', '.join(map(str, seeds))}); curves and BD-rates "
           "versus BPG are on the mean over seeds, questions and BD-rates between cells carry a 95% interval."]
          if replicated else []),
        f"- Evaluation: {md_escape(config.dataset)}, {int(per_cell['images'].max()) if len(per_cell) else 0} images, real bitstreams "
        "(bpp counts every byte). Times are per image on this machine, one worker thread each.",
        *(f"- Left out: {md_escape(note)}" for note in notes),
        *(f"- Timing: {note}" for note in timing),
        *(f"- Dominated rate points: {md_escape(note)}" for note in dominated),
        "",
    ]
    for metric, used, result, bpg_source in sections:
        lines += [f"## {metric}", "",
                  f"Every BD-rate, interval and verdict of this section, its charts and the questions is on `{used}` "
                  f"({convention(used)})" + (f", the published curves' only convention of {metric}" if used != metric
                                             else "") + ".", "",
                  markdown_table(result, "{:.2f}"), "",
                  f"![RD curves](rd_{metric}.png)", "", f"![RD curves, cells only](rd_{metric}_cells.png)", "", f"![BD-rate vs {config.reference}](bd_{metric}.png)", ""]
        if replicated:
            lines += [f"![Gain against decoder cost](tradeoff_{metric}.png)", ""]
    if replicated:
        lines += _seed_section(seed_answers, seeds)
    if learning_steps is not None:
        last = learning_steps[learning_steps["step"] == learning_steps["step"].max()]
        lines += ["## Learning curves", "",
                  f"Kept checkpoints ({', '.join(str(s) for s in sorted(learning_steps['step'].unique()))} steps) evaluated on "
                  f"the {t.holdout} held-out training-folder images (estimated bpp from the model's likelihoods, no "
                  "bitstream; PSNR-RGB): each question's BD-rate per step (mean over seeds; the band spans the seeds) "
                  "and each cell's held-out RD loss. An answer whose line still moves at the last step is not settled "
                  "by more seeds, only by longer training. ablation_learning.csv has the numbers.", "",
                  "![Learning curves](learning_curves.png)", ""]
    if len(questions):
        shown = questions[[c for c in questions.columns if not c.endswith(" note")]].dropna(axis=1, how="all")
        lines += ["## The paper's questions", "",
                  "BD-rate (pchip) of the test cell against the anchor cell; negative: the test needs fewer bits. "
                  "'paper' is the same pair computed from the points published in the papers (PSNR only), 'CompressAI zoo' "
                  "from CompressAI's MSE-trained models of the same pair (real bitstreams), where shipped: "
                  "full-scale training, so a direction and size to compare with, not a target for a small run. "
                  "Conventions: the `psnr_rgb` columns are on the mean of per-image PSNR-RGB; every `ms_ssim_db` "
                  "column (ours, its interval and verdict, paper, zoo) is on `ms_ssim_db_of_mean`, the dB of the "
                  "mean MS-SSIM (the published curves' only convention), as in the rest of this page. The CSV "
                  "(ablation_questions.csv) also says why a number is missing.", "",
                  markdown_table(shown, "{:.2f}"), ""]
    lines += [
        "Columns: BD-rate (pchip, mean curves over images; negative = fewer bits at equal quality) versus the "
        f"reference cell {md_code(config.reference)} and versus BPG ({sections[0][3] if sections else ''}); "
        "real/estimated bpp: how much larger the real bitstream is than the model's own -log2 likelihood estimate; "
        "params: trainable parameters; enc/dec: mean seconds per image; dominated points left out: rate points "
        "that cost more bits than a cheaper point of the same cell for no better quality (off the operational RD "
        "curve; BD uses the rest, and the RD plots show all); conventions: which MS-SSIM (dB) each BD-rate is on "
        "(versus BPG, the dB of the mean MS-SSIM, BPG's only convention; a BD-rate versus BPG needs the 24 Kodak "
        "images BPG's curve averages, else the note says why there is none).",
        "",
    ]
    return "\n".join(lines)

