"""Train the README's toy models: a small Cheng 2020 (CompressAI's Cheng2020Anchor) and the
user's model of examples/my_model.py, one checkpoint per rate point, saved as CompressAI's
examples/train.py saves them ({"epoch", "state_dict", "loss", "optimizer", "aux_optimizer"}).

TOY MODELS: a few thousand steps on small crops of the training photos (never Kodak), far from
converged; they show how rdbench measures any model, not how good Cheng 2020 is.

Warm start (`--warm-steps N`, as is common practice): one model per architecture is first trained
N steps at a middle lambda (`--warm-lambda`, by default the geometric middle of `--lambdas`) and
saved beside the checkpoint folder (OUT/NAME-warm-lambdaL.pth.tar, outside the folder that
`checkpoints=OUT/NAME` reads); each lambda's checkpoint is then fine-tuned from it for `--steps`.
`--reuse-warm` loads that file instead of training it again when it is there. Every lambda's run
draws the same crops (seed 1; the warm start seed 0), so its checkpoints differ by lambda only. The learning rate
drops to a tenth for the last fifth of every run's steps (`--lr-drop 0.8`). The printed and saved
"loss" is the mean of the last 100 steps' training loss (lambda * 255^2 * MSE + bpp).

    nice -n 10 python benchmarks/toy_models.py --data ../shared/datasets/train/div2k-valid-256 --out toy

Speed: one torch thread by default. On a machine whose cores are busy, two OpenMP threads made a
training step of the N = 32 Cheng 10 to 80 times slower than one thread (0.5-9.9 s against 0.12 s
per step at batch 4, measured on 2 shared cores), which is what made an earlier 60-step run take
693 s; oneDNN on or off made no difference at one thread (it stays off: see main).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# CompressAI's ladder (MSE), qualities 1 to 4. A toy model's distortion is bound by its training,
# not its rate: fine-tuned at 0.013, 0.025, 0.0483 and 0.0932 from one warm start, examples/my_model.py
# bought rate without PSNR (training PSNR 24.85, 25.04, 24.95, 25.02 dB): not a monotonic curve
LAMBDAS = "0.0018,0.0035,0.0067,0.013"
SUFFIXES = (".png", ".jpg", ".jpeg")


def crops(images: list[np.ndarray], n: int, side: int, rng: np.random.Generator) -> torch.Tensor:
    out = []
    for _ in range(n):
        img = images[rng.integers(len(images))]
        y, x = rng.integers(img.shape[0] - side + 1), rng.integers(img.shape[1] - side + 1)
        out.append(img[y:y + side, x:x + side])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def train(net, images, lmbda: float, steps: int, batch: int, side: int, seed: int, path: Path, lr: float,
          lr_drop: float = 0.8, log_every: int = 500, tag: str = "") -> float:
    """Train `net` `steps` steps at `lmbda` and save it to `path`; returns the mean loss of the last 100 steps."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    opt, aux_opt = torch.optim.Adam(params, lr), torch.optim.Adam(aux, 1e-3)
    net.train()
    recent: list[tuple[float, float, float]] = []
    t0 = time.perf_counter()
    for step in range(steps):
        if step == int(lr_drop * steps):
            for group in opt.param_groups:
                group["lr"] = lr / 10
        x = crops(images, batch, side, rng)
        out = net(x)
        bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / (batch * side * side)
        mse = torch.mean((out["x_hat"] - x) ** 2)
        loss = lmbda * 255**2 * mse + bpp
        opt.zero_grad(), aux_opt.zero_grad()
        loss.backward()
        net.aux_loss().backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(), aux_opt.step()
        recent = (recent + [(float(loss.detach()), float(bpp.detach()), float(mse.detach()))])[-100:]
        if log_every and (step + 1) % log_every == 0:
            m = np.mean(recent, axis=0)
            print(f"  {tag} step {step + 1}/{steps}: loss {m[0]:.4f}, bpp {m[1]:.4f}, "
                  f"PSNR {10 * math.log10(1 / m[2]):.2f} dB (last {len(recent)} steps), "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    final = float(np.mean([r[0] for r in recent])) if recent else float("nan")
    torch.save({"epoch": steps, "state_dict": net.state_dict(), "loss": final,
                "optimizer": opt.state_dict(), "aux_optimizer": aux_opt.state_dict()}, path)
    return final


def positive_floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"every lambda must be > 0: {text!r}")
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, nargs="+", help="folders of training photos (not Kodak)")
    ap.add_argument("--out", required=True, help="folder: cheng2020/ and my_model/, one checkpoint per lambda")
    ap.add_argument("--lambdas", type=positive_floats, default=positive_floats(LAMBDAS),
                    help=f"comma-separated, one checkpoint each (default {LAMBDAS})")
    ap.add_argument("--steps", type=int, default=600, help="steps per lambda (after the warm start, if any)")
    ap.add_argument("--warm-steps", type=int, default=0, help="train one model this long at --warm-lambda first, "
                    "then fine-tune each lambda's checkpoint from it (0: each lambda from scratch)")
    ap.add_argument("--warm-lambda", type=float, help="default: the geometric middle of --lambdas")
    ap.add_argument("--reuse-warm", action="store_true", help="load OUT/NAME-warm-lambdaL.pth.tar when it exists")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    ap.add_argument("--warm-lr", type=float, help="the warm start's learning rate (default --lr)")
    ap.add_argument("--lr-drop", type=float, default=0.8, help="fraction of each run's steps after which lr / 10")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=64, help="a multiple of 64")
    ap.add_argument("--cheng-n", type=int, default=32, help="Cheng2020Anchor's N (CompressAI's zoo: 128 and 192)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (see Speed above)")
    ap.add_argument("--models", default="cheng2020,my_model", help="which to train, comma-separated")
    ap.add_argument("--log-every", type=int, default=500, help="print the running loss every N steps (0: never)")
    args = ap.parse_args()
    wanted = set(args.models.split(","))
    if unknown := wanted - {"cheng2020", "my_model"}:
        ap.error(f"--models: unknown {sorted(unknown)}; choose from cheng2020, my_model")
    if args.crop <= 0 or args.crop % 64:
        ap.error(f"--crop: {args.crop} is not a positive multiple of 64")
    if min(args.steps, args.batch) <= 0 or args.warm_steps < 0:
        ap.error("--steps and --batch must be > 0, --warm-steps >= 0")
    for folder in args.data:
        if not Path(folder).is_dir():
            ap.error(f"--data: {folder} is not a folder")
    torch.set_num_threads(args.threads)
    # torch 2.14.1's oneDNN (mkldnn) CPU backward corrupts the heap on Cheng2020Anchor ("corrupted
    # double-linked list", an abort, in most runs on this machine); its native kernels do not.
    # Still so: rechecked with oneDNN on, a 10-step N = 16 run (batch 2, 64 px, one thread) hung at
    # 1% CPU for 10 minutes and was killed; at one thread oneDNN is no faster anyway
    torch.backends.mkldnn.enabled = False
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from compressai.models import Cheng2020Anchor
    from my_model import SmallFactorized

    files = sorted(p for folder in args.data for p in Path(folder).iterdir() if p.suffix.lower() in SUFFIXES)
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    images = [img for img in images if min(img.shape[:2]) >= args.crop]
    if not images:
        ap.error(f"--data: no photo of at least {args.crop} x {args.crop} px in {', '.join(args.data)}")
    print(f"{len(images)} training photos from {', '.join(args.data)}", flush=True)
    lambdas = args.lambdas
    warm_lambda = args.warm_lambda or float(f"{math.exp(np.mean(np.log(lambdas))):.4g}")
    out = Path(args.out)
    for name, make in (("cheng2020", lambda: Cheng2020Anchor(N=args.cheng_n)), ("my_model", SmallFactorized)):
        if name not in wanted:
            continue
        (out / name).mkdir(parents=True, exist_ok=True)
        warm = None
        if args.warm_steps:
            warm_path = out / f"{name}-warm-lambda{warm_lambda}.pth.tar"
            if args.reuse_warm and warm_path.exists():
                warm = torch.load(warm_path, map_location="cpu", weights_only=False)["state_dict"]
                print(f"{name} warm start: loaded {warm_path}", flush=True)
            else:
                t0 = time.perf_counter()
                net = make()
                loss = train(net, images, warm_lambda, args.warm_steps, args.batch, args.crop, 0, warm_path,
                             args.warm_lr or args.lr, args.lr_drop, args.log_every, f"{name} warm")
                warm = net.state_dict()
                print(f"{name} warm start, lambda {warm_lambda}: {args.warm_steps} steps, loss {loss:.4f}, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
        for i, lmbda in enumerate(lambdas):
            t0 = time.perf_counter()
            net = make()
            if warm is not None:
                net.load_state_dict(warm)
            loss = train(net, images, lmbda, args.steps, args.batch, args.crop, 1,
                         out / name / f"q{i + 1}-lambda{lmbda}.pth.tar", args.lr, args.lr_drop, args.log_every,
                         f"{name} lambda {lmbda}")
            print(f"{name} lambda {lmbda}: {args.steps} steps, loss {loss:.4f}, {time.perf_counter() - t0:.0f} s",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
