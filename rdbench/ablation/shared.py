"""The shared-latents design (design.py): one base model's transforms, frozen; per cell, an entropy model.

What each cell trains, and what it keeps from the base
    Kept, frozen and bit-identical in every cell's checkpoint: g_a, g_s and, for a variable-rate
    base, the gain units of y (`gain`, `inverse_gain`): together they define y and the image
    made from ŷ. Trained per cell and seed, from a seeded initialisation: everything else, that
    is the cell's entropy model: the hyperprior (h_a, h_s, the entropy bottleneck of z and the
    hyper gain units), the context model of size k (context_prediction), and entropy_parameters
    with K mixture components. The hyperprior is trained per cell, not taken from the base,
    because what it must carry depends on the rest of the entropy model (with a context model
    the hyperprior carries less); a cell's question is then "which entropy model codes these
    latents best", each entropy model at its own optimum.

The objective: the rate alone
    Full training minimises lambda * D + R. With g_a and g_s frozen, D does not depend on the
    entropy model during training: training quantises by additive uniform noise, ŷ = y + u
    (CompressAI's GaussianConditional and rdbench's mixture alike; the noise ignores the means),
    so x̂ = g_s(ŷ) is the same whatever the entropy model predicts, and the gradient of lambda *
    D with respect to every trained parameter is exactly zero. The cell minimises R = -log2 of
    the likelihoods of ẑ and ŷ per pixel, the gradient full training gives the entropy model.
    Coding is different: a one-Gaussian model (K = 1) with means codes ŷ = round(y - μ) + μ,
    so its reconstruction does depend on μ (by less than half a step per latent), while a
    mixture (K >= 2) codes ŷ = round(y). rdbench keeps its real codecs (every cell is evaluated
    with real bitstreams, as in the full design), so a K = 1 cell's distortion can differ
    slightly from a mixture cell's on the same y; the BD-rates count it, since they compare rate
    at equal measured quality. Each cell's mean PSNR is in the tables beside its rate.

Cost
    y is computed once for a fixed set of training crops (latents.py), so a cell's step runs
    neither g_a nor g_s: only the entropy model on y (1/16 of the crop per side). Training
    batches draw `batch` of the cached crops per step (with replacement).

Checkpoints are ordinary rdbench checkpoints (the whole model, the base's transforms included),
so evaluation, learning curves and complexity are the full design's; they also hold the
optimizer and generator states, and a killed cell resumes from its last one.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

from rdbench.ablation.config import AblationConfig

FROZEN_PREFIXES = ("g_a.", "g_s.")
FROZEN_NAMES = ("gain", "inverse_gain")


def frozen(name: str) -> bool:
    """Whether a parameter or buffer of a cell's model comes from the base (and stays frozen)."""
    return name.startswith(FROZEN_PREFIXES) or name in FROZEN_NAMES


def base_paths(config: AblationConfig, out: Path) -> list[tuple[tuple[float, ...], Path]]:
    """(lambdas, base checkpoint) per model of a cell: one for gain units, one per lambda otherwise."""
    base = config.design.base
    if base.checkpoints:
        if config.rate_mode == "gain-units":
            return [(config.lambdas, Path(base.checkpoints[0]))]
        return [((lam,), Path(p)) for lam, p in zip(config.lambdas, base.checkpoints)]
    folder = Path(out) / "base"
    if config.rate_mode == "gain-units":
        return [(config.lambdas, folder / "model.pt")]
    return [((lam,), folder / f"lambda-{lam:g}.pt") for lam in config.lambdas]


def base_for(config: AblationConfig, out: Path, lambdas) -> Path:
    return dict(base_paths(config, out))[tuple(lambdas)]


def describe(config: AblationConfig, out: Path | None = None) -> list[str]:
    """The summary's first lines: which design, and what it does and does not answer."""
    if config.design is None:
        return ["Design: **full retraining**: every cell (and seed) trains its whole model, transforms included. "
                "It answers what each full model reaches with the transforms it learns; the cells' latents differ, "
                "so an entropy model's effect of a few percent can be lost in the transforms' noise.", ""]
    base = config.design.base
    t = config.training
    if base.checkpoints:
        what = "the checkpoint " + ", ".join(f"`{Path(p).name}`" for p in base.checkpoints)
    else:
        what = (f"a {base.variant} model (N = {base.N}, M = {base.M}) trained by rdbench for "
                f"{base.steps or t.steps} steps of {base.crop or t.crop}px crops (`base/`)")
    return [
        f"Design: **shared latents**. Every cell codes the latents of one base model, {what}: its g_a and g_s "
        "(and gain units) are frozen and bit-identical in every cell, and each cell trains only its entropy model "
        "(hyperprior, context model of size k, entropy parameters with K mixtures) on the rate alone, on "
        f"{config.design.crops} cached training crops. It answers what a better entropy model gains on fixed latents "
        "(the comparison between cells is paired: the same y, coded by two entropy models); it does not answer what "
        "the transforms would learn in return for a better entropy model (the full-retraining design does, at a "
        "far higher cost).", ""]


# -- the base -----------------------------------------------------------------------------------
def base_job_options(config: AblationConfig, lambdas, path: Path, device: str):
    """TrainOptions of a base rdbench trains (design.base without a checkpoint)."""
    from rdbench.ablation.layout import training_exclude
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainOptions

    b, t = config.design.base, config.training
    return TrainOptions(
        config=ModelConfig(b.variant, b.N, b.M, b.k, b.K, tuple(lambdas)), data=t.data, out=str(path),
        steps=b.steps or t.steps, batch=b.batch or t.batch, crop=b.crop or t.crop, lr=b.lr or t.lr,
        metric=t.metric, downscale=t.downscale, seed=b.seed, device=device, checkpoint_every=b.checkpoint_every,
        log_every=50, resume=True, exclude=training_exclude(config), precision=t.precision,
        channels_last=t.channels_last, loader_workers=t.loader_workers)


def _logger(path: Path):
    def log(line: str) -> None:
        with open(path.parent / "train.log", "a") as logfile:
            logfile.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {path.name}: {line}\n")
    return log


def prepare(config: AblationConfig, out: Path, device: str = "cpu", threads: int = 1, log=None) -> list[Path]:
    """Train (or resume) the base if rdbench trains it, and cache its latents of the training
    crops: what every cell reads. Returns the base checkpoints. Idempotent: a finished base and
    an up-to-date cache are left as they are."""
    import torch

    from rdbench.ablation.latents import cached_latents
    from rdbench.ablation.layout import trained_steps
    from rdbench.data.images import rgb_pixels
    from rdbench.learned.checkpoint import load
    from rdbench.learned.train import train

    torch.set_num_threads(threads)
    paths = []
    for lambdas, path in base_paths(config, out):
        if config.design.base.trained_here:
            opts = base_job_options(config, lambdas, path, device)
            if trained_steps(path) < opts.steps:
                path.parent.mkdir(parents=True, exist_ok=True)
                train(opts, log=_logger(path), load_image=rgb_pixels)
        loaded = load(path)
        check_base(config, loaded.model, path, lambdas)
        cached_latents(config, out, loaded.model, loaded.model_id, str(path), log)
        paths.append(path)
    return paths


def check_base(config: AblationConfig, base, path: Path, lambdas) -> None:
    """A base every cell can share: the cells' N and M, one rate per lambda it stands for."""
    cfg = base.config
    odd = sorted({c.name for c in config.cells if (c.N, c.M) != (cfg.N, cfg.M)})
    if odd:
        raise ValueError(f"{config.source}: the base {path} has N = {cfg.N}, M = {cfg.M}, but cell(s) "
                         f"{', '.join(odd)} have other sizes ([model] N, M must be the base's)")
    if len(cfg.rates) != len(lambdas):
        raise ValueError(f"{config.source}: the base {path} has {len(cfg.rates)} rate(s), but it stands for "
                         f"{len(lambdas)} lambda(s) ({', '.join(f'{x:g}' for x in lambdas)})")


# -- a cell -------------------------------------------------------------------------------------
def cell_model(config: AblationConfig, cell, lambdas, seed: int, base):
    """A cell's model: its entropy model initialised from `seed`, the base's transforms loaded and frozen."""
    import torch

    from rdbench.learned.config import ModelConfig
    from rdbench.learned.models import LatentModel

    torch.manual_seed(seed)
    model = LatentModel(ModelConfig(cell.variant, base.config.N, base.config.M, cell.k, cell.K, tuple(lambdas)))
    transforms = {k: v for k, v in base.state_dict().items() if frozen(k)}
    missing = set(transforms) ^ {k for k in model.state_dict() if frozen(k)}
    if missing:  # a single-rate cell from a variable-rate base, or the reverse
        raise ValueError(f"{config.source}: cell {cell.name} and the base disagree on {', '.join(sorted(missing))}")
    model.load_state_dict(transforms, strict=False)
    for name, p in model.named_parameters():
        p.requires_grad_(not frozen(name))
    return model


def rate_loss(model, y, rate: int, pixels: int):
    """bpp of the cell's entropy model on y (already scaled by the rate's gain): -log2 of the
    likelihoods of ẑ and ŷ (ŷ = y + noise in training mode) over the crops' pixels."""
    import torch

    _, likelihoods = model.quantize_with_likelihoods(y, rate)
    return sum(-torch.log2(lik.float()).sum() for lik in likelihoods.values()) / pixels


def train_cell(job, config: AblationConfig, out: Path, log=None) -> str:
    """Train (or resume) one cell and seed of a shared-latents grid; returns its checkpoint path."""
    import numpy as np
    import torch

    from rdbench.ablation.latents import cached_latents
    from rdbench.learned import checkpoint
    from rdbench.learned.train import TrainingError, autocast, kept_path, save_training

    torch.set_num_threads(job.threads)
    t = config.training
    path = Path(job.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = log or _logger(path)
    base_path = base_for(config, out, job.lambdas)
    base = checkpoint.load(base_path)
    check_base(config, base.model, base_path, job.lambdas)
    latents = cached_latents(config, out, base.model, base.model_id, str(base_path), log)
    model = cell_model(config, job.cell, job.lambdas, job.seed, base.model).to(job.device)
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.Adam([p for n, p in trained if not n.endswith(".quantiles")], lr=t.lr)
    quantiles = [p for n, p in trained if n.endswith(".quantiles")]
    aux_optimizer = torch.optim.Adam(quantiles, lr=1e-3) if quantiles else None  # learned/train.py's aux lr
    rng = np.random.default_rng(job.seed)
    step = 0
    if path.exists():
        step, rng = _resume(path, model, optimizer, aux_optimizer)
        log(f"resuming at step {step}/{t.steps}")
    recipe = {"design": "shared-latents", "base": str(base_path), "base_model_id": base.model_id.hex(),
              "crops": config.design.crops, "crop": t.crop, "batch": t.batch, "lr": t.lr, "seed": job.seed,
              "objective": "rate (bpp) of the entropy model on the base's cached latents"}
    pixels = t.batch * t.crop * t.crop
    gains = model.gain.detach() if model.config.variable_rate else None
    n_rates = len(job.lambdas)
    model.train()
    started, first, window = time.perf_counter(), step, []
    while step < t.steps:
        rate = int(rng.integers(n_rates)) if n_rates > 1 else 0
        index = np.sort(rng.integers(latents.shape[0], size=t.batch))
        y = torch.from_numpy(np.ascontiguousarray(latents[index])).to(job.device)
        if gains is not None:  # as LatentModel.analyse scales g_a's output
            y = y * gains[rate].view(1, -1, 1, 1)
        optimizer.zero_grad()
        with autocast(t.precision, job.device):
            loss = rate_loss(model, y, rate, pixels)
        if not math.isfinite(loss.item()):
            raise TrainingError(f"rate is {loss.item()} at step {step}; last checkpoint kept at {path}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        if aux_optimizer is not None:
            aux_optimizer.zero_grad()
            model.aux_loss().backward()
            aux_optimizer.step()
        step += 1
        window.append(loss.item())
        if step % 50 == 0 or step == t.steps:
            rate_s = (step - first) / max(time.perf_counter() - started, 1e-9)
            log(f"step {step}/{t.steps}  loss {np.mean(window):.4f}  bpp {np.mean(window):.4f}  ({rate_s:.2f} steps/s)")
            window = []
        if step % t.checkpoint_every == 0 or step == t.steps or step in t.kept_steps:
            save_training(path, model, optimizer, aux_optimizer, rng, step, recipe)
            model.train()
        if step in t.kept_steps:
            shutil.copyfile(path, kept_path(path, step))
    return str(path)


def _resume(path: Path, model, optimizer, aux_optimizer):
    from rdbench.learned.train import TrainingError, read_resumable, restore_training

    payload = read_resumable(path, model.config)
    if payload["training"].get("design") != "shared-latents":
        raise TrainingError(f"{path}: a full-retraining checkpoint, not a shared-latents cell; use another --out")
    return restore_training(payload, model, optimizer, aux_optimizer)


def with_design_header(config: AblationConfig, text: str) -> str:
    """ablation.md with the design named in its first lines (after the title)."""
    title, _, rest = text.partition("\n")
    return "\n".join([title, "", *describe(config)]) + rest
