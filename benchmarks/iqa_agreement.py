"""Agreement of `vif`, `fsim`, `nlpd`, `iw_ssim` with their references: the figures of README's table.

- VIF: rdbench's value (IQA_pytorch) and piq's `vif_p` against LIVE's vifp_mscale.m algorithm
  written out in float64 (tests/test_metric_iqa.py), on JPEG reconstructions (qualities 10, 50, 90)
  of 256x320 crops of the first --images Kodak images; and on piq's goldhill pair against the
  MATLAB value piq's authors publish (0.2665).
- FSIM, NLPD: against the authors' MATLAB values on pyiqa's five calibration pairs (pyiqa 0.1.16's
  wheel ships the images: --calibration is its ResultsCalibra folder); NLPD on MATLAB's input
  (8-bit grey, as rgb2gray).
- FSIM, IW-SSIM: against the MATLAB values piq's authors publish for goldhill and TID2013's i01
  (--piq-assets: tests/assets of piq's repository).

    python benchmarks/iqa_agreement.py --kodak ../shared/datasets/kodak --calibration DIR --piq-assets DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from rdbench.metrics import Reference, iqa, registry
from tests.test_metric_agreement import jpeg_roundtrip as jpeg
from tests.test_metric_iqa import CALIBRATION, LUMA_BT709, MATLAB, vifp_mscale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--calibration", help="pyiqa's ResultsCalibra folder (ref_dir/, dist_dir/)")
    ap.add_argument("--piq-assets", help="piq's tests/assets folder (goldhill.gif, goldhill_jpeg.gif, I01.BMP, "
                    "i01_01_5.bmp)")
    args = ap.parse_args()
    import piq
    import torch

    torch.set_num_threads(1)
    rdbench_gap, piq_gap = [], []
    for path in sorted(Path(args.kodak).glob("*.png"))[: args.images]:
        a = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:256, :320])
        ref = Reference(a, registry.parse("vif"))
        for quality in (10, 50, 90):
            b = jpeg(a, quality)
            reference = vifp_mscale(a @ LUMA_BT709, b @ LUMA_BT709)
            rdbench_gap.append((abs(ref.measure(b)["vif"] - reference), f"{path.stem} at JPEG quality {quality}"))
            piq_gap.append(abs(piq.vif_p(iqa._luma(b), iqa._luma(a), data_range=1.0).item() - reference))
    worst, where = max(rdbench_gap)
    print(f"vif vs vifp_mscale algorithm, {len(rdbench_gap)} Kodak crops: rdbench (IQA_pytorch) max "
          f"{worst:.3g} ({where}), piq vif_p max {max(piq_gap):.3g}")
    if args.calibration:
        folder = Path(args.calibration)
        fsim_gap, nlpd_gap = [], []
        for name, fsim_matlab, nlpd_matlab in zip(CALIBRATION, MATLAB["fsim"], MATLAB["nlpd"]):
            a, b = (np.asarray(Image.open(folder / d / f"{name}.bmp").convert("RGB")) for d in ("ref_dir", "dist_dir"))
            fsim_gap.append(abs(Reference(a, registry.parse("fsim")).measure(b)["fsim"] - fsim_matlab))
            gray = [torch.from_numpy(np.asarray(Image.fromarray(p).convert("L"), np.float64)[None, None] / 255)
                    for p in (a, b)]
            nlpd_gap.append(abs(iqa._nlpd(*gray) - nlpd_matlab))
        print(f"fsim vs MATLAB (4 decimals), pyiqa's 5 pairs: max {max(fsim_gap):.2g}")
        print("nlpd vs MATLAB (4 decimals), pyiqa's 5 pairs: " + ", ".join(f"{g:.4f}" for g in nlpd_gap))
    if args.piq_assets:
        folder = Path(args.piq_assets)
        grey = [torch.from_numpy(np.asarray(Image.open(folder / f).convert("L"), np.float64)[None, None] / 255)
                for f in ("goldhill.gif", "goldhill_jpeg.gif")]
        rgb = [iqa._rgb(np.asarray(Image.open(folder / f).convert("RGB"))) for f in ("I01.BMP", "i01_01_5.bmp")]
        print(f"vif goldhill: rdbench {iqa._vif(*grey):.6f}, MATLAB 0.2665 (4 decimals)")
        print(f"iw_ssim goldhill vs MATLAB 0.886297251092821: {abs(iqa._iw_ssim(*grey) - 0.886297251092821):.2g}")
        print(f"fsim (grey) goldhill vs MATLAB 0.89691: "
              f"{abs(piq.fsim(grey[1], grey[0], data_range=1.0, chromatic=False).item() - 0.89691):.2g}; "
              f"FSIMc TID2013 i01 vs MATLAB 0.92587: {abs(iqa._fsim(*rgb) - 0.92587):.2g}")


if __name__ == "__main__":
    main()
