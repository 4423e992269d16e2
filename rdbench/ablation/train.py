"""Training every cell of an ablation grid (resumable, cells in parallel processes)."""

from __future__ import annotations

import sys
import time
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

from rdbench.ablation.config import AblationConfig, Cell
from rdbench.ablation.layout import checkpoint_paths, runs, trained_steps, training_exclude  # noqa: F401 (re-exported)
from rdbench.conventions import usable_cores


@dataclass(frozen=True)
class TrainJob:
    cell: Cell
    lambdas: tuple[float, ...]
    path: str
    threads: int
    device: str
    seed: int = 0
    out: str = ""  # the grid's OUT (a shared-latents cell reads the base and its latents there)


def train_jobs(config: AblationConfig, out: Path, jobs: int, device: str) -> list[TrainJob]:
    threads = max(1, usable_cores() // max(1, jobs))
    return [
        TrainJob(cell, lambdas, str(path), threads, device, seed, str(out))
        for cell, seed in runs(config)
        for lambdas, path in checkpoint_paths(config, out, cell, seed)
    ]


def _train_one(job: TrainJob, config: AblationConfig) -> str:
    import torch

    from rdbench.data.images import rgb_pixels
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainOptions, train

    if config.design is not None:  # shared latents: the entropy model alone, on the base's latents
        from rdbench.ablation.shared import train_cell

        return train_cell(job, config, Path(job.out))
    torch.set_num_threads(job.threads)
    cell = job.cell
    t = config.training
    model_config = ModelConfig(cell.variant, cell.N, cell.M, cell.k, cell.K, job.lambdas)
    path = Path(job.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = TrainOptions(
        config=model_config, data=t.data, out=str(path), steps=t.steps, batch=t.batch, crop=t.crop,
        lr=t.lr, metric=t.metric, downscale=t.downscale, seed=job.seed, device=job.device,
        checkpoint_every=t.checkpoint_every, log_every=50, resume=True,
        exclude=training_exclude(config),  # never train on Kodak, nor on the held-out images
        precision=t.precision, channels_last=t.channels_last, keep_at=t.kept_steps, loader_workers=t.loader_workers,
    )
    with open(path.parent / "train.log", "a") as logfile:
        def log(line: str) -> None:
            logfile.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {path.name}: {line}\n")
            logfile.flush()

        started = time.perf_counter()
        train(opts, log=log, load_image=rgb_pixels)
        log(f"done in {time.perf_counter() - started:.1f} s")
    return str(path)


def _train_cell(job: TrainJob, config: AblationConfig) -> tuple[str, str | None]:
    """(checkpoint path, None) or (path, why it failed): a training cell as an Executor job, which
    never raises (the Executor contract). Rerun after its worker was lost, it resumes from the last
    checkpoint its predecessor wrote (every `checkpoint_every` steps, on shared storage)."""
    try:
        return _train_one(job, config), None
    except Exception as exc:
        return job.path, f"{type(exc).__name__}: {exc}"


def _prepare_design(config: AblationConfig, out: Path, device: str, log, executor) -> None:
    """Shared latents: the base (trained or resumed if rdbench trains it) and its cached latents,
    before any cell; as one Executor job when there is one (it trains where the cells train)."""
    from rdbench.ablation.shared import prepare

    log(f"shared latents: base model and its latents of {config.design.crops} training crops")
    if executor is None:
        prepare(config, out, device, usable_cores(), log)
        return
    from functools import partial

    job = partial(_prepare_job, config=config, out=out, device=device)
    for _, error in executor.run(job, [0], on_crash=lambda _: "its worker died every time it was run"):
        if error:
            raise RuntimeError(f"shared latents: the base or its latents failed: {error}")


def _prepare_job(_, config: AblationConfig, out: Path, device: str) -> str | None:
    """shared.prepare as an Executor job, which never raises: None, or why it failed."""
    from rdbench.ablation.shared import prepare

    try:
        prepare(config, out, device, usable_cores())
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _cell_crashed(job: TrainJob) -> tuple[str, str | None]:
    return job.path, "its worker died every time it was run (out of memory? a node failing?)"


def train_all(config: AblationConfig, out: Path, jobs: int = 1, device: str = "cpu", log=None,
              executor=None) -> list[str]:
    """Train (or resume) every cell; cells already at the configured steps are skipped.

    `executor` (a bench Executor, e.g. a DaskExecutor whose tasks ask for GPU=1) trains each cell
    as one task wherever it runs; the checkpoints must be on storage its workers share."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if config.design is not None:
        _prepare_design(config, Path(out), device, log, executor)
    pending = []
    for job in train_jobs(config, out, jobs, device):
        steps = trained_steps(Path(job.path))
        if steps >= config.training.steps:
            continue
        pending.append(job)
        seed = f", seed {job.seed}" if config.training.replicated else ""
        log(f"train {job.cell.name}{seed} ({Path(job.path).name}): from step {steps} to {config.training.steps}")
    if not pending:
        return []
    done = []
    if executor is not None:
        from functools import partial

        failures = []
        for job, (path, error) in executor.run(partial(_train_cell, config=config), pending, on_crash=_cell_crashed):
            if error:
                failures.append(f"{job.cell.name}: {error}")
                log(f"FAILED {job.cell.name}: {error}")
            else:
                done.append(path)
                log(f"trained {path}")
        if failures:
            raise RuntimeError("training failed for " + "; ".join(failures))
        return done
    if jobs <= 1:
        for job in pending:
            done.append(_train_one(job, config))
            log(f"trained {job.path}")
        return done
    import multiprocessing

    from rdbench.bench.executor import worker_pool

    # spawn: a clean interpreter per trainer (torch threads are set per job); workers die with this process
    with worker_pool(jobs, multiprocessing.get_context("spawn"), single_thread=False) as pool:
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

