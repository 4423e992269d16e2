"""Where each cell of an ablation lives under OUT, and the codec spec that evaluates it."""

from __future__ import annotations

from pathlib import Path

from rdbench.ablation.config import AblationConfig, Cell


def cell_dir(out: Path, cell: Cell) -> Path:
    return Path(out) / "cells" / cell.name


def checkpoint_paths(config: AblationConfig, out: Path, cell: Cell) -> list[tuple[tuple[float, ...], Path]]:
    d = cell_dir(out, cell)
    if config.rate_mode == "gain-units":
        return [(config.lambdas, d / "model.pt")]
    return [((lam,), d / f"lambda-{lam:g}.pt") for lam in config.lambdas]



def cell_spec(config: AblationConfig, out: Path, cell: Cell, device: str = "cpu") -> str:
    d = cell_dir(out, cell)
    spec = f"learned:checkpoint={d / 'model.pt'}" if config.rate_mode == "gain-units" else f"learned:checkpoints={d}"
    return spec + (",device=cuda" if device == "cuda" else "")

