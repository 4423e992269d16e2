"""A QP-ladder codec measured by rdbench on Kodak against CompressAI's published curve of it, per QP.

For the codecs whose published Kodak curve CompressAI's bench made with the QP ladder
47, 42, ..., 12 (vtm, hm: vtm.json, hm.json; bpg: bpg_444_x265_ycbcr.json, each listing its 8
points in QP order 47 .. 12). Reads a result folder of `rdbench run --dataset kodak --codec CODEC`
(any subset of those QPs, any subset of the images) and prints a Markdown table, one line per QP
measured: rdbench's mean bpp, PSNR-RGB and MS-SSIM beside the published means, with the
differences, and the encode and decode time per image. The published points are means over all
24 Kodak images: a QP measured on fewer images gets its images named and its subset means, with no
published value beside them and no difference (a subset mean is not comparable with a 24-image mean).

With the bitstreams kept (`rdbench run --keep`), a QP whose 24 bitstreams are all there also gets
the PSNR-RGB of the published run's own convention, measured on the same bitstreams: the curve was
made by CompressAI's bench of June 2020 (compressai/utils/bench/__main__.py at 1f24fa6, which added
results/kodak/vtm.json and hm.json), whose PSNR compares the decoded planes converted back to RGB
in float32, clipped to [0, 1] and not rounded, with the *converted original* (its own 8-bit YCbCr
planes, back to RGB the same way), not with the original image. rdbench's rows compare the 8-bit
RGB reconstruction with the original PNG, as CompressAI's bench does today. The decoder runs again
(seconds); the encoder does not.

    RDBENCH_VTM_DIR=/path/to/VTM/bin rdbench run --dataset kodak --codec vtm --keep --out results/anchors/kodak-vtm
    python benchmarks/published_agreement.py results/anchors/kodak-vtm [--out results/anchors/kodak-vtm/agreement.md]
    RDBENCH_BPG_DIR=/path/to/bpg rdbench run --dataset kodak --codec bpg --out results/anchors/kodak
    python benchmarks/published_agreement.py results/anchors/kodak --codec bpg [--out results/anchors/kodak/bpg-agreement.md]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from rdbench.analysis.published import PUBLISHED_ALIASES
from rdbench.bench.measure import kept_path
from rdbench.bench.store import read_results
from rdbench.packaged import reference_folder

PUBLISHED_QPS = [47, 42, 37, 32, 27, 22, 17, 12]  # the order of the published points (CompressAI's bench run)
QP_LADDER_CODECS = ("vtm", "hm", "bpg")  # the codecs whose published Kodak curve is that QP ladder
KODAK_IMAGES = 24


def _images(names) -> str:
    """kodim01..kodim07, kodim09 for a sorted list of Kodak file names."""
    numbers = sorted(int(n.removeprefix("kodim").removesuffix(".png")) for n in names)
    runs, start = [], numbers[0]
    for prev, cur in zip(numbers, numbers[1:] + [None]):
        if cur != prev + 1:
            runs.append(f"kodim{start:02d}" + (f"..kodim{prev:02d}" if prev != start else ""))
            start = cur
    return ", ".join(runs)


def _seconds(s: float) -> str:
    """68 for VTM's minutes-long calls, 0.52 for BPG's sub-second ones."""
    return f"{s:.0f}" if s >= 10 else f"{s:.2f}"


def psnr_published_convention(original: np.ndarray, decoded_planes: bytes) -> float:
    """PSNR-RGB (peak 1) of a decoded YUV 4:4:4 frame against the converted original (the planes the
    encoder was given), both back in float RGB, clipped, not rounded: the convention of the run that
    made vtm.json (rdbench's own conversions, which are CompressAI's, before their final truncation)."""
    from rdbench.codecs.yuv import planes_to_float_rgb, rgb_to_planes

    colour, (h, w) = "ycbcr-bt709-compressai", original.shape[:2]
    given = planes_to_float_rgb(rgb_to_planes(original, colour), h, w, colour)
    diff = given - planes_to_float_rgb(decoded_planes, h, w, colour)
    mse = float(np.mean(np.square(diff, dtype=np.float64)))
    return math.inf if mse == 0 else -10 * math.log10(mse)


def published_convention(results: str, codec: str, here, kept: Path) -> float | None:
    """Mean over the QP's images of `psnr_published_convention` on the bitstreams `rdbench run
    --keep --out KEPT` wrote, or None when any is missing; a kept bitstream whose size is not the
    row's stops the script."""
    from rdbench.codecs import load
    from rdbench.data.datasets import resolve_dataset
    from rdbench.data.images import load_rgb

    coder = load(codec)
    paths = []
    for _, row in here.iterrows():
        path = kept_path(kept, row["image"], codec, row["quality"], "bitstreams", coder.extension)
        if not path.is_file():
            return None
        if path.stat().st_size != int(row["bytes"]):
            raise SystemExit(f"{path}: {path.stat().st_size} bytes, its row in {results} says {row['bytes']}")
        paths.append((row["image"], path))
    images = {ref.name: ref.path for ref in resolve_dataset("kodak").images}
    values = [psnr_published_convention(load_rgb(images[name]).pixels, coder.decode_output(path.read_bytes()))
              for name, path in paths]
    return float(np.mean(values))


def table(results: str, codec: str = "vtm", kept: Path | None = None) -> str:
    """codec: a spec as stored (`bpg`, not `bpg:subsampling=420`: the published curve is the default's)."""
    published_file = f"{PUBLISHED_ALIASES[codec]}.json"
    published = json.loads((reference_folder() / published_file).read_text())["results"]
    rows = read_results(results)
    rows = rows[(rows["status"] == "ok") & (rows["codec"] == codec) & (rows["dataset"] == "kodak")]
    kept = Path(results) if kept is None else kept
    yuv = codec in ("vtm", "hm") and (kept / "bitstreams").is_dir()  # BPG's published run measured its PNG output
    lines = ["| QP | images | bpp (rdbench) | bpp (published) | bpp diff | PSNR-RGB (rdbench) | PSNR-RGB (published) "
             "| PSNR diff | MS-SSIM (rdbench / published) | encode s per image: mean (min to max) | decode s |"
             + (" PSNR-RGB, published run's convention (diff) |" if yuv else ""),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if yuv else "")]
    convention_worst = None
    worst = {"bpp (relative)": 0.0, "PSNR-RGB (dB)": 0.0, "MS-SSIM": 0.0}  # largest |difference|, complete QPs
    for qp in PUBLISHED_QPS:
        here = rows[rows["quality"].astype(float) == qp]
        n = here["image"].nunique()
        if n == 0:
            continue
        k = PUBLISHED_QPS.index(qp)
        bpp, psnr, ms = here["bpp"].mean(), here["psnr_rgb"].mean(), here["ms_ssim"].mean()
        enc = here["enc_s"]
        timing = (f"{_seconds(enc.mean())} ({_seconds(enc.min())} to {_seconds(enc.max())}) "
                  f"| {here['dec_s'].mean():.2f}")
        if n == KODAK_IMAGES:
            pb, pp, pm = published["bpp"][k], published["psnr-rgb"][k], published["ms-ssim-rgb"][k]
            line = (f"| {qp} | all 24 | {bpp:.5f} | {pb:.5f} | {100 * (bpp / pb - 1):+.2f}% | {psnr:.3f} dB "
                    f"| {pp:.3f} dB | {psnr - pp:+.3f} dB | {ms:.5f} / {pm:.5f} | {timing} |")
            if yuv:
                theirs = published_convention(results, codec, here, kept)
                if theirs is None:
                    line += " bitstreams not kept |"
                else:
                    line += f" {theirs:.3f} dB ({theirs - pp:+.3f} dB) |"
                    convention_worst = max(convention_worst or 0.0, abs(theirs - pp))
            lines.append(line)
            for key, diff in zip(worst, (bpp / pb - 1, psnr - pp, ms - pm)):
                worst[key] = max(worst[key], abs(diff))
        else:
            these = "this image" if n == 1 else f"these {n}"
            lines.append(f"| {qp} | {n} of 24: {_images(here['image'])} | {bpp:.5f} ({these}) | not comparable: "
                         f"a 24-image mean | | {psnr:.3f} dB ({these}) | | | {ms:.5f} / | {timing} |"
                         + (" |" if yuv else ""))
    versions = sorted(set(rows["codec_version"]))
    complete = sum(rows[rows["quality"].astype(float) == qp]["image"].nunique() == KODAK_IMAGES for qp in PUBLISHED_QPS)
    largest = ", ".join(f"{key} {value:.2g}" for key, value in worst.items())
    return ("\n".join(lines) + f"\n\nrdbench rows: {', '.join(versions)}; "
            f"published: CompressAI results/image/kodak/{published_file}\n"
            + (f"Largest |difference| over the {complete} QPs measured on all 24 images: {largest}\n" if complete else "")
            + (f"Largest |difference| of the published run's convention, on the kept bitstreams: {convention_worst:.3f} dB\n"
               if convention_worst is not None else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="result folder of an rdbench run of the codec on kodak")
    ap.add_argument("--codec", choices=QP_LADDER_CODECS, default="vtm", help="the codec (default: vtm)")
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    ap.add_argument("--bitstreams", type=Path, help="the --out folder of a `rdbench run --keep` of the same items "
                    "(its bitstreams/CODEC/; default: RESULTS)")
    args = ap.parse_args()
    text = table(args.results, args.codec, args.bitstreams)
    print(text, end="")
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
