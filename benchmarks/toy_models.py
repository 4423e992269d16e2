"""Train the README's toy models: a small Cheng 2020 (CompressAI's Cheng2020Anchor) and the
user's model of examples/my_model.py, one checkpoint per rate point, saved as CompressAI's
examples/train.py saves them ({"epoch", "state_dict", "loss", "optimizer", "aux_optimizer"}).

TOY MODELS: 600 steps on 64-px crops of the training photos (never Kodak), far from
converged; they show how rdbench measures any model, not how good Cheng 2020 is.

    nice python benchmarks/toy_models.py --data ../shared/datasets/train/div2k-valid-256 --out toy

Speed: one torch thread by default. On a machine whose cores are busy, two OpenMP threads made a
training step of the N = 32 Cheng 10 to 80 times slower than one thread (0.5-9.9 s against 0.12 s
per step at batch 4, measured on 2 shared cores), which is what made an earlier 60-step run take
693 s; oneDNN on or off made no difference at one thread (it stays off: see main).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

LAMBDAS = (0.0035, 0.0067, 0.0130, 0.0250)  # CompressAI's ladder, qualities 2 to 5 (MSE)


def crops(images: list[np.ndarray], n: int, side: int, rng: np.random.Generator) -> torch.Tensor:
    out = []
    for _ in range(n):
        img = images[rng.integers(len(images))]
        y, x = rng.integers(img.shape[0] - side + 1), rng.integers(img.shape[1] - side + 1)
        out.append(img[y:y + side, x:x + side])
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def train(net, images, lmbda: float, steps: int, batch: int, side: int, seed: int, path: Path, lr: float) -> float:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    opt, aux_opt = torch.optim.Adam(params, lr), torch.optim.Adam(aux, 1e-3)
    net.train()
    for step in range(steps):
        x = crops(images, batch, side, rng)
        out = net(x)
        bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / (batch * side * side)
        loss = lmbda * 255**2 * torch.mean((out["x_hat"] - x) ** 2) + bpp
        opt.zero_grad(), aux_opt.zero_grad()
        loss.backward()
        net.aux_loss().backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(), aux_opt.step()
    torch.save({"epoch": steps, "state_dict": net.state_dict(), "loss": float(loss.detach()),
                "optimizer": opt.state_dict(), "aux_optimizer": aux_opt.state_dict()}, path)
    return float(loss.detach())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="training photos (not Kodak)")
    ap.add_argument("--out", required=True, help="folder: cheng2020/ and my_model/, one checkpoint per lambda")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=64, help="a multiple of 64")
    ap.add_argument("--cheng-n", type=int, default=32, help="Cheng2020Anchor's N (CompressAI's zoo: 128 and 192)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (see Speed above)")
    ap.add_argument("--models", default="cheng2020,my_model", help="which to train, comma-separated")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # torch 2.14.1's oneDNN (mkldnn) CPU backward corrupts the heap on Cheng2020Anchor ("corrupted
    # double-linked list", an abort, in most runs on this machine); its native kernels do not.
    # Still so: rechecked with oneDNN on, a 10-step N = 16 run (batch 2, 64 px, one thread) hung at
    # 1% CPU for 10 minutes and was killed; at one thread oneDNN is no faster here anyway
    torch.backends.mkldnn.enabled = False
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from compressai.models import Cheng2020Anchor
    from my_model import SmallFactorized

    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    images = [img for img in images if min(img.shape[:2]) >= args.crop]
    wanted = set(args.models.split(","))
    out = Path(args.out)
    for name, make in (("cheng2020", lambda: Cheng2020Anchor(N=args.cheng_n)), ("my_model", SmallFactorized)):
        if name not in wanted:
            continue
        (out / name).mkdir(parents=True, exist_ok=True)
        for i, lmbda in enumerate(LAMBDAS):
            t0 = time.perf_counter()
            loss = train(make(), images, lmbda, args.steps, args.batch, args.crop, i, out / name / f"q{i + 1}-lambda{lmbda}.pth.tar",
                         args.lr)
            print(f"{name} lambda {lmbda}: {args.steps} steps, loss {loss:.3f}, {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
