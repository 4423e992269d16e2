"""Where each cell (and each seed of it) of an ablation lives under OUT, and the codec spec that evaluates it.

    OUT/cells/<cell>/                 a cell trained once ([training] seed)
    OUT/cells/<cell>/seed-<s>/        one seed's run of a cell ([training] seeds = [...])
        model.pt  (or lambda-<x>.pt)  the trained model(s): what is evaluated
        model-step<N>.pt              learning-curve checkpoints ([training] keep_fractions)
        train.log  learning.csv       the training log; held-out bpp / PSNR per kept step
    OUT/cells/<cell>/complexity.json  kMAC/px, parameters, decode time split (one seed's model)
"""

from __future__ import annotations

from pathlib import Path

from rdbench.ablation.config import AblationConfig, Cell

LEARNING_FILE = "learning.csv"
COMPLEXITY_FILE = "complexity.json"


def cell_dir(out: Path, cell: Cell) -> Path:
    return Path(out) / "cells" / cell.name


def seed_dir(config: AblationConfig, out: Path, cell: Cell, seed: int | None = None) -> Path:
    """The folder of one seed's run of `cell` (the cell's own folder when the grid has one run per cell)."""
    if not config.training.replicated:
        return cell_dir(out, cell)
    return cell_dir(out, cell) / f"seed-{config.training.all_seeds[0] if seed is None else seed}"


def checkpoint_paths(config: AblationConfig, out: Path, cell: Cell, seed: int | None = None) -> list[tuple[tuple[float, ...], Path]]:
    d = seed_dir(config, out, cell, seed)
    if config.rate_mode == "gain-units":
        return [(config.lambdas, d / "model.pt")]
    return [((lam,), d / f"lambda-{lam:g}.pt") for lam in config.lambdas]


def cell_spec(config: AblationConfig, out: Path, cell: Cell, device: str = "cpu", seed: int | None = None) -> str:
    d = seed_dir(config, out, cell, seed)
    spec = f"learned:checkpoint={d / 'model.pt'}" if config.rate_mode == "gain-units" else f"learned:checkpoints={d}"
    return spec + (",device=cuda" if device == "cuda" else "")


def runs(config: AblationConfig):
    """Every (cell, seed) the grid trains and evaluates, cells first."""
    return [(cell, seed) for cell in config.cells for seed in config.training.all_seeds]


def training_exclude(config: AblationConfig) -> tuple[str, ...]:
    """File names training never sees: Kodak's, and the held-out images of the learning curves."""
    from rdbench.data.datasets import load_manifest
    from rdbench.learned.train import split_holdout

    held = split_holdout(config.training.data, config.training.holdout) if config.training.holdout else []
    return tuple(image.file for image in load_manifest("kodak").images) + tuple(p.name for p in held)


def trained_steps(path: Path) -> int:
    if not path.exists():
        return 0
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["training"]["steps"])
    except Exception:
        return 0
