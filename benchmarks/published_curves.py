"""rdbench's JPEG and WebP Kodak curves against CompressAI's published ones (jpeg.json, webp.json).

Runs (or reuses) the sweeps quality 5..95 step 5 on the 24 Kodak images and prints, per quality,
rdbench's mean bpp and PSNR beside the published means, with the differences. The published
curves were made with Pillow 7.1.2 (2020); small differences come from newer libjpeg-turbo and
libwebp.

    python benchmarks/published_curves.py --kodak ../shared/datasets/kodak --out results/kodak-sweeps
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pandas as pd

from rdbench.bench.store import read_results
from rdbench.packaged import reference_folder

REFERENCE = reference_folder()
QUALITIES = list(range(5, 100, 5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--out", required=True, help="result folder (reused: only missing items are measured)")
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "rdbench", "run", "--dataset", "kodak", "--codec", "jpeg,webp",
           "--quality", ",".join(map(str, QUALITIES)), "--out", args.out, "--no-progress"]
    subprocess.run(cmd, env={**os.environ, "RDBENCH_KODAK": args.kodak}, check=True)
    df = read_results(args.out)
    summary = {}
    for codec in ("jpeg", "webp"):
        ref = json.loads((REFERENCE / f"{codec}.json").read_text())
        published = pd.DataFrame({"bpp_pub": ref["results"]["bpp"], "psnr_pub": ref["results"]["psnr-rgb"]}, index=QUALITIES)
        ours = df[df.codec == codec].groupby("quality")[["bpp", "psnr_rgb"]].mean()
        table = ours.join(published)
        table["bpp_diff_%"] = 100 * (table["bpp"] / table["bpp_pub"] - 1)
        table["psnr_diff_dB"] = table["psnr_rgb"] - table["psnr_pub"]
        print(f"\n{codec} ({df[df.codec == codec].codec_version.iloc[0]}) vs published {ref['description']}")
        print(table.round(4).to_string())
        summary[codec] = {
            "max_abs_bpp_diff_pct": round(float(table["bpp_diff_%"].abs().max()), 3),
            "max_abs_psnr_diff_db": round(float(table["psnr_diff_dB"].abs().max()), 4),
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
