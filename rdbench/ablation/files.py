"""The edges of the ablation summary: what it reads (results.csv, the checkpoints, published
curves) and where it writes (OUT, through analysis/report). summary.py computes in between."""

from __future__ import annotations

from pathlib import Path

from rdbench.ablation.config import AblationConfig
from rdbench.ablation.layout import cell_spec, checkpoint_paths
from rdbench.ablation.summary import published_needed, summarize


def cell_rows(config: AblationConfig, out: Path):
    """The rows of OUT/results.csv that evaluate a cell of the grid, `codec` renamed to the cell's name."""
    from rdbench.bench.store import read_results

    rows = read_results(Path(out) / "results.csv")
    names = {cell_spec(config, out, c, d): c.name for c in config.cells for d in ("cpu", "cuda")}
    rows = rows[rows["codec"].isin(names)].copy()
    rows["codec"] = rows["codec"].map(names)
    return rows


def cell_facts(config: AblationConfig, out: Path) -> dict[str, dict]:
    """Per cell, from its checkpoints: trainable parameters (None without a checkpoint) and the
    fewest training steps among its checkpoints (0 without one)."""
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


def published_curves(config: AblationConfig) -> dict:
    """The published curves the summary compares with, by name."""
    from rdbench.analysis.published import published

    return {name: published(name) for name in published_needed(config)}


def write_summary(config: AblationConfig, out: Path, command: str = "") -> Path:
    """Summarize OUT/results.csv into OUT (ablation.md, ablation_*.csv, plots); returns ablation.md's path."""
    from rdbench.analysis.report import write_document

    out = Path(out)
    command = command or f"rdbench ablate {config.source} --out {out}"
    document = summarize(config, cell_rows(config, out), cell_facts(config, out), published_curves(config), command)
    return write_document(document, out)
