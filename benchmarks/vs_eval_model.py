"""The same checkpoint through CompressAI's `eval_model` and through `rdbench run`: whole
processes, one run, as a ratio; and the peak memory of one rdbench worker on a Kodak image.

Both tools code the same images with the same weights (a CompressAI checkpoint of --arch, by
default a seeded bmshj2018-factorized at N = M = 128, updated as eval_model updates it: random
weights run the same code at the same size, but their rates are not a trained model's). Wall
time counts each whole process from start to exit: imports, loading, coding, metrics, writing.

- eval_model: `python -m compressai.utils.eval_model checkpoint IMAGES -a ARCH -p CKPT`, which
  sets torch to 1 thread and codes the images one after another;
- eval_model --entropy-estimation: the same, with the forward pass's likelihoods instead of
  coding (what rdbench's `bpp_estimated` column is);
- rdbench: `rdbench run --dataset IMAGES --codec compressai:arch=ARCH,checkpoint=CKPT
  --quality 1 --workers W --no-report` (W worker processes, one torch thread each by default
  here so that the two tools do equal work per core; warm-up untimed inside the run, but inside
  the process's wall time). Its rows hold both the real bpp and bpp_estimated.
- with --before REV: rdbench as committed at REV too (`git archive`), the same way, in this run.

Equal work: one rdbench run gives what the two eval_model runs give together (real coding and
the entropy estimate), so `ratio_equal_work` = rdbench / (eval_model + eval_model
--entropy-estimation); `ratio_coding_only` = rdbench / eval_model alone (rdbench doing more).
Below 1 means rdbench was faster. Memory: ru_maxrss of the largest process of each tree.

    python benchmarks/vs_eval_model.py --kodak ../shared/datasets/kodak --images 12 --workers 2 --before main
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


# runs one command and prints, on its last stderr line, the peak RSS (KiB) of the largest process
# of its tree (ru_maxrss of waited-for children: a fresh wrapper per command, so no maximum carries over)
_WRAPPER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
            "sys.stderr.write(f'\\nMAXRSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n'); sys.exit(code)")


def timed(cmd: list[str], env: dict, cwd: Path | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MiB of the largest process of the tree, stdout)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak_kib = int(done.stderr.rsplit("MAXRSS ", 1)[1].split()[0])
    return seconds, peak_kib // 1024, done.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True, help="folder of Kodak PNGs")
    ap.add_argument("--images", type=int, default=4, help="the first N images")
    ap.add_argument("--arch", default="bmshj2018-factorized")
    ap.add_argument("--checkpoint", help="a CompressAI checkpoint of --arch (default: seeded random weights)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per rdbench worker (eval_model uses 1)")
    ap.add_argument("--before", metavar="REV", help="also time rdbench as committed at this git revision (e.g. main)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rdbench-vs-eval-"))
    images = work / "images"
    images.mkdir()
    for path in sorted(Path(args.kodak).glob("*.png"))[: args.images]:
        shutil.copy(path, images / path.name)
    ckpt = Path(args.checkpoint).resolve() if args.checkpoint else work / f"{args.arch}.pth.tar"
    if not args.checkpoint:
        import torch
        from compressai.zoo.image import model_architectures

        torch.manual_seed(0)
        net = model_architectures[args.arch](128, 128)
        torch.save({"state_dict": net.state_dict()}, ckpt)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))}

    eval_cmd = [sys.executable, "-m", "compressai.utils.eval_model", "checkpoint", str(images), "-a", args.arch, "-p", str(ckpt)]
    eval_s, eval_mib, eval_out = timed(eval_cmd, env)
    est_s, est_mib, est_out = timed([*eval_cmd, "--entropy-estimation"], env)
    spec = f"compressai:arch={args.arch},checkpoint={ckpt},threads={args.threads}"
    import pandas as pd

    def rdbench(code: Path, name: str) -> tuple[float, int, pd.DataFrame]:
        seconds, mib, _ = timed([sys.executable, "-m", "rdbench", "run", "--dataset", str(images), "--codec", spec, "--quality",
                                 "1", "--workers", str(args.workers), "--out", str(work / name), "--no-report", "--no-progress"],
                                {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH", "")]))},
                                cwd=code)  # `python -m` puts the working folder first on sys.path
        return seconds, mib, pd.read_csv(work / name / "results.csv")

    rd_s, rd_mib, table = rdbench(REPO, "rdbench")
    eval_json, est_json = (json.loads(out[out.index("{"):])["results"] for out in (eval_out, est_out))
    figures = {
        "images": args.images, "arch": args.arch, "checkpoint": str(ckpt) if args.checkpoint else "seeded random N=M=128",
        "workers": args.workers, "threads_per_worker": args.threads, "cpu": cpu(),
        "eval_model_s": round(eval_s, 2), "eval_model_entropy_estimation_s": round(est_s, 2), "rdbench_s": round(rd_s, 2),
        "ratio_coding_only": round(rd_s / eval_s, 3), "ratio_equal_work": round(rd_s / (eval_s + est_s), 3),
        "eval_model_peak_mib": eval_mib, "eval_model_entropy_estimation_peak_mib": est_mib, "rdbench_peak_process_mib": rd_mib,
        "rdbench_enc_s_mean": round(float(table["enc_s"].mean()), 3), "rdbench_dec_s_mean": round(float(table["dec_s"].mean()), 3),
        "rdbench_setup_s_sum": round(float(table["setup_s"].sum()), 2),
        "eval_model_enc_s_mean": round(eval_json["encoding_time"][0], 3),
        "eval_model_dec_s_mean": round(eval_json["decoding_time"][0], 3),
        "eval_model_bpp": eval_json["bpp"][0], "rdbench_bpp": float(table["bpp"].mean()),
        "eval_model_estimated_bpp": est_json["bpp"][0], "rdbench_bpp_estimated": float(table["bpp_estimated"].mean()),
        "eval_model_psnr": eval_json["psnr-rgb"][0], "rdbench_psnr": float(table["psnr_rgb"].mean()),
        "rows": len(table),
    }
    if args.before:  # rdbench as committed at REV, in this same run
        before = work / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        old_s, old_mib, old_table = rdbench(before, "rdbench-before")
        figures.update({"before": args.before, "rdbench_before_s": round(old_s, 2),
                        "before_ratio_coding_only": round(old_s / eval_s, 3),
                        "before_ratio_equal_work": round(old_s / (eval_s + est_s), 3),
                        "rdbench_before_peak_process_mib": old_mib,
                        "rdbench_before_same_bytes": bool(old_table.sort_values("image")["bytes"].tolist()
                                                         == table.sort_values("image")["bytes"].tolist())})
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return ""


if __name__ == "__main__":
    sys.exit(main())
