"""Context-model coding speed and agreement: rdbench versus CompressAI on identical weights.

For mbt2018 (joint) and mbt2018-mean at the same N, M, one process, one image after another:
CompressAI's own `compress` / `decompress` (per-position Python loop for mbt2018) and rdbench's
coder (wavefronts, exact parameters) on the same weights and images. Reports seconds per image,
the ratios the learned-codec issue asks for, and agreement of bpp and PSNR.

Weights: a CompressAI checkpoint (--joint FILE, --mean FILE: e.g. zoo files), or CompressAI's own
random initialisation with --seed (the default; no download needed). Random weights exercise the
same code at the same size, but their rates are not those of a trained model.

    python benchmarks/learned_speed.py --kodak ../shared/datasets/kodak [--images 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rdbench.learned.checkpoint import load
from rdbench.learned.coding import LatentCoder


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / mse) if mse else float("inf")


def compressai_net(cls_name: str, N: int, M: int, path: str | None, seed: int):
    import compressai.models as cm

    torch.manual_seed(seed)
    net = getattr(cm, cls_name)(N, M)
    if path:
        from rdbench.learned.checkpoint import _compressai_state_dict

        net.load_state_dict(_compressai_state_dict(torch.load(path, map_location="cpu", weights_only=True)))
    net.update(force=True)
    return net.eval()


def time_compressai(net, image: np.ndarray) -> dict:
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        t0 = time.perf_counter()
        out = net.compress(x)
        t1 = time.perf_counter()
        rec = net.decompress(out["strings"], out["shape"])
        t2 = time.perf_counter()
    x_hat = rec["x_hat"][0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    n_bytes = sum(len(s[0]) for s in out["strings"])
    return {"enc_s": t1 - t0, "dec_s": t2 - t1, "bpp": 8 * n_bytes / (image.shape[0] * image.shape[1]), "psnr": psnr(image, x_hat)}


def time_rdbench(coder: LatentCoder, image: np.ndarray) -> dict:
    t0 = time.perf_counter()
    data = coder.encode(image)
    t1 = time.perf_counter()
    x_hat = coder.decode(data)
    t2 = time.perf_counter()
    return {"enc_s": t1 - t0, "dec_s": t2 - t1, "bpp": 8 * len(data) / (image.shape[0] * image.shape[1]), "psnr": psnr(image, x_hat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--images", type=int, default=3, help="first N Kodak images")
    ap.add_argument("--N", type=int, default=192)
    ap.add_argument("--M", type=int, default=192)
    ap.add_argument("--joint", help="CompressAI mbt2018 checkpoint (default: random init)")
    ap.add_argument("--mean", help="CompressAI mbt2018-mean checkpoint (default: random init)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(Path(args.kodak).glob("kodim*.png"))[: args.images]]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, cls_name, path in (("joint", "JointAutoregressiveHierarchicalPriors", args.joint),
                                      ("mean-scale", "MeanScaleHyperprior", args.mean)):
            net = compressai_net(cls_name, args.N, args.M, path, args.seed)
            ckpt = Path(tmp) / f"{label}.pth"
            torch.save({"state_dict": net.state_dict()}, ckpt)
            loaded = load(ckpt)
            assert loaded.model.config.variant == label
            coder = LatentCoder(loaded.model, loaded.model_id)
            for impl, fn in (("compressai", lambda im: time_compressai(net, im)), ("rdbench", lambda im: time_rdbench(coder, im))):
                per_image = [fn(im) for im in images]
                rows[f"{impl} {label}"] = {k: float(np.mean([r[k] for r in per_image])) for k in per_image[0]}
                r = rows[f"{impl} {label}"]
                print(f"{impl:>10} {label:<10} enc {r['enc_s']:.3f} s  dec {r['dec_s']:.3f} s  bpp {r['bpp']:.5f}  PSNR {r['psnr']:.4f} dB", file=sys.stderr)
    j, m, cj = rows["rdbench joint"], rows["rdbench mean-scale"], rows["compressai joint"]
    cm_ = rows["compressai mean-scale"]
    summary = {
        "rdbench joint decode / rdbench mean-scale decode": j["dec_s"] / m["dec_s"],
        "compressai mbt2018 compress / rdbench joint encode": cj["enc_s"] / j["enc_s"],
        "compressai mbt2018 decompress / rdbench joint decode": cj["dec_s"] / j["dec_s"],
        "joint bpp, rdbench vs compressai (%)": 100 * (j["bpp"] / cj["bpp"] - 1),
        "joint PSNR, rdbench - compressai (dB)": j["psnr"] - cj["psnr"],
        "mean-scale bpp, rdbench vs compressai (%)": 100 * (m["bpp"] / cm_["bpp"] - 1),
        "mean-scale PSNR, rdbench - compressai (dB)": m["psnr"] - cm_["psnr"],
    }
    for k, v in summary.items():
        print(f"{k}: {v:.4g}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": " ".join(["python", *sys.argv]), "images": len(images), "N": args.N, "M": args.M,
            "weights": {"joint": args.joint or f"random init, seed {args.seed}", "mean-scale": args.mean or f"random init, seed {args.seed}"},
            "torch_threads": torch.get_num_threads(), "per_image_mean": rows, "summary": summary,
        }, indent=1))


if __name__ == "__main__":
    main()
