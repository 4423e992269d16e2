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
    seed = 0
    [evaluation]
    dataset = "kodak"      # a manifest name, or a folder (relative to this file)
    reference = "joint-k5"

This module imports no torch: the command line can check a config without importing it.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

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
    try:
        training = Training(**t)
    except TypeError as exc:
        raise AblationConfigError(f"{source}: [training] {exc}") from exc
    ev = raw.get("evaluation", {})
    reference = ev.get("reference", "joint-k5")
    if reference not in names:
        raise AblationConfigError(f"{source}: reference cell {reference!r} is not in the grid ({', '.join(names)})")
    dataset = ev.get("dataset", "kodak")
    if (base / dataset).is_dir():
        dataset = str((base / dataset).resolve())
    return AblationConfig(
        name=raw.get("name", Path(source).stem), cells=tuple(cells), lambdas=lambdas, rate_mode=mode,
        training=training, dataset=dataset, reference=reference, source=source, text=text,
    )


def load(path: str | Path, data_override: str | None = None) -> AblationConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise AblationConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    return parse(text, str(path), data_override)
