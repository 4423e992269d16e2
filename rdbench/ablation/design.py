"""The ablation's design: how a grid's cells come by the latents their entropy models code.

- "full-retraining" (the default): every cell (and seed) trains its whole model from scratch,
  transforms included. It answers what the paper's full models reach, each with the transforms it
  learned; cells differ in their latents as much as in their entropy models.
- "shared-latents": one base model provides the analysis and synthesis transforms (g_a, g_s and
  the gain units of a variable-rate model); every cell keeps them frozen and trains only its
  entropy model (rdbench/ablation/shared.py says what, and why the objective is the rate alone).
  Every cell codes the same y, so the comparison between cells is paired. It answers what a
  better entropy model gains on fixed latents, not what the transforms would learn in return.

    [design]
    kind = "shared-latents"
    crops = 2048              # training crops whose latents are computed once and cached
    # base = "base.pt"        # short for [design.base] checkpoint = "base.pt"
    [design.base]             # either a checkpoint (relative to this file) ...
    checkpoint = "base.pt"    #   rdbench's, or CompressAI's; per-lambda mode: a list, one per lambda
    # ... or a base rdbench trains first into OUT/base/ (resumable), keys as a cell's plus training:
    variant = "joint"
    N = 128
    M = 128
    k = 5
    K = 1
    steps = 20000             # default: [training] steps; likewise crop, batch, lr, seed
    crop = 256

This module imports no torch, like config.py.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("full-retraining", "shared-latents")
BASE_TRAINING_KEYS = ("steps", "crop", "batch", "lr", "seed", "checkpoint_every")
BASE_MODEL_KEYS = ("variant", "N", "M", "k", "K")
DEFAULT_CROPS = 1024


class DesignError(ValueError):
    pass


@dataclass(frozen=True)
class Base:
    """The base model of a shared-latents design: checkpoint file(s), or a model rdbench trains."""

    checkpoints: tuple[str, ...] = ()  # absolute paths (one, or one per lambda in per-lambda mode)
    variant: str = "joint"
    N: int = 128
    M: int = 128
    k: int = 5
    K: int = 1
    steps: int = 0  # 0: [training] steps
    crop: int = 0  # 0: [training] crop
    batch: int = 0  # 0: [training] batch
    lr: float = 0.0  # 0: [training] lr
    seed: int = 0
    checkpoint_every: int = 250

    @property
    def trained_here(self) -> bool:
        return not self.checkpoints


@dataclass(frozen=True)
class SharedLatents:
    base: Base
    crops: int = DEFAULT_CROPS
    kind: str = "shared-latents"


def parse_design(raw: dict, source: str, base_dir, cells, lambdas, rate_mode: str) -> SharedLatents | None:
    """The [design] table of a config: None for full retraining; raises DesignError naming the file."""
    from pathlib import Path

    table = raw.get("design")
    where = f"{source}: [design]"
    if table is None:
        return None
    if not isinstance(table, dict):
        raise DesignError(f"{where} must be a table")
    kind = table.get("kind", "full-retraining")
    if isinstance(kind, str):  # "shared latents", "shared_latents": the same design
        kind = "-".join(kind.strip().lower().replace("_", " ").split())
    if kind not in KINDS:
        raise DesignError(f"{where} kind {kind!r}: expected {' or '.join(repr(k) for k in KINDS)}")
    unknown = set(table) - {"kind", "crops", "base"}
    if unknown:
        raise DesignError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    if kind == "full-retraining":
        if set(table) - {"kind"}:
            raise DesignError(f"{where}: crops and base belong to kind = \"shared-latents\"")
        return None
    crops = table.get("crops", DEFAULT_CROPS)
    if not isinstance(crops, int) or isinstance(crops, bool) or crops < 1:
        raise DesignError(f"{where} crops {crops!r}: expected a positive number of training crops")
    spec = table.get("base")
    if isinstance(spec, (str, list)):  # base = "FILE": short for [design.base] checkpoint = "FILE"
        spec = {"checkpoint": spec}
    if not isinstance(spec, dict) or not spec:
        raise DesignError(f"{where}.base: a shared-latents design needs a base model (checkpoint = \"FILE\", "
                          "or variant, N, M, ... for one rdbench trains)")
    unknown = set(spec) - {"checkpoint", *BASE_MODEL_KEYS, *BASE_TRAINING_KEYS}
    if unknown:
        raise DesignError(f"{where}.base: unknown key(s) {', '.join(sorted(unknown))}")
    if "checkpoint" in spec:
        if set(spec) - {"checkpoint"}:
            raise DesignError(f"{where}.base: give a checkpoint or a model to train, not both "
                              f"({', '.join(sorted(set(spec) - {'checkpoint'}))} with checkpoint)")
        files = spec["checkpoint"] if isinstance(spec["checkpoint"], list) else [spec["checkpoint"]]
        wanted = 1 if rate_mode == "gain-units" else len(lambdas)
        if len(files) != wanted or not all(isinstance(f, str) for f in files):
            raise DesignError(f"{where}.base checkpoint: expected {wanted} file name(s) ({rate_mode} mode, "
                              f"{len(lambdas)} lambdas), got {spec['checkpoint']!r}")
        paths = tuple(str((Path(base_dir) / f).resolve()) for f in files)
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise DesignError(f"{where}.base checkpoint: no such file {missing[0]}")
        return SharedLatents(Base(checkpoints=paths), crops)
    values = {"N": 128, "M": 128, **spec}
    try:
        base = Base(**{k: values[k] for k in values})
    except TypeError as exc:
        raise DesignError(f"{where}.base: {exc}") from exc
    for key in ("N", "M", "k", "K", "steps", "crop", "batch", "seed", "checkpoint_every"):
        v = getattr(base, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise DesignError(f"{where}.base {key} {v!r}: expected a non-negative integer")
    from rdbench.learned.config import ModelConfig

    try:
        ModelConfig(base.variant, base.N, base.M, base.k, base.K)
    except ValueError as exc:
        raise DesignError(f"{where}.base: {exc}") from exc
    odd = sorted({c.name for c in cells if (c.N, c.M) != (base.N, base.M)})
    if odd:
        raise DesignError(f"{where}.base has N = {base.N}, M = {base.M}; every cell codes its latents, so every cell "
                          f"needs the same N and M ([model] N, M), but {', '.join(odd)} differ")
    return SharedLatents(base, crops)
