"""`rdbench ablate`: train every cell of a grid once, evaluate each once, tabulate and plot.

Layout of OUT:
    config.toml                 the configuration as given
    cells/<cell>/model.pt       the cell's checkpoint (per-lambda mode: lambda-<value>.pt each)
    cells/<cell>/train.log      its training log
    results.csv                 evaluation rows (the usual result store)
    ablation.md, ablation_*.csv, rd_*.png, bd_*.png   the summary (ablation_questions.csv: the
                                paper's questions as pairs of cells, next to the published pairs)

Rerunning resumes: training continues from each checkpoint's last saved step, and evaluation
skips every (image, codec, quality) already in results.csv.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from rdbench.ablation_config import AblationConfig, Cell



@dataclass(frozen=True)
class TrainJob:
    cell: Cell
    lambdas: tuple[float, ...]
    path: str
    threads: int
    device: str


def cell_dir(out: Path, cell: Cell) -> Path:
    return Path(out) / "cells" / cell.name


def checkpoint_paths(config: AblationConfig, out: Path, cell: Cell) -> list[tuple[tuple[float, ...], Path]]:
    d = cell_dir(out, cell)
    if config.rate_mode == "gain-units":
        return [(config.lambdas, d / "model.pt")]
    return [((lam,), d / f"lambda-{lam:g}.pt") for lam in config.lambdas]


def train_jobs(config: AblationConfig, out: Path, jobs: int, device: str) -> list[TrainJob]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(1, jobs))
    return [
        TrainJob(cell, lambdas, str(path), threads, device)
        for cell in config.cells
        for lambdas, path in checkpoint_paths(config, out, cell)
    ]


def trained_steps(path: Path) -> int:
    if not path.exists():
        return 0
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["training"]["steps"])
    except Exception:
        return 0


def _train_one(job: TrainJob, config: AblationConfig) -> str:
    import torch

    from rdbench.datasets import load_manifest
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainOptions, train

    torch.set_num_threads(job.threads)
    cell = job.cell
    t = config.training
    model_config = ModelConfig(cell.variant, cell.N, cell.M, cell.k, cell.K, job.lambdas)
    path = Path(job.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = TrainOptions(
        config=model_config, data=t.data, out=str(path), steps=t.steps, batch=t.batch, crop=t.crop,
        lr=t.lr, metric=t.metric, downscale=t.downscale, seed=t.seed, device=job.device,
        checkpoint_every=t.checkpoint_every, log_every=50, resume=True,
        exclude=tuple(image.file for image in load_manifest("kodak").images),  # never train on Kodak
    )
    with open(path.parent / "train.log", "a") as logfile:
        def log(line: str) -> None:
            logfile.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {path.name}: {line}\n")
            logfile.flush()

        started = time.perf_counter()
        train(opts, log=log)
        log(f"done in {time.perf_counter() - started:.1f} s")
    return str(path)


def train_all(config: AblationConfig, out: Path, jobs: int = 1, device: str = "cpu", log=None) -> list[str]:
    """Train (or resume) every cell; cells already at the configured steps are skipped."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    pending = []
    for job in train_jobs(config, out, jobs, device):
        steps = trained_steps(Path(job.path))
        if steps >= config.training.steps:
            continue
        pending.append(job)
        log(f"train {job.cell.name} ({Path(job.path).name}): from step {steps} to {config.training.steps}")
    if not pending:
        return []
    done = []
    if jobs <= 1:
        for job in pending:
            done.append(_train_one(job, config))
            log(f"trained {job.path}")
        return done
    import multiprocessing

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_one, job, config): job for job in pending}
        failures = []
        for future in as_completed(futures):
            job = futures[future]
            try:
                done.append(future.result())
                log(f"trained {job.path}")
            except Exception as exc:  # one cell failing does not stop the others
                failures.append(f"{job.cell.name}: {exc}")
                log(f"FAILED {job.cell.name}: {exc}")
    if failures:
        raise RuntimeError("training failed for " + "; ".join(failures))
    return done


# -- evaluation --------------------------------------------------------------------------------
def cell_spec(config: AblationConfig, out: Path, cell: Cell, device: str = "cpu") -> str:
    d = cell_dir(out, cell)
    spec = f"learned:checkpoint={d / 'model.pt'}" if config.rate_mode == "gain-units" else f"learned:checkpoints={d}"
    return spec + (",device=cuda" if device == "cuda" else "")


def evaluate(config: AblationConfig, out: Path, workers: int | None = None, device: str = "cpu",
             max_images: int | None = None, progress: bool = True):
    """Measure every cell on the evaluation dataset; items already in OUT/results.csv are skipped."""
    from rdbench.datasets import resolve_dataset
    from rdbench.runner import load_codecs, run

    dataset = resolve_dataset(config.dataset)
    if max_images:
        dataset.images = dataset.images[:max_images]
    specs = [cell_spec(config, out, cell, device) for cell in config.cells]
    missing = [c.name for c in config.cells if not cell_dir(out, c).exists()]
    if missing:
        raise FileNotFoundError(f"{out}: cells not trained yet: {', '.join(missing)}")
    return run(dataset, load_codecs(specs), str(out), workers=workers, progress=progress, argv=sys.argv)


def _cell_facts(config: AblationConfig, out: Path) -> dict[str, dict]:
    from rdbench.learned.checkpoint import load
    from rdbench.learned.models import parameter_count

    facts = {}
    for cell in config.cells:
        paths = [p for _, p in checkpoint_paths(config, out, cell)]
        loaded = [load(p) for p in paths if p.exists()]
        facts[cell.name] = {
            "params": parameter_count(loaded[0].model) if loaded else None,
            "steps": min((m.training.get("steps", 0) for m in loaded), default=0),
        }
    return facts


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


def _questions(config: AblationConfig) -> list[tuple]:
    """PAPER_QUESTIONS whose cells are in the grid, plus context size and mixture questions."""
    names = {c.name for c in config.cells}
    found = [q for q in PAPER_QUESTIONS if q[1] in names and q[2] in names]
    for cell in config.cells:
        if cell.variant != "joint":
            continue
        single = next((c.name for c in config.cells
                       if c.variant == "joint" and c.k == cell.k and c.K == 1 and (c.N, c.M) == (cell.N, cell.M)), None)
        if cell.K > 1 and single:
            found.append((f"{cell.K}-Gaussian mixture vs one Gaussian (k = {cell.k})", cell.name, single, None, None))
        if cell.K == 1 and cell.name != config.reference and config.reference in names:
            found.append((f"context size k = {cell.k} vs the reference", cell.name, config.reference, None, None))
    return found


def operational(curve, metric: str):
    """The points of one curve on its operational RD curve: sorted by rate, each point kept only
    if its quality beats every cheaper point's. A point that costs more bits for no better quality
    (a saturated model's top rate) is dominated, and BD's interpolation needs quality to rise."""
    curve = curve.sort_values("bpp")
    best = curve[metric].cummax().shift(fill_value=float("-inf"))
    return curve[curve[metric] > best]


def _points(curve, metric: str):
    """The points of a curve that BD can use: complete (every image measured), with a value."""
    return curve[curve["complete"]].dropna(subset=[metric])


def operational_table(table, metric: str):
    """`operational` applied to every codec of a curve table; also {codec: points left out}."""
    import pandas as pd

    parts, dropped = [], {}
    for codec, curve in table.groupby("codec", sort=False):
        points = _points(curve, metric)
        if len(points) == 0:  # no value of the metric: kept as it is, so that BD says why
            parts.append(curve)
            continue
        kept = operational(points, metric)
        parts.append(kept)
        dropped[codec] = len(points) - len(kept)
    return (pd.concat(parts, ignore_index=True) if parts else table.iloc[:0]), dropped


def _bd_between(test, anchor, metric: str) -> tuple[float, str]:
    from rdbench.bd import BDError, bd

    test, anchor = operational(_points(test, metric), metric), operational(_points(anchor, metric), metric)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = bd(anchor["bpp"], anchor[metric], test["bpp"], test[metric], "rate", "pchip")
    except BDError as exc:
        return float("nan"), str(exc)
    return result.value, f"overlap {result.overlap:.2f}"


def paper_questions(config: AblationConfig, table):
    """BD-rate (pchip) of test vs anchor cell for each question, next to the published pair's."""
    import pandas as pd

    from rdbench.curves import published

    rows = []
    for question, test, anchor, pub_test, pub_anchor in _questions(config):
        row = {"question": question, "test": test, "anchor": anchor}
        for metric in ("psnr_rgb", "ms_ssim_db"):
            row[f"{metric} ours (%)"], row[f"{metric} note"] = _bd_between(
                table[table["codec"] == test], table[table["codec"] == anchor], metric)
            for source, stem in PUBLISHED_SOURCES.items():
                value = float("nan")
                if pub_test:
                    value, _ = _bd_between(published(stem.format(pub_test)), published(stem.format(pub_anchor)), metric)
                row[f"{metric} {source} (%)"] = value
        row["published pair"] = f"{pub_test} vs {pub_anchor}" if pub_test else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _notes(bd, label: str, index):
    """A bd_table's errors as "label: error" per cell ("" where it has a number)."""
    return (label + ": " + bd["error"]).where(bd["error"] != "", "").reindex(index).fillna("")


def summarize(config: AblationConfig, out: Path, command: str = "") -> Path:
    """Tables (per metric), RD curves, BD bar chart and ablation.md from OUT/results.csv."""
    import pandas as pd

    from rdbench.comparison import bd_table
    from rdbench.curves import curves
    from rdbench.plots import bd_bar_figure, rd_figure
    from rdbench.report import markdown_table, with_references
    from rdbench.store import read_results

    out = Path(out)
    rows = read_results(out / "results.csv")
    names = {cell_spec(config, out, c, d): c.name for c in config.cells for d in ("cpu", "cuda")}
    rows = rows[rows["codec"].isin(names)].copy()
    rows["codec"] = rows["codec"].map(names)
    ok = rows[rows["status"] == "ok"]
    table = curves(rows)
    facts = _cell_facts(config, out)
    per_cell = ok.groupby("codec").agg(
        bpp_gap_pct=("bpp", lambda s: 100 * (s.mean() / ok.loc[s.index, "bpp_estimated"].mean() - 1)),
        enc_s=("enc_s", "mean"), dec_s=("dec_s", "mean"), images=("image", "nunique"),
    )
    sections, metrics = [], ("psnr_rgb", "ms_ssim_db")
    for metric in metrics:
        kept, dropped = operational_table(table, metric)
        vs_ref = bd_table(kept, config.reference, metric).set_index("codec")
        vs_bpg = bd_table(with_references(kept, ["bpg"]), "bpg", metric).set_index("codec")
        with_bpg = with_references(table, ["bpg"])
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
        result = result.reset_index()
        result.to_csv(out / f"ablation_{metric}.csv", index=False)
        sections.append((metric, result, bpg_source))
        rd_figure(with_bpg, metric, f"{config.name}: {metric}").savefig(out / f"rd_{metric}.png", dpi=120)
        rd_figure(table, metric, f"{config.name}: {metric}, cells only").savefig(out / f"rd_{metric}_cells.png", dpi=120)
        bars = vs_ref.reset_index()
        bars = bars[bars["source"] == "measured"]
        bd_bar_figure(bars, f"{config.name}: BD-rate vs {config.reference}, {metric}").savefig(out / f"bd_{metric}.png", dpi=120)

    questions = paper_questions(config, table)
    questions.to_csv(out / "ablation_questions.csv", index=False)

    t = config.training
    steps = sorted({v["steps"] for v in facts.values()})
    lines = [
        f"# Ablation `{config.name}`",
        "",
        f"Command: `{command or 'rdbench ablate ' + config.source + ' --out ' + str(out)}`",
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
                  "The CSV (ablation_questions.csv) also says why a number is missing.", "",
                  markdown_table(shown, "{:.2f}"), ""]
    lines += [
        "Columns: BD-rate (pchip, mean curves over images; negative = fewer bits at equal quality) versus the "
        f"reference cell `{config.reference}` and versus BPG ({sections[0][2] if sections else ''}); "
        "real/estimated bpp: how much larger the real bitstream is than the model's own -log2 likelihood estimate; "
        "params: trainable parameters; enc/dec: mean seconds per image; dominated points left out: rate points "
        "that cost more bits than a cheaper point of the same cell for no better quality (off the operational RD "
        "curve; BD uses the rest, and the RD plots show all).",
        "",
    ]
    path = out / "ablation.md"
    path.write_text("\n".join(lines))
    return path
