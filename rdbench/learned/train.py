"""Training: rate-distortion loss, Adam, the bottleneck's auxiliary loss, resumable checkpoints.

Loss per batch: lambda * 255^2 * MSE + bpp (or lambda * (1 - MS-SSIM) + bpp), bpp from the
model's likelihoods over the crop's pixels. A variable-rate model (several lambdas) draws one
rate per step, uniformly, and trains that rate's gain vectors with the shared weights.

Precision: `precision="bf16"` runs the transforms (g_a, g_s, h_a, h_s, context_prediction,
entropy_parameters) under bfloat16 autocast; the entropy models, the likelihoods, the loss and
the weights (and so the checkpoints) stay float32. With `channels_last` the convolutions read
NHWC tensors. On a CPU with AMX-BF16 both together train about 1.9x faster (benchmarks/
train_precision.py measures it against fp32 in the same run); `heldout_rd` compares the quality.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from rdbench.conventions import IMAGE_SUFFIXES, MS_SSIM_MIN_SIDE, write_atomic
from rdbench.errors import ImageError
from rdbench.learned import checkpoint
from rdbench.learned.config import ModelConfig
from rdbench.learned.models import LatentModel


@dataclass
class TrainOptions:
    config: ModelConfig
    data: str
    out: str
    steps: int = 1000
    batch: int = 8
    crop: int = 256
    lr: float = 1e-4
    aux_lr: float = 1e-3
    clip: float = 1.0
    metric: str = "mse"  # or "ms-ssim"
    downscale: int = 1  # shrink training images by this factor first (removes JPEG artefacts)
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 500
    log_every: int = 50
    resume: bool = False
    exclude: tuple[str, ...] = field(default=())  # file names never to train on (e.g. Kodak's)
    precision: str = "fp32"  # or "bf16": autocast of the transforms (module docstring)
    channels_last: bool = False
    keep_at: tuple[int, ...] = field(default=())  # steps at which a copy <stem>-step<N>.pt is kept
    loader_workers: int = 0  # > 0: batches made by that many DataLoader processes (pinned on CUDA)


class TrainingError(RuntimeError):
    pass


def read_rgb(path: Path) -> np.ndarray:
    """An image file's pixels as uint8 H x W x 3 (Pillow, converted to RGB); ImageError if unreadable.
    Training's default loader (for 8-bit RGB files it gives the same pixels as measuring does).
    The stricter loader of measuring, which refuses what does not convert to 8-bit RGB exactly,
    can be passed instead: `train(opts, load_image=lambda p: rdbench.data.images.load_rgb(p).pixels)`."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
    except Exception as exc:  # Pillow raises many types for broken files
        raise ImageError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc


def downscaled(pixels: np.ndarray, factor: int) -> np.ndarray:
    """An image shrunk by `factor` (Lanczos), as training sees it (TrainOptions.downscale); 1: as it is."""
    if factor <= 1:
        return pixels
    from PIL import Image

    h, w = pixels.shape[:2]
    return np.asarray(Image.fromarray(pixels).resize((w // factor, h // factor), Image.LANCZOS))


class CropSampler:
    """Random crops (with random flips) from every image of a folder, held in memory as uint8.
    `load_image(path)` returns an image's pixels (uint8 H x W x 3) or raises ImageError."""

    def __init__(self, folder: str, crop: int, downscale: int = 1, exclude=(), load_image=read_rgb):
        paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.name not in exclude)
        if not paths:
            raise TrainingError(f"{folder}: no training images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.images, skipped = [], []
        for path in paths:
            try:
                pixels = load_image(path)
            except ImageError as exc:
                skipped.append(f"{path.name}: {exc}")
                continue
            pixels = downscaled(pixels, downscale)
            if min(pixels.shape[:2]) >= crop:
                self.images.append(pixels)
            else:
                skipped.append(f"{path.name}: smaller than the {crop}px crop")
        if not self.images:
            raise TrainingError(f"{folder}: no image is at least {crop}x{crop} pixels ({len(skipped)} skipped)")
        self.skipped = skipped
        self.crop = crop

    def batch(self, rng: np.random.Generator, size: int) -> torch.Tensor:
        out = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for i in range(size):
            img = self.images[rng.integers(len(self.images))]
            top = rng.integers(img.shape[0] - self.crop + 1)
            left = rng.integers(img.shape[1] - self.crop + 1)
            patch = img[top : top + self.crop, left : left + self.crop]
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:
                patch = patch[::-1]
            out[i] = patch
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255)


class _StepBatches(torch.utils.data.Dataset):
    """Batch i of a run made from its own generator, seeded by (seed, i): what DataLoader worker
    processes can make in any order and on any number of workers, identically, and what a resumed
    run makes again from its step on."""

    def __init__(self, sampler: CropSampler, seed: int, size: int, first: int, last: int):
        self.sampler, self.seed, self.size, self.first, self.last = sampler, seed, size, first, last

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.sampler.batch(np.random.default_rng((self.seed, self.first + i)), self.size)


def _batches(opts: "TrainOptions", sampler: CropSampler, rng: np.random.Generator, first: int):
    """The training batches from step `first` on. loader_workers = 0: made in this process from
    `rng` (the generator that also draws each step's rate); > 0: by DataLoader worker processes,
    each batch from its own (seed, step) generator, pinned for a fast copy to a CUDA device."""
    if opts.loader_workers <= 0:
        while True:
            yield sampler.batch(rng, opts.batch)
    cuda = torch.device(opts.device).type == "cuda"
    loader = torch.utils.data.DataLoader(
        _StepBatches(sampler, opts.seed, opts.batch, first, opts.steps), batch_size=None, shuffle=False,
        num_workers=opts.loader_workers, pin_memory=cuda, prefetch_factor=4, persistent_workers=False,
        # its own generator: a DataLoader otherwise draws its base seed from torch's global one,
        # which the training's quantization noise uses (a resumed run would then differ)
        generator=torch.Generator().manual_seed(opts.seed))
    yield from loader


def _optimizers(model: LatentModel, lr: float, aux_lr: float):
    main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    return torch.optim.Adam(main, lr=lr), (torch.optim.Adam(aux, lr=aux_lr) if aux else None)


PRECISIONS = ("fp32", "bf16")


def autocast(precision: str, device: str):
    """The autocast region of one training step (a no-op for fp32)."""
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def rd_loss(model: LatentModel, x: torch.Tensor, rate: int, metric: str) -> tuple[torch.Tensor, dict]:
    out = model(x, rate)
    num_pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(-torch.log2(lik.float()).sum() for lik in out["likelihoods"].values()) / num_pixels
    lam = model.config.rates[rate]
    x_hat = out["x_hat"].float()
    mse = torch.mean((x_hat - x) ** 2)
    if metric == "mse":
        distortion = 255**2 * mse
    else:
        from pytorch_msssim import ms_ssim

        distortion = 1 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0)
    loss = lam * distortion + bpp
    psnr = -10 * math.log10(max(mse.item(), 1e-12))
    return loss, {"loss": loss.item(), "bpp": bpp.item(), "psnr": psnr}


def train(opts: TrainOptions, log=None, load_image=read_rgb) -> Path:
    """Train (or resume) and return the checkpoint path. `log(str)` receives progress lines;
    `load_image(path) -> uint8 H x W x 3` reads the training images (see CropSampler)."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if opts.metric not in ("mse", "ms-ssim"):
        raise TrainingError(f"metric {opts.metric!r}: expected mse or ms-ssim")
    if opts.precision not in PRECISIONS:
        raise TrainingError(f"precision {opts.precision!r}: expected {' or '.join(PRECISIONS)}")
    if opts.metric == "ms-ssim" and opts.crop < MS_SSIM_MIN_SIDE:
        raise TrainingError(f"--metric ms-ssim needs crops of at least {MS_SSIM_MIN_SIDE} px (larger than "
                            f"{MS_SSIM_MIN_SIDE - 1}: 5 scales of an 11-tap window); got {opts.crop}")
    out = Path(opts.out)
    torch.manual_seed(opts.seed)
    model = LatentModel(opts.config).to(opts.device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer, aux_optimizer = _optimizers(model, opts.lr, opts.aux_lr)
    rng = np.random.default_rng(opts.seed)
    step = 0
    if out.exists():
        if not opts.resume:
            raise TrainingError(f"{out} exists; pass --resume to continue it, or choose another path")
        step, rng = _resume(out, opts, model, optimizer, aux_optimizer)
        log(f"{out}: resuming at step {step}/{opts.steps}")
    sampler = CropSampler(opts.data, opts.crop, opts.downscale, opts.exclude, load_image)
    if sampler.skipped:
        log(f"{opts.data}: skipped {len(sampler.skipped)} image(s), e.g. {sampler.skipped[0]}")
    model.train()
    recipe = {k: v for k, v in asdict(opts).items()
              if k not in ("config", "out", "resume", "device", "log_every", "checkpoint_every", "keep_at")}
    recipe["exclude"] = list(opts.exclude)
    n_rates = len(opts.config.rates)
    started, first_step, window = time.perf_counter(), step, []
    batches = _batches(opts, sampler, rng, step)
    while step < opts.steps:
        rate = int(rng.integers(n_rates)) if n_rates > 1 else 0
        x = next(batches).to(opts.device, non_blocking=True)
        if opts.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # every gradient cleared, the bottleneck's quantiles too (as CompressAI's example trains): the
        # aux step leaves its gradient on the quantiles, and clip_grad_norm_ below measures every
        # parameter's gradient, so a stale one changed the clipping of the next step, and a resumed
        # run (which starts without it) was not bit-identical to an uninterrupted one
        model.zero_grad(set_to_none=True)
        with autocast(opts.precision, opts.device):
            loss, stats = rd_loss(model, x, rate, opts.metric)
        if not math.isfinite(stats["loss"]):
            raise TrainingError(f"loss is {stats['loss']} at step {step}; last checkpoint kept at {out}")
        loss.backward()
        if opts.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip)
        optimizer.step()
        if aux_optimizer is not None:
            aux_optimizer.zero_grad()
            model.aux_loss().backward()
            aux_optimizer.step()
        step += 1
        window.append(stats)
        if step % opts.log_every == 0 or step == opts.steps:
            mean = {k: sum(s[k] for s in window) / len(window) for k in window[0]}
            rate_s = (step - first_step) / max(time.perf_counter() - started, 1e-9)
            log(f"step {step}/{opts.steps}  loss {mean['loss']:.4f}  bpp {mean['bpp']:.4f}  "
                f"psnr {mean['psnr']:.2f} dB  ({rate_s:.2f} steps/s)")
            window = []
        if step % opts.checkpoint_every == 0 or step == opts.steps or step in opts.keep_at:
            save_training(out, model, optimizer, aux_optimizer, rng, step, recipe)
            model.train()
        if step in opts.keep_at:  # a learning-curve point: the checkpoint of this step, kept
            kept = kept_path(out, step)
            write_atomic(kept, out.read_bytes())
    return out


def kept_path(out: str | Path, step: int) -> Path:
    """Where train keeps the checkpoint of step `step` (TrainOptions.keep_at) next to `out`."""
    out = Path(out)
    return out.with_name(f"{out.stem}-step{step}{out.suffix}")


def split_holdout(folder: str, count: int) -> list[Path]:
    """`count` images of `folder` spread evenly over its sorted file list: a held-out set that
    training excludes (by file name) and learning curves evaluate on. Deterministic."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if count <= 0:
        return []
    if count >= len(paths):
        raise TrainingError(f"{folder}: a held-out set of {count} images leaves nothing to train on ({len(paths)} images)")
    step = len(paths) / count
    return [paths[int(i * step + step / 2)] for i in range(count)]


@torch.no_grad()
def heldout_rd(model: LatentModel, images: list[np.ndarray], metric: str = "mse") -> list[dict]:
    """Per rate of `model`: the mean over `images` (uint8 H x W x 3, centre-cropped to a multiple
    of 64) of the estimated bpp (the model's -log2 likelihood of the rounded latents, no bitstream),
    the PSNR (dB) and the RD loss of training (lambda * distortion + bpp), in float32, eval mode."""
    from rdbench.learned.coding import PAD

    model = model.eval()
    device = next(model.parameters()).device
    batches = []
    for pixels in images:
        h, w = (pixels.shape[0] // PAD) * PAD, (pixels.shape[1] // PAD) * PAD
        if not h or not w:
            raise TrainingError(f"held-out image of {pixels.shape[1]}x{pixels.shape[0]} is smaller than {PAD}x{PAD}")
        top, left = (pixels.shape[0] - h) // 2, (pixels.shape[1] - w) // 2
        crop = np.array(pixels[top : top + h, left : left + w])  # a writable copy for torch
        batches.append(torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(255).to(device))
    results = []
    for rate, lam in enumerate(model.config.rates):
        stats = []
        for x in batches:
            _, s = rd_loss(model, x, rate, metric)
            stats.append(s)
        mean = {k: float(np.mean([s[k] for s in stats])) for k in ("loss", "bpp", "psnr")}
        results.append({"rate": rate, "lambda": lam, **mean})
    return results


def save_training(out, model, optimizer, aux_optimizer, rng, step, recipe) -> None:
    """A resumable checkpoint: the model, both optimizers' states and both generators' states."""
    extra = {
        "optimizer": optimizer.state_dict(),
        "aux_optimizer": aux_optimizer.state_dict() if aux_optimizer else None,
        "rng": {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()},
    }
    checkpoint.save(out, model, {**recipe, "steps": step, "lambdas": list(model.config.rates)}, extra)


def read_resumable(path: Path, config: ModelConfig) -> dict:
    """The payload of a resumable training checkpoint of `config`, or a TrainingError naming it."""
    payload = checkpoint._read(path)
    if payload.get("format") != checkpoint.FORMAT or "optimizer" not in payload:
        raise TrainingError(f"{path}: not a resumable rdbench training checkpoint")
    saved = ModelConfig.from_dict(payload["config"])
    if saved != config:
        raise TrainingError(f"{path}: was trained as {saved}, not {config}; choose another path")
    return payload


def restore_training(payload: dict, model, optimizer, aux_optimizer) -> tuple[int, np.random.Generator]:
    """Weights, optimizer states and both generators from a resumable checkpoint's payload:
    (the steps it had done, the numpy generator to go on with)."""
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(payload["optimizer"])
    if aux_optimizer is not None and payload.get("aux_optimizer"):
        aux_optimizer.load_state_dict(payload["aux_optimizer"])
    rng = np.random.default_rng()
    rng.bit_generator.state = payload["rng"]["numpy"]
    torch.set_rng_state(payload["rng"]["torch"])
    return int(payload["training"]["steps"]), rng


def _resume(out: Path, opts: TrainOptions, model, optimizer, aux_optimizer):
    payload = read_resumable(out, opts.config)
    own = model.state_dict().keys()
    if set(payload["state_dict"]) != set(own) and set(checkpoint.translate_compressai_keys(payload["state_dict"], own)) == set(own):
        # the weights would load, but the optimizers hold their state by parameter order, which
        # the two namings of the entropy bottleneck (CompressAI 1.2.6 vs 1.2.7+) order differently
        raise TrainingError(f"{out}: saved under a CompressAI that names the entropy bottleneck's parameters "
                            "differently (1.2.6 vs 1.2.7 and later); its optimizer state cannot resume here: "
                            "resume it under that CompressAI, or train to another path")
    return restore_training(payload, model, optimizer, aux_optimizer)
