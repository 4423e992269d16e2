"""Size, time and peak memory of report.html's per-image view at N images (issue 22).

The per-image view is the part of report.html that grows with the image count: N synthetic
images x 3 codecs x 6 qualities of ok rows, built into its plotly figure and written as HTML
(plotly.js left out), in this process; prints one line and, with --json, writes the figures.

    python benchmarks/report_html_size.py 3000
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rdbench.analysis.html import _per_image_plot


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", type=int, nargs="?", default=3000)
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    rows = pd.DataFrame([{"image": f"img{i:05d}.png", "codec": c, "quality": 10 + 10 * q, "status": "ok",
                          "bpp": 0.1 * (q + 1) + rng.random() * 0.01, "psnr_rgb": 25 + 2 * q + rng.random()}
                         for i in range(args.images) for c in ("jpeg", "webp", "jpeg2000") for q in range(6)])
    started = time.perf_counter()
    text = _per_image_plot(rows, "psnr_rgb", "per image").to_html(full_html=False, include_plotlyjs=False)
    result = {"images": args.images, "html_mb": len(text) / 1e6, "seconds": time.perf_counter() - started,
              "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(f"{args.images} images: {result['html_mb']:.1f} MB, {result['seconds']:.1f} s, peak {result['peak_mb']:.0f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
