"""A shared-latents cell's training step against a full-retraining step, in one run (issue 26).

Full retraining (ablation design "full-retraining") trains a cell's whole model: per step, crops
are drawn, g_a, the entropy model and g_s run forward and backward. A shared-latents cell
(rdbench/ablation/shared.py) trains only its entropy model on the base's cached latents: per
step, `batch` cached y are read and only the entropy model runs. This script times both steps
on the same model configuration, alternating one step of each (this machine is shared: only the
ratio within one run counts), and the one-off cost of caching a crop's latents (g_a on CHUNK
crops at a time, as latents.py does), from which the break-even is computed.

    python benchmarks/shared_latents_speed.py --data ../shared/datasets/train [--variant joint --k 5 --K 1]
        [--N 64 --M 64 --crop 128 --batch 8 --steps 20 --images 40 --threads 1] [--json FILE]

Weights are a fresh initialisation (timing does not depend on them); the base is a model of the
same N, M.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rdbench.ablation.config import Cell  # noqa: E402
from rdbench.ablation.latents import CHUNK, analyse_crops  # noqa: E402
from rdbench.ablation.shared import cell_model, rate_loss  # noqa: E402
from rdbench.conventions import IMAGE_SUFFIXES  # noqa: E402
from rdbench.learned.config import ModelConfig  # noqa: E402
from rdbench.learned.models import LatentModel  # noqa: E402
from rdbench.learned.train import CropSampler, autocast, rd_loss  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="training images (the first --images of them are used)")
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--variant", default="joint")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--K", type=int, default=1)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--M", type=int, default=64)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20, help="timed steps of each kind (after 2 untimed)")
    ap.add_argument("--cached", type=int, default=64, help="crops whose latents are cached for the cell")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                    help="bf16: autocast of the transforms for both (and channels_last for the full step)")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        paths = sorted(p for p in Path(args.data).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.images]
        for p in paths:
            shutil.copy(p, Path(tmp) / p.name)
        sampler = CropSampler(tmp, args.crop)
    rng = np.random.default_rng(0)
    lambdas = (0.0018, 0.0067, 0.013, 0.0483, 0.0932)
    config = ModelConfig(args.variant, args.N, args.M, args.k, args.K, lambdas)
    torch.manual_seed(0)
    full = LatentModel(config).train()
    if args.precision == "bf16":
        full = full.to(memory_format=torch.channels_last)
    base = LatentModel(ModelConfig("mean-scale", args.N, args.M, rates=lambdas)).eval()
    cell = cell_model(SimpleNamespace(source="benchmark"), Cell(args.variant, args.N, args.M, args.k, args.K),
                      lambdas, 0, base).train()
    crops = [sampler.batch(rng, min(CHUNK, args.cached - s)) for s in range(0, args.cached, CHUNK)]
    started = time.perf_counter()
    latents = analyse_crops(base.g_a, crops)
    cache_s_per_crop = (time.perf_counter() - started) / args.cached
    full_opt = torch.optim.Adam([p for p in full.parameters() if p.requires_grad], lr=1e-4)
    cell_opt = torch.optim.Adam([p for p in cell.parameters() if p.requires_grad], lr=1e-4)
    pixels = args.batch * args.crop * args.crop

    def full_step():
        rate = int(rng.integers(len(lambdas)))
        x = sampler.batch(rng, args.batch)
        if args.precision == "bf16":
            x = x.contiguous(memory_format=torch.channels_last)
        full_opt.zero_grad()
        with autocast(args.precision, "cpu"):
            loss, _ = rd_loss(full, x, rate, "mse")
        loss.backward()
        full_opt.step()

    def cell_step():
        rate = int(rng.integers(len(lambdas)))
        y = torch.from_numpy(latents[np.sort(rng.integers(len(latents), size=args.batch))])
        y = y * cell.gain.detach()[rate].view(1, -1, 1, 1)
        cell_opt.zero_grad()
        with autocast(args.precision, "cpu"):
            loss = rate_loss(cell, y, rate, pixels)
        loss.backward()
        cell_opt.step()

    times = {"full": [], "cell": []}
    for i in range(args.steps + 2):
        for name, step in (("full", full_step), ("cell", cell_step)):
            start = time.perf_counter()
            step()
            if i >= 2:
                times[name].append(time.perf_counter() - start)
    median = {k: float(np.median(v)) for k, v in times.items()}
    speedup = median["full"] / median["cell"]
    summary = {
        "full-retraining step s (median)": median["full"],
        "shared-latents cell step s (median)": median["cell"],
        "speed-up of a cell's step": speedup,
        "caching s per crop (once per base)": cache_s_per_crop,
    }
    for k, v in summary.items():
        print(f"{k}: {v:.4g}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": " ".join(["python", *sys.argv]), "model": config.label(), "crop": args.crop, "batch": args.batch, "precision": args.precision,
            "steps": args.steps, "torch_threads": torch.get_num_threads(), "images": len(paths),
            "time": time.strftime("%Y-%m-%d %H:%M"), "summary": summary,
        }, indent=1))


if __name__ == "__main__":
    main()
