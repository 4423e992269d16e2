"""rdbench's VTM (codecs/vtm.toml) on Kodak against CompressAI's published vtm.json, per QP.

Reads a result folder of `rdbench run --dataset kodak --codec vtm` (any subset of the QPs
47, 42, ..., 12) and prints, for each QP measured on all 24 images, rdbench's mean bpp, PSNR-RGB
and MS-SSIM beside the published means (vtm.json lists its 8 points in QP order 47 .. 12), with
the differences, and the mean encode time per image.

    RDBENCH_VTM_DIR=/path/to/VTM/bin rdbench run --dataset kodak --codec vtm --quality 47 --out results/anchors/kodak-vtm
    python benchmarks/vtm_agreement.py results/anchors/kodak-vtm
"""

from __future__ import annotations

import argparse
import json

from rdbench.bench.store import read_results
from rdbench.packaged import reference_folder

PUBLISHED_QPS = [47, 42, 37, 32, 27, 22, 17, 12]  # the order of vtm.json's points (CompressAI's bench run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="result folder of an rdbench run of codec vtm on kodak")
    args = ap.parse_args()
    published = json.loads((reference_folder() / "vtm.json").read_text())["results"]
    rows = read_results(args.results)
    rows = rows[(rows["status"] == "ok") & (rows["codec"] == "vtm") & (rows["dataset"] == "kodak")]
    print(f"{'QP':>3} {'images':>6} {'bpp':>9} {'published':>9} {'diff':>7} {'PSNR':>8} {'published':>9} {'diff':>7} "
          f"{'MS-SSIM':>8} {'published':>9} {'enc s/img':>9}  version")
    for qp in PUBLISHED_QPS:
        here = rows[rows["quality"].astype(float) == qp]
        if here["image"].nunique() != 24:
            continue
        k = PUBLISHED_QPS.index(qp)
        bpp, psnr, ms = here["bpp"].mean(), here["psnr_rgb"].mean(), here["ms_ssim"].mean()
        pb, pp, pm = published["bpp"][k], published["psnr-rgb"][k], published["ms-ssim-rgb"][k]
        print(f"{qp:>3} {24:>6} {bpp:>9.5f} {pb:>9.5f} {100 * (bpp / pb - 1):>+6.2f}% {psnr:>8.3f} {pp:>9.3f} "
              f"{psnr - pp:>+7.3f} {ms:>8.5f} {pm:>9.5f} {here['enc_s'].mean():>9.1f}  "
              f"{', '.join(sorted(set(here['codec_version'])))}")


if __name__ == "__main__":
    main()
