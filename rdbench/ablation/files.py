"""The edges of the ablation summary: what it reads (results.csv, the checkpoints, published
curves) and where it writes (OUT, through analysis/report). summary.py computes in between."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from rdbench.ablation.config import AblationConfig
from rdbench.ablation.layout import (COMPLEXITY_FILE, LEARNING_FILE, cell_dir, cell_spec, checkpoint_paths, runs,
                                     seed_dir)
from rdbench.ablation.shared import with_design_header
from rdbench.ablation.summary import published_needed, summarize


def cell_rows(config: AblationConfig, out: Path):
    """The rows of OUT/results.csv that evaluate a cell of the grid, `codec` renamed to the cell's
    name, and a `seed` column (the training seed of the row's model).

    A row belongs to a cell when its spec's checkpoint path ends in that cell's place under OUT
    (cells/<cell>/model.pt, or cells/<cell> in per-lambda mode), whatever OUT was called when
    it was measured: a result folder that was moved or copied still summarizes."""
    from rdbench.bench.store import read_results
    from rdbench.codecs.base import parse_spec

    rows = read_results(Path(out) / "results.csv")
    places = {}
    for cell, seed in runs(config):
        spec = parse_spec(cell_spec(config, out, cell, seed=seed))
        (key, path), = ((k, v) for k, v in spec.options.items() if k in ("checkpoint", "checkpoints"))
        places[(spec.name, key, Path(path).relative_to(Path(out)).parts)] = (cell.name, seed)

    def cell_of(codec: str):
        spec = parse_spec(codec)
        for key in ("checkpoint", "checkpoints"):
            if key in spec.options:
                parts = Path(spec.options[key]).parts
                for (name, k, tail), cell in places.items():
                    if (name, k) == (spec.name, key) and parts[-len(tail):] == tail:
                        return cell
        return None

    runs_of = {codec: cell_of(codec) for codec in rows["codec"].unique()}
    rows = rows[rows["codec"].map(runs_of).notna()].copy()
    rows["seed"] = rows["codec"].map(lambda codec: runs_of[codec][1]).astype(int)
    rows["codec"] = rows["codec"].map(lambda codec: runs_of[codec][0])
    return rows


def cell_facts(config: AblationConfig, out: Path) -> dict[str, dict]:
    """Per cell: trainable parameters and the fewest training steps among its checkpoints.

    Read from the checkpoints when they are there; else (a shipped run keeps its rows and logs,
    not its checkpoints) the parameters of a freshly built model of the same configuration (the
    count does not depend on the weights) and the last step each checkpoint's train.log records."""
    from rdbench.learned.checkpoint import load
    from rdbench.learned.models import LatentModel, parameter_count

    facts = {}
    for cell in config.cells:
        points = checkpoint_paths(config, out, cell)
        if all(path.exists() for _, path in points):
            loaded = [load(path) for _, path in points]
            params = parameter_count(loaded[0].model)
            steps = min(m.training.get("steps", 0) for m in loaded)
        else:
            rates = points[0][0]
            params = parameter_count(LatentModel(replace(cell.model_config, rates=rates)))
            steps = min(_logged_steps(config, out, cell, path.name) for _, path in points)
        profile = cell_dir(out, cell) / COMPLEXITY_FILE
        facts[cell.name] = {"params": params, "steps": steps,
                            "complexity": json.loads(profile.read_text()) if profile.is_file() else None}
    return facts


def learning_rows(config: AblationConfig, out: Path):
    """Every run's learning.csv (ablation/profile.py) as one DataFrame with `cell` and `seed`; None if none."""
    import pandas as pd

    parts = []
    for cell, seed in runs(config):
        path = seed_dir(config, Path(out), cell, seed) / LEARNING_FILE
        if path.is_file():
            parts.append(pd.read_csv(path).assign(cell=cell.name, seed=seed))
    return pd.concat(parts, ignore_index=True) if parts else None


def _logged_steps(config: AblationConfig, out: Path, cell, checkpoint: str) -> int:
    """The last training step train.log records for one checkpoint file (0 when none)."""
    log = seed_dir(config, Path(out), cell) / "train.log"
    if not log.is_file():
        return 0
    pattern = re.compile(rf" {re.escape(checkpoint)}: step (\d+)/\d+")
    steps = [int(m.group(1)) for line in log.read_text().splitlines() if (m := pattern.search(line))]
    return max(steps, default=0)


def published_curves(config: AblationConfig) -> dict:
    """The published curves the summary compares with, by name."""
    from rdbench.analysis.published import published

    return {name: published(name) for name in published_needed(config)}


def write_summary(config: AblationConfig, out: Path, command: str = "") -> Path:
    """Summarize OUT/results.csv into OUT (ablation.md, ablation_*.csv, plots); returns ablation.md's path."""
    from rdbench.analysis.report import write_document

    out = Path(out)
    command = command or f"rdbench ablate {config.source} --out {out}"
    document = summarize(config, cell_rows(config, out), cell_facts(config, out), published_curves(config), command,
                         learning=learning_rows(config, out))
    document.text = with_design_header(config, document.text)  # which design, what it answers: first lines
    return write_document(document, out)
