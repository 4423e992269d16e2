"""Each metric's cost per megapixel, beside the bare Pillow work of one JPEG item.

For every metric of the registry that can run here: the seconds per megapixel of preparing an
original (`prepare_s_per_mpx`, once per image: a cached reference's statistics, a PNG written)
and of measuring one reconstruction of it (`measure_s_per_mpx`, once per item), median over the
images, on JPEG reconstructions (quality 50) of the first N Kodak images, one thread. `bare`
is the same for Pillow's load + JPEG encode + decode of the item, the work a classical sweep
exists to do; `default_set_over_bare` is the default metrics' measure cost over it.

`--random-weights`: the metrics that need network weights (lpips, dists) run on torchvision's
randomly initialised AlexNet / VGG16 (seed 0) saved under the published file names in a temporary
folder, in place of the published weights (where those cannot be fetched): the same shapes, so the
same arithmetic and the same cost, but meaningless values. Figures so measured say it
(`"weights": "random, same shapes"`).

    python benchmarks/metric_cost.py --kodak ../shared/datasets/kodak [--images 4] [--metric vif,fsim] [--json results/benchmarks/metric_cost.json]
    python benchmarks/metric_cost.py --kodak ../shared/datasets/kodak --metric lpips,dists --random-weights
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from rdbench.metrics import Reference, registry, weights


RANDOM_WEIGHTS = "random, same shapes"  # the label of figures measured with write_random_weights()


def write_random_weights(metrics) -> Path:
    """A temporary folder holding, for each weights file of `metrics`, a file of that name with
    torchvision's random initialisation (seed 0) of the same network: for costs and memory only
    (same shapes, same arithmetic), never for values."""
    import atexit
    import shutil
    import tempfile

    import torch
    import torchvision

    networks = {"alexnet-owt-7be5be79.pth": torchvision.models.alexnet, "vgg16-397923af.pth": torchvision.models.vgg16}
    folder = Path(tempfile.mkdtemp(prefix="rdbench-random-weights-"))
    atexit.register(shutil.rmtree, folder, True)  # VGG16's is 528 MB
    for file in {f for m in metrics for f in m.weight_files}:
        torch.manual_seed(0)
        torch.save(networks[file.name]().state_dict(), folder / file.name)
    return folder


def use_weights_from(folder: Path) -> None:
    """From here on, this process's `weights.cached` takes a file of `folder` before the checked
    published one (benchmarks/metric_memory.py's child process calls it too)."""
    published = weights.cached
    weights.cached = lambda file: folder / file.name if (folder / file.name).is_file() else published(file)


def seconds(function, repeats: int) -> float:
    """Median wall seconds of `function()` over `repeats` calls (after one untimed call)."""
    function()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True, help="folder with the Kodak PNGs")
    ap.add_argument("--images", type=int, default=4, help="first N images")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--metric", help="only these metrics (NAME[,NAME...]; default: every one)")
    ap.add_argument("--random-weights", action="store_true",
                    help="lpips, dists: random weights of the published shapes (costs only; see above)")
    args = ap.parse_args()
    import importlib.util

    import cv2

    cv2.setNumThreads(1)
    if importlib.util.find_spec("torch"):  # the torch metrics (lpips, vif, fsim, ...): one thread too
        import torch

        torch.set_num_threads(1)
    paths = sorted(Path(args.kodak).glob("*.png"))[: args.images]
    if not paths:
        sys.exit(f"{args.kodak}: no PNG images")
    pairs = []
    bare = []
    for path in paths:
        def item(path=path):
            pixels = np.asarray(Image.open(path).convert("RGB"))
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, "JPEG", quality=50)
            return pixels, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))

        original, decoded = item()
        mpx = original.shape[0] * original.shape[1] / 1e6
        bare.append(seconds(item, args.repeats) / mpx)
        pairs.append((original, decoded, mpx))
    figures = {"images": len(paths), "megapixels_each": round(pairs[0][2], 4),
               "bare_pillow_load_encode_decode_s_per_mpx": statistics.median(bare), "metrics": {}}
    chosen_metrics = registry.parse(args.metric) if args.metric else list(registry.REGISTRY.values())
    if args.random_weights:
        use_weights_from(write_random_weights(chosen_metrics))
    for metric in [*chosen_metrics, None]:
        name = metric.name if metric else "default set"
        chosen = (metric,) if metric else registry.DEFAULT
        problem = next((p for p in (m.missing() for m in chosen) if p), None)
        if problem is None and any(weights.cached(f) is None for m in chosen for f in m.weight_files):
            problem = f"weights not in {weights.weights_dir()} (rdbench run --metric {name} fetches them)"
        if problem:
            figures["metrics"][name] = {"unavailable": problem}
            continue
        prepare, measure = [], []
        for original, decoded, mpx in pairs:
            prepare.append(seconds(lambda: Reference(original, chosen), args.repeats) / mpx)
            ref = Reference(original, chosen)
            measure.append(seconds(lambda: ref.measure(decoded), args.repeats) / mpx)
        random = args.random_weights and any(m.weight_files for m in chosen)
        figures["metrics"][name] = {"implementation": "; ".join(m.identity() for m in chosen),
                                    "prepare_s_per_mpx": statistics.median(prepare),
                                    "measure_s_per_mpx": statistics.median(measure),
                                    **({"weights": RANDOM_WEIGHTS} if random else {})}
        print(f"{name:<12} prepare {statistics.median(prepare) * 1e3:8.1f} ms/Mpx   measure "
              f"{statistics.median(measure) * 1e3:8.1f} ms/Mpx" + (f"   (weights: {RANDOM_WEIGHTS})" if random else ""),
              flush=True)
    default = figures["metrics"]["default set"]
    figures["default_set_over_bare"] = default["measure_s_per_mpx"] / figures["bare_pillow_load_encode_decode_s_per_mpx"]
    print(f"bare Pillow load+encode+decode {figures['bare_pillow_load_encode_decode_s_per_mpx'] * 1e3:.1f} ms/Mpx; "
          f"default metrics / bare = {figures['default_set_over_bare']:.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": sys.argv, **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
