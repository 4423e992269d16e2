"""Evaluating every trained cell with real bitstreams into OUT/results.csv (the usual result store)."""

from __future__ import annotations

import sys
from pathlib import Path

from rdbench.ablation.config import AblationConfig
from rdbench.ablation.layout import cell_spec, runs, seed_dir


def evaluate(config: AblationConfig, out: Path, workers: int | None = None, device: str = "cpu",
             max_images: int | None = None, progress: bool = True, executor=None):
    """Measure every cell on the evaluation dataset; items already in OUT/results.csv are skipped.

    `executor`: where the rows are computed (a bench.executor.Executor; default: the runner's local pool)."""
    from rdbench.data.datasets import resolve_dataset
    from rdbench.bench.runner import load_codecs, run

    dataset = resolve_dataset(config.dataset)
    if max_images:
        dataset.images = dataset.images[:max_images]
    specs = [cell_spec(config, out, cell, device, seed) for cell, seed in runs(config)]
    missing = [str(seed_dir(config, out, c, s).relative_to(out)) for c, s in runs(config) if not seed_dir(config, out, c, s).exists()]
    if missing:
        raise FileNotFoundError(f"{out}: cells not trained yet: {', '.join(missing)}")
    return run(dataset, load_codecs(specs), str(out), workers=workers, progress=progress, argv=sys.argv,
               executor=executor)

