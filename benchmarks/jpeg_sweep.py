"""Wall time of the JPEG sweep of CompressAI's run-benchmarks.sh, rdbench versus CompressAI.

Both run in this process's machine, one after the other, on the same Kodak folder: JPEG quality
5, 10, ..., 95 on all 24 images, PSNR and MS-SSIM, all cores. Then rdbench runs the same command
again with everything stored (the "rerun"). Also compares rdbench's mean curve with CompressAI's
published jpeg.json at every quality.

The bare work is measured in the same run: Pillow's load + JPEG encode + decode of every item,
nothing else, in a pool of the same number of processes (`bare_s`). Against it, in the same run:

- `metrics_over_bare`: the default metric set alone (three PSNRs and MS-SSIM) on the same 456
  decoded items, in a pool of the same size, each original prepared once per process as rdbench
  does (issue 24's goal: the default set under 3x the bare work);
- `rdbench_no_report_over_bare`: the whole `rdbench run` command up to its last stored row
  (`--no-report`: start-up, dataset check, coding, metrics, storing);
- `rdbench_over_bare`: the same command with its report (report.md, figures, report.html), the
  way a user runs it.

    python benchmarks/jpeg_sweep.py --kodak ../shared/datasets/kodak [--json results/benchmarks/jpeg_sweep.json]
                                   [--no-compressai]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rdbench.conventions import usable_cores
from vs_eval_model import cpu  # the same CPU line every benchmark prints (benchmarks/ is the script's folder)
from rdbench.packaged import reference_folder

QUALITIES = ",".join(str(q) for q in range(5, 100, 5))


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def _items(kodak: str) -> list[tuple[str, int]]:
    """The sweep's 456 items: every Kodak PNG at every quality of QUALITIES."""
    return [(str(p), q) for p in sorted(Path(kodak).glob("*.png")) for q in range(5, 100, 5)]


def _jpeg_roundtrip(pixels, quality: int):
    """Pillow's JPEG encode + decode of an H x W x 3 array: the coding a sweep item does."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _bare_item(job: tuple[str, int]) -> int:
    """Pillow's load + JPEG encode + decode of one item: the work a sweep exists to do."""
    import numpy as np
    from PIL import Image

    path, quality = job
    return _jpeg_roundtrip(np.asarray(Image.open(path).convert("RGB")), quality).size


def bare_seconds(kodak: str, jobs: int) -> float:
    from multiprocessing import Pool

    items = _items(kodak)
    with Pool(jobs) as pool:
        pool.map(_bare_item, items[:jobs])  # processes started and Pillow imported, untimed
        t0 = time.perf_counter()
        pool.map(_bare_item, items, chunksize=1)
        return time.perf_counter() - t0


def _metrics_item(job: tuple[str, int]) -> float:
    """CPU-bound seconds of the default metric set on one item (its original prepared once per process)."""
    import numpy as np
    from PIL import Image

    from rdbench.metrics.measuring import Reference

    path, quality = job
    t0 = time.perf_counter()
    reference = _REFERENCES.get(path)
    if reference is None:
        _REFERENCES.clear()
        reference = _REFERENCES[path] = Reference(np.asarray(Image.open(path).convert("RGB")))
    prepared = time.perf_counter() - t0
    decoded = _jpeg_roundtrip(reference.pixels, quality)
    t1 = time.perf_counter()
    reference.measure(decoded)
    return prepared + time.perf_counter() - t1


_REFERENCES: dict = {}


def metrics_seconds(kodak: str, jobs: int) -> float:
    """The default set's time on every item, summed over the pool's processes and divided by their
    number: the wall time it would take alone."""
    from multiprocessing import Pool

    items = _items(kodak)
    with Pool(jobs) as pool:
        pool.map(_metrics_item, items[-jobs:])  # imports and a first measurement, untimed
        return sum(pool.map(_metrics_item, items, chunksize=len(items) // (4 * jobs) or 1)) / jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True, help="folder with the 24 Kodak PNGs")
    ap.add_argument("--jobs", type=int, default=usable_cores())
    ap.add_argument("--reference", default=str(reference_folder() / "jpeg.json"),
                    help="published curve to compare with")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--no-compressai", action="store_true", help="rdbench and the bare work only")
    args = ap.parse_args()
    env = {**os.environ, "RDBENCH_KODAK": args.kodak}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rdbench"
        rd_cmd = [sys.executable, "-m", "rdbench", "run", "--dataset", "kodak", "--codec", "jpeg", "--quality", QUALITIES,
                  "--workers", str(args.jobs), "--out", str(out), "--no-progress"]
        ca_cmd = [sys.executable, "-m", "compressai.utils.bench", "jpeg", args.kodak, "-q", QUALITIES, "-j", str(args.jobs)]
        bare_s = bare_seconds(args.kodak, args.jobs)
        metrics_s = metrics_seconds(args.kodak, args.jobs)
        no_report_s, _ = timed([*rd_cmd[:rd_cmd.index("--out") + 1], str(Path(tmp) / "no-report"), "--no-progress",
                                "--no-report"], env)
        rdbench_s, _ = timed(rd_cmd, env)
        rerun_s, _ = timed(rd_cmd, env)
        compressai_s, ca_stdout = timed(ca_cmd, env) if not args.no_compressai else (None, "")

        import pandas as pd

        from rdbench.bench.store import read_results

        df = read_results(out)
        curve = df.groupby("quality")[["bpp", "psnr_rgb", "ms_ssim"]].mean().sort_index()
    figures = {
        "machine_cores": args.jobs,
        "items": int(len(df)),
        "rdbench_s": round(rdbench_s, 2),
        "rdbench_rerun_s": round(rerun_s, 2),
        "bare_pillow_s": round(bare_s, 2),
        "metrics_s": round(metrics_s, 2),
        "metrics_over_bare": round(metrics_s / bare_s, 2),
        "rdbench_no_report_s": round(no_report_s, 2),
        "rdbench_no_report_over_bare": round(no_report_s / bare_s, 2),
        "rdbench_over_bare": round(rdbench_s / bare_s, 2),
        "cpu": cpu(),
    }
    if compressai_s is not None:
        figures.update(compressai_bench_s=round(compressai_s, 2), speedup=round(compressai_s / rdbench_s, 2),
                       compressai_over_bare=round(compressai_s / bare_s, 2))
    if compressai_s is None:
        print(json.dumps(figures, indent=2))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"command": sys.argv, **figures}, indent=2) + "\n")
        return
    # the same sweep measured by CompressAI's code in this run: the means must agree
    live = json.loads(ca_stdout[ca_stdout.index("{"):])["results"]
    live_df = pd.DataFrame({"bpp_ca": live["bpp"], "psnr_ca": live["psnr-rgb"], "ms_ssim_ca": live["ms-ssim-rgb"]},
                           index=list(range(5, 100, 5)))
    both = curve.join(live_df)
    figures["vs_compressai_live_max_abs_bpp_diff"] = float((both["bpp"] - both["bpp_ca"]).abs().max())
    figures["vs_compressai_live_max_abs_psnr_diff_db"] = float((both["psnr_rgb"] - both["psnr_ca"]).abs().max())
    figures["vs_compressai_live_max_abs_ms_ssim_diff"] = float((both["ms_ssim"] - both["ms_ssim_ca"]).abs().max())
    print(json.dumps(figures, indent=2))
    ref_path = Path(args.reference)
    if ref_path.is_file():
        ref = json.loads(ref_path.read_text())["results"]
        ref_df = pd.DataFrame({"bpp_ref": ref["bpp"], "psnr_ref": ref["psnr-rgb"]}, index=list(range(5, 100, 5)))
        cmp = curve.join(ref_df)
        cmp["bpp_diff_%"] = 100 * (cmp["bpp"] / cmp["bpp_ref"] - 1)
        cmp["psnr_diff_dB"] = cmp["psnr_rgb"] - cmp["psnr_ref"]
        print(cmp.round(4).to_string())
        figures["max_abs_bpp_diff_pct"] = round(float(cmp["bpp_diff_%"].abs().max()), 3)
        figures["max_abs_psnr_diff_db"] = round(float(cmp["psnr_diff_dB"].abs().max()), 4)
        print(f"vs {ref_path.name}: max |bpp diff| {figures['max_abs_bpp_diff_pct']}%, max |PSNR diff| {figures['max_abs_psnr_diff_db']} dB")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"command": sys.argv, **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
