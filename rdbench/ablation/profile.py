"""After training, before the summary: each run's learning curve and each cell's complexity.

- Learning curves: every kept checkpoint of a run (model-step<N>.pt, [training] keep_fractions)
  and its final model, evaluated cheaply on the held-out images ([training] holdout: images of
  the training folder that training excludes by name), downscaled as training sees them: the
  model's estimated bpp (-log2 likelihood of the rounded latents, no bitstream), PSNR and RD
  loss per rate, into <run>/learning.csv. Seconds per run.
- Complexity: each cell's first seed's model (complexity.profile_checkpoint): encoder and decoder
  kMAC/px at the evaluation images' size, parameters, and the decode time split into transforms,
  entropy parameters and entropy coding (mean over PROFILE_IMAGES evaluation images at the middle
  rate, one thread as the evaluation workers), into cells/<cell>/complexity.json.

Both are kept in OUT (small text files), so a shipped run summarizes without its checkpoints, and
both are skipped when their file is already there and up to date.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from rdbench.ablation.config import AblationConfig
from rdbench.ablation.layout import COMPLEXITY_FILE, LEARNING_FILE, cell_dir, checkpoint_paths, runs, seed_dir
from rdbench.conventions import atomic_path, write_atomic

PROFILE_IMAGES = 3
LEARNING_COLUMNS = ("step", "checkpoint", "rate", "lambda", "bpp", "psnr", "loss")


def heldout_images(config: AblationConfig) -> list:
    """The held-out images, as training would see them (downscaled by [training] downscale)."""
    from rdbench.data.images import rgb_pixels
    from rdbench.learned.train import downscaled, split_holdout

    t = config.training
    return [downscaled(rgb_pixels(path), t.downscale) for path in split_holdout(t.data, t.holdout)]


def _steps(config: AblationConfig) -> list[int]:
    return [*config.training.kept_steps, config.training.steps]


def learning_curves(config: AblationConfig, out: Path, log=None) -> int:
    """Write learning.csv for every run that lacks one (or lacks a step); returns how many were written."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if not config.training.holdout:
        return 0
    from rdbench.learned.checkpoint import load
    from rdbench.learned.train import heldout_rd, kept_path

    images = None
    written = 0
    steps = _steps(config)
    for cell, seed in runs(config):
        target = seed_dir(config, out, cell, seed) / LEARNING_FILE
        if target.is_file() and sorted({int(r["step"]) for r in csv.DictReader(target.open())}) == steps:
            continue
        rows = []
        for _, final in checkpoint_paths(config, out, cell, seed):
            for step in steps:
                path = final if step == config.training.steps else kept_path(final, step)
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: the checkpoint of step {step} is missing (retrain this run)")
                if images is None:
                    images = heldout_images(config)
                for point in heldout_rd(load(path).model, images, config.training.metric):
                    rows.append({"step": step, "checkpoint": path.name, "rate": point["rate"],
                                 "lambda": point["lambda"], "bpp": point["bpp"], "psnr": point["psnr"],
                                 "loss": point["loss"]})
        with atomic_path(target) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, LEARNING_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        written += 1
        log(f"learning curve {target.relative_to(out)}: {len(steps)} steps x {len(rows) // len(steps)} rates "
            f"on {len(images)} held-out images")
    return written


def complexity(config: AblationConfig, out: Path, log=None) -> int:
    """Write complexity.json for every cell that lacks one; returns how many were written."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    from rdbench.data.datasets import resolve_dataset
    from rdbench.data.images import rgb_pixels
    from rdbench.learned.complexity import profile_checkpoint

    images = None
    written = 0
    for cell in config.cells:
        target = cell_dir(out, cell) / COMPLEXITY_FILE
        if target.is_file():
            continue
        points = checkpoint_paths(config, out, cell)
        _, path = points[len(points) // 2]  # per-lambda mode: the middle lambda's model
        if images is None:
            dataset = resolve_dataset(config.dataset)
            images = [rgb_pixels(image.path) for image in dataset.images[:PROFILE_IMAGES]]
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # timed as the evaluation's workers run: one thread each
        try:
            profile = profile_checkpoint(path, images)
        finally:
            torch.set_num_threads(threads)
        profile["seed"] = config.training.all_seeds[0]
        profile["checkpoint"] = str(path.relative_to(out))
        write_atomic(target, json.dumps(profile, indent=2, sort_keys=True) + "\n")
        written += 1
        log(f"complexity {target.relative_to(out)}: dec {profile['dec_kmac_px']:.1f} kMAC/px, "
            f"decode {profile['decode_total_s']:.3f} s/image")
    return written


def profile_all(config: AblationConfig, out: Path, log=None) -> None:
    learning_curves(config, out, log)
    complexity(config, out, log)
