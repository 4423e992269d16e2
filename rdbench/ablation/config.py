"""The `rdbench ablate` configuration file: a grid of model cells, rate points, training recipe.

    name = "cpu-small"
    [model]            # defaults for every cell
    N = 64
    M = 64
    [[cells]]          # each table expands to the product of its list-valued keys
    variant = "joint"
    k = [3, 5, 7]
    K = [1, 2, 3]
    [rates]
    lambdas = [0.0018, 0.0067, 0.0130, 0.0483, 0.0932]
    mode = "gain-units"   # one variable-rate model per cell; or "per-lambda": one model per lambda
    [training]
    data = "path/to/images"   # relative to this file; `--data` overrides
    crop = 128
    batch = 8
    steps = 4000
    lr = 1e-4
    downscale = 1
    seeds = [0, 1, 2]         # each cell trained once per seed (or `seed = 0`: one run)
    precision = "bf16"        # or "fp32": bf16 autocast of the transforms (learned/train.py)
    channels_last = true
    keep_fractions = [0.25, 0.5, 0.75]  # learning-curve checkpoints, besides the last
    holdout = 24              # images of `data` never trained on; learning curves are measured on them
    loader_workers = 0        # > 0: DataLoader processes make the batches (pinned memory on CUDA)
    [evaluation]
    dataset = "kodak"      # a manifest name, or a folder (relative to this file)
    reference = "joint-k5"
    [design]               # optional: kind = "shared-latents" and its base model (design.py)

This module imports no torch: the command line can check a config without importing it.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from rdbench.ablation.design import DesignError, SharedLatents, parse_design
from rdbench.analysis.bd import MIN_POINTS
from rdbench.learned.config import ModelConfig


class AblationConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Cell:
    variant: str
    N: int
    M: int
    k: int = 5
    K: int = 1

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(self.variant, self.N, self.M, self.k, self.K)

    @property
    def name(self) -> str:
        return self.model_config.label(with_size=False)


@dataclass(frozen=True)
class Training:
    data: str
    crop: int = 128
    batch: int = 8
    steps: int = 4000
    lr: float = 1e-4
    downscale: int = 1
    seed: int = 0
    metric: str = "mse"
    checkpoint_every: int = 250
    seeds: tuple[int, ...] = ()  # () : the one run of `seed`, in the single-seed layout
    precision: str = "fp32"
    channels_last: bool = False
    keep_fractions: tuple[float, ...] = ()
    holdout: int = 0
    loader_workers: int = 0

    @property
    def replicated(self) -> bool:
        """Trained per seed (cells/<cell>/seed-<s>/), rather than once (cells/<cell>/)."""
        return bool(self.seeds)

    @property
    def all_seeds(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)

    @property
    def kept_steps(self) -> tuple[int, ...]:
        """The steps whose checkpoints are kept for the learning curves (the last one is the model)."""
        return tuple(sorted({max(1, round(f * self.steps)) for f in self.keep_fractions} - {self.steps}))


@dataclass(frozen=True)
class AblationConfig:
    name: str
    cells: tuple[Cell, ...]
    lambdas: tuple[float, ...]
    rate_mode: str
    training: Training
    dataset: str = "kodak"
    reference: str = "joint-k5"
    source: str = ""
    text: str = field(default="", repr=False)
    design: SharedLatents | None = None  # None: full retraining (design.py)

    @property
    def design_kind(self) -> str:
        return self.design.kind if self.design is not None else "full-retraining"


def _expand(table: dict, defaults: dict, where: str) -> list[Cell]:
    unknown = set(table) - {"variant", "N", "M", "k", "K"}
    if unknown:
        raise AblationConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    values = {**defaults, **table}
    keys = sorted(values)
    lists = [v if isinstance(v, list) else [v] for v in (values[k] for k in keys)]
    cells = []
    for combo in itertools.product(*lists):
        d = dict(zip(keys, combo))
        cell = Cell(d.get("variant"), int(d["N"]), int(d["M"]), int(d.get("k", 5)), int(d.get("K", 1)))
        try:
            cell.model_config  # noqa: B018 - validates variant, k and K
        except ValueError as exc:
            raise AblationConfigError(f"{where}: {exc}") from exc
        cells.append(cell)
    return cells


def parse(text: str, source: str = "<config>", data_override: str | None = None) -> AblationConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AblationConfigError(f"{source}: not valid TOML ({exc})") from exc
    defaults = {"N": 64, "M": 64, **raw.get("model", {})}
    if not raw.get("cells"):
        raise AblationConfigError(f"{source}: no [[cells]] tables")
    cells: list[Cell] = []
    for i, table in enumerate(raw["cells"]):
        cells += _expand(table, defaults, f"{source}: cells[{i}]")
    names = [c.name for c in cells]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AblationConfigError(f"{source}: cells listed twice: {', '.join(dupes)}")
    rates = raw.get("rates", {})
    lambdas = tuple(float(x) for x in rates.get("lambdas", []))
    if len(lambdas) < MIN_POINTS:
        raise AblationConfigError(
            f"{source}: [rates] lambdas needs at least {MIN_POINTS} values for BD-rate (got {len(lambdas)})")
    mode = rates.get("mode", "gain-units")
    if mode not in ("gain-units", "per-lambda"):
        raise AblationConfigError(f"{source}: [rates] mode {mode!r}, expected gain-units or per-lambda")
    t = dict(raw.get("training", {}))
    if data_override:
        t["data"] = data_override
    if "data" not in t:
        raise AblationConfigError(f"{source}: [training] data (an image folder) is required, or pass --data")
    base = Path(source).parent if source != "<config>" else Path(".")
    t["data"] = str((base / t["data"]).resolve()) if not data_override else str(Path(t["data"]).resolve())
    for key in ("seeds", "keep_fractions"):
        if key in t:
            # keep_fractions = []: no learning-curve checkpoint besides the last; every run needs a seed
            if not isinstance(t[key], list) or (key == "seeds" and not t[key]):
                raise AblationConfigError(f"{source}: [training] {key} must be a "
                                          + ("non-empty list" if key == "seeds" else "list (empty: no learning-curve "
                                                                                     "checkpoints)"))
            t[key] = tuple(t[key])
    try:
        training = Training(**t)
    except TypeError as exc:
        raise AblationConfigError(f"{source}: [training] {exc}") from exc
    _check_training(training, source)
    ev = raw.get("evaluation", {})
    reference = ev.get("reference", "joint-k5")
    if reference not in names:
        raise AblationConfigError(f"{source}: reference cell {reference!r} is not in the grid ({', '.join(names)})")
    dataset = ev.get("dataset", "kodak")
    if (base / dataset).is_dir():
        dataset = str((base / dataset).resolve())
    try:
        design = parse_design(raw, source, base, cells, lambdas, mode)
    except DesignError as exc:
        raise AblationConfigError(str(exc)) from exc
    return AblationConfig(
        name=raw.get("name", Path(source).stem), cells=tuple(cells), lambdas=lambdas, rate_mode=mode,
        training=training, dataset=dataset, reference=reference, source=source, text=text, design=design,
    )


def _check_training(t: Training, source: str) -> None:
    where = f"{source}: [training]"
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in t.seeds) or len(set(t.seeds)) != len(t.seeds):
        raise AblationConfigError(f"{where} seeds {list(t.seeds)}: expected distinct non-negative integers")
    if t.precision not in ("fp32", "bf16"):
        raise AblationConfigError(f"{where} precision {t.precision!r}: expected fp32 or bf16")
    if any(not isinstance(f, (int, float)) or not 0 < f < 1 for f in t.keep_fractions):
        raise AblationConfigError(f"{where} keep_fractions {list(t.keep_fractions)}: expected fractions between 0 and 1")
    if not isinstance(t.holdout, int) or t.holdout < 0:
        raise AblationConfigError(f"{where} holdout {t.holdout!r}: expected a number of images (0 or more)")
    if not isinstance(t.steps, int) or t.steps < 1:
        raise AblationConfigError(f"{where} steps {t.steps!r}: expected a positive integer")


def load(path: str | Path, data_override: str | None = None) -> AblationConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise AblationConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    return parse(text, str(path), data_override)
