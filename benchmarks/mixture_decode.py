"""Decode time of a Gaussian mixture (K = 3) against one Gaussian (K = 1), in one run (issue 26).

The paper says a mixture adds no asymptotic cost; rdbench's mixture coder builds a probability
table per symbol (2W + 1 entries, W the stream's window half-width). This script times, one
image after another and interleaved (these machines are noisy: only ratios within one run count):

- K = 1's decode,
- K = K's decode with rdbench's tables (symbols.MixtureCoder._pmf: edge by edge, one numpy pass
  per wavefront),
- K = K's decode with the reference distributions and tables of tests/test_mixture_tables.py
  (torch, bin by bin: what rdbench did before issue 26),

each split as complexity.decode_time_split splits it (wall seconds) and its total in CPU seconds of
this process (one torch thread: the decode's own work, which other processes on a shared machine
do not inflate as they inflate wall time; both are reported, as medians), and checks that the two table
constructions give byte-identical streams and identical decoded latents and pixels.

    python benchmarks/mixture_decode.py --k1 K1.pt --kK K3.pt --kodak ../shared/datasets/kodak \
        [--images 3] [--repeats 3] [--rate R] [--json FILE]

The checkpoints should be trained models of the same N, M, k (an untrained mixture predicts so
badly that its window W, and so its cost, is unrepresentative).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rdbench.learned import bitstream  # noqa: E402
from rdbench.learned.checkpoint import load  # noqa: E402
from rdbench.learned.coding import LatentCoder  # noqa: E402
from rdbench.learned.complexity import decode_time_split  # noqa: E402
from rdbench.learned.symbols import MixtureCoder  # noqa: E402
from tests.test_mixture_tables import reference_distribution, reference_pmf  # noqa: E402


def _reference(self, weights, means, stds, centres, half_width):
    return reference_pmf(self.K, weights, means, stds, centres, half_width)


def _reference_distribution(self, params):
    return tuple(t.numpy() for t in reference_distribution(self, params))


FAST = (MixtureCoder._pmf, MixtureCoder._distribution)


def use(reference: bool) -> None:
    """The mixture coder's distributions and tables: rdbench's, or the reference (before issue 26)."""
    MixtureCoder._pmf, MixtureCoder._distribution = (_reference, _reference_distribution) if reference else FAST


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k1", required=True, help="checkpoint with K = 1")
    ap.add_argument("--kK", required=True, help="checkpoint with K >= 2 (same N, M, k)")
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="timed decodes per image and coder")
    ap.add_argument("--rate", type=int, default=None, help="rate index (default: the middle one)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(Path(args.kodak).glob("kodim*.png"))[: args.images]]
    one, mix = load(args.k1), load(args.kK)
    K = mix.model.config.K
    if one.model.config.K != 1 or K < 2:
        sys.exit("--k1 must be a K = 1 checkpoint and --kK one with K >= 2")
    rate = len(one.model.config.rates) // 2 if args.rate is None else args.rate
    coders = {"K=1": LatentCoder(one.model, one.model_id), f"K={K}": LatentCoder(mix.model, mix.model_id),
              f"K={K} reference tables": LatentCoder(mix.model, mix.model_id)}
    splits = {name: [] for name in coders}
    identical = True
    windows = []
    for image in images:
        streams = {}
        for name, coder in coders.items():
            use("reference" in name)
            streams[name] = coder.encode(image, rate)
        identical &= streams[f"K={K}"] == streams[f"K={K} reference tables"]
        windows.append(bitstream.parse(streams[f"K={K}"], mix.model_id).symbol_range)
        decoded = {}
        for name, coder in coders.items():  # warm-up, and the identity check
            use("reference" in name)
            decoded[name] = coder.decode_with_latent(streams[name])
        a, b = decoded[f"K={K}"], decoded[f"K={K} reference tables"]
        identical &= np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
        for _ in range(args.repeats):  # interleaved: the machine's load falls on all coders alike
            for name, coder in coders.items():
                use("reference" in name)
                cpu = time.process_time()
                split = decode_time_split(coder, streams[name])
                split["cpu_s"] = time.process_time() - cpu  # this process's CPU seconds: what other processes steal is not in it
                splits[name].append(split)
    use(False)
    # the median of the decodes of each coder: this machine is shared, and a decode that another
    # process slowed down is an outlier, not the coder's cost
    mean = {name: {k: float(np.median([s[k] for s in rows])) for k in rows[0]} for name, rows in splits.items()}
    for name, m in mean.items():
        print(f"{name:>24}: decode {m['total_s']:.3f} s/image, {m['cpu_s']:.3f} CPU s (medians; transforms {m['transforms_s']:.3f}, entropy parameters "
              f"{m['entropy_parameters_s']:.3f}, entropy coding {m['entropy_coding_s']:.3f})", file=sys.stderr)
    summary = {
        f"K={K} / K=1 decode, CPU seconds": mean[f"K={K}"]["cpu_s"] / mean["K=1"]["cpu_s"],
        f"K={K} reference tables / K=1 decode, CPU seconds": mean[f"K={K} reference tables"]["cpu_s"] / mean["K=1"]["cpu_s"],
        f"K={K} / K=1 decode": mean[f"K={K}"]["total_s"] / mean["K=1"]["total_s"],
        f"K={K} reference tables / K=1 decode": mean[f"K={K} reference tables"]["total_s"] / mean["K=1"]["total_s"],
        f"K={K} entropy coding, reference / rdbench": mean[f"K={K} reference tables"]["entropy_coding_s"] / mean[f"K={K}"]["entropy_coding_s"],
        f"K={K} window half-width W per image": windows,
        "streams, latents and pixels identical (rdbench vs reference tables)": bool(identical),
    }
    for k, v in summary.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")  # noqa: E501
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": " ".join(["python", *sys.argv]), "images": len(images), "repeats": args.repeats, "rate": rate,
            "torch_threads": torch.get_num_threads(), "checkpoints": {"K=1": args.k1, f"K={K}": args.kK},
            "model": one.model.config.label(), "time": time.strftime("%Y-%m-%d %H:%M"),
            "per_decode_median": mean, "summary": summary,
        }, indent=1))
    if not identical:
        sys.exit("the two table constructions gave different streams or decodes")


if __name__ == "__main__":
    main()
