"""Peak memory per pixel of measuring one reconstruction with a metric (issue 22's bytes-per-pixel goal).

For each metric, a fresh child process loads its library and network on a small crop first (so
that imports, weights and allocator pools are in the baseline), then prepares the original and
measures one JPEG reconstruction (quality 50) of a large image: Kodak images tiled to
--megapixels. Printed: the growth of the child's peak resident memory (ru_maxrss) over that
baseline, per pixel of the large image; the two uint8 images themselves are 6 of those bytes.

`--random-weights`: lpips and dists on random weights of the published shapes (metric_cost.py's
`write_random_weights`, written by this process so that the child's peak is the measurement's), where the published weights cannot be fetched: the same memory, meaningless values.

    python benchmarks/metric_memory.py --kodak ../shared/datasets/kodak --megapixels 2 vif fsim nlpd iw_ssim
    python benchmarks/metric_memory.py --kodak ../shared/datasets/kodak --megapixels 2 --random-weights dists
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import io, json, resource, sys
from pathlib import Path
import numpy as np
from PIL import Image
from rdbench.metrics import Reference, registry

kodak, name, mpx, random_weights = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
if random_weights:
    sys.path.insert(0, sys.argv[5])  # benchmarks/: metric_cost.py's use_weights_from
    from metric_cost import use_weights_from
    use_weights_from(Path(random_weights))
paths = sorted(Path(kodak).glob("*.png"))
tile = np.asarray(Image.open(paths[0]).convert("RGB"))
side = int((mpx * 1e6 * tile.shape[1] / tile.shape[0]) ** 0.5)
reps = (int(np.ceil(mpx * 1e6 / side / tile.shape[0])) + 1, int(np.ceil(side / tile.shape[1])) + 1, 1)
big = np.ascontiguousarray(np.tile(tile, reps)[: int(mpx * 1e6 / side), :side])

def jpeg(x):
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=50)
    return np.asarray(Image.open(buf).convert("RGB"))

metrics = registry.parse(name)
small = np.ascontiguousarray(tile[:256, :256])
Reference(small, metrics).measure(jpeg(small))  # imports, network, allocator: the baseline
decoded = jpeg(big)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ref = Reference(big, metrics)
values = ref.measure(decoded)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pixels = big.shape[0] * big.shape[1]
print(json.dumps({"metric": name, "width": big.shape[1], "height": big.shape[0], "values": values,
                  "reasons": ref.reasons, "bytes_per_pixel": (peak - base) * 1024 / pixels}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True, help="folder with the Kodak PNGs")
    ap.add_argument("--megapixels", type=float, default=2.0, help="size of the measured image")
    ap.add_argument("--random-weights", action="store_true",
                    help="lpips, dists: random weights of the published shapes (memory only)")
    ap.add_argument("metrics", nargs="+", help="metric names")
    args = ap.parse_args()
    here = Path(__file__).resolve().parent
    random_weights = ""
    if args.random_weights:
        sys.path.insert(0, str(here))
        from metric_cost import write_random_weights

        from rdbench.metrics import registry

        random_weights = str(write_random_weights(registry.parse(",".join(args.metrics))))
    for name in args.metrics:
        done = subprocess.run([sys.executable, "-c", CHILD, args.kodak, name, str(args.megapixels), random_weights,
                               str(here)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"{name}: failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name:<10} {row['width']}x{row['height']}: {row['bytes_per_pixel']:7.0f} bytes/pixel "
              f"{row['reasons'] or ''}", flush=True)


if __name__ == "__main__":
    main()
