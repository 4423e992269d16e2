"""The `rdbench` command line: its grammar (subcommands, options, help) and the entry point.

What each subcommand does is in commands.py; heavy modules are imported there, inside each
command, so that `rdbench --help` and argument errors cost no import of pandas or torch.
"""

from __future__ import annotations

import argparse
import sys

from rdbench import __version__
from rdbench.bench.columns import CURVE_DB_METRICS, HEADLINE_METRICS
from rdbench.commands import (
    DEFAULT_RESULTS_DIR,
    EXIT_USAGE,
    cmd_ablate,
    cmd_bdrate,
    cmd_codecs,
    cmd_datasets,
    cmd_export,
    cmd_plot,
    cmd_report,
    cmd_run,
    cmd_train,
)
from rdbench.learned.config import VARIANTS  # a small module of dataclasses: no torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rdbench", description="Rate-distortion benchmarking of image codecs.")
    p.add_argument("--version", action="version", version=f"rdbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="encode, decode and measure a dataset with codecs at qualities")
    r.add_argument("--dataset", default="kodak", help="manifest name (kodak) or a folder of images (PNG, JPEG, PPM, ...)")
    r.add_argument("--codec", action="append", metavar="SPEC",
                   help="codec spec, e.g. jpeg, jpeg:subsampling=444, bpg:encoder=x265; repeat or comma-separate "
                        "(default: every available classical codec; see `rdbench codecs`)")
    r.add_argument("--quality", action="append", metavar="Q",
                   help="quality value(s) in each codec's own scale; repeat or comma-separate (default: each codec's ladder)")
    r.add_argument("--out", metavar="DIR", help=f"result folder (default {DEFAULT_RESULTS_DIR}/<dataset> in the current "
                   "folder, apart from the shipped results/)")
    r.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    r.add_argument("--keep", action="store_true", help="keep bitstreams and reconstructions under DIR")
    r.add_argument("--timeout", type=float, default=600.0, metavar="S", help="per-call limit for external binaries (s)")
    r.add_argument("--retry-failed", action="store_true", help="run again the items stored as failed")
    r.add_argument("--max-images", type=int, metavar="N", help="only the first N images of the dataset")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--no-report", action="store_true", help="do not write DIR/report.md at the end")
    r.add_argument("--anchor", default="bpg", help="anchor codec of the report (measured if run, else published)")
    r.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where learned codecs run their transforms")
    r.set_defaults(fn=cmd_run)

    t = sub.add_parser("train", help="train a learned codec (Minnen 2018 family) on a folder of images")
    t.add_argument("--variant", default="joint", choices=VARIANTS)
    t.add_argument("--N", type=int, default=192, help="channels of g_a/g_s and of z")
    t.add_argument("--M", type=int, default=192, help="channels of y")
    t.add_argument("--k", type=int, default=5, help="context kernel size (odd)")
    t.add_argument("--K", type=int, default=1, help="Gaussian mixture components (1: single Gaussian)")
    t.add_argument("--lambda", dest="lmbda", action="append", metavar="L",
                   help="rate-distortion weight; several make a variable-rate model (gain units)")
    t.add_argument("--quality", action="append", metavar="Q", help="CompressAI's lambda ladder, 1..8 (instead of --lambda)")
    t.add_argument("--metric", default="mse", choices=("mse", "ms-ssim"))
    t.add_argument("--data", required=True, metavar="DIR", help="folder of training images (never Kodak)")
    t.add_argument("--out", required=True, metavar="FILE", help="checkpoint path")
    t.add_argument("--steps", type=int, default=100000)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--crop", type=int, default=256)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--downscale", type=int, default=1, help="shrink images by this factor before cropping")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    t.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    t.add_argument("--checkpoint-every", type=int, default=500, metavar="STEPS")
    t.add_argument("--log-every", type=int, default=50, metavar="STEPS")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint at --out")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("export", help="one rate point of a checkpoint as a single-rate (CompressAI-loadable) checkpoint")
    e.add_argument("checkpoint", metavar="CHECKPOINT")
    e.add_argument("--rate", type=int, required=True, help="rate point, 1..number of lambdas")
    e.add_argument("--out", required=True, metavar="FILE")
    e.set_defaults(fn=cmd_export)

    a = sub.add_parser("ablate", help="train and evaluate a grid of learned-codec variants (see results/ablation/)")
    a.add_argument("config", metavar="CONFIG", help="ablation TOML file")
    a.add_argument("--out", required=True, metavar="DIR")
    a.add_argument("--data", metavar="DIR", help="training images (overrides the config's [training] data)")
    a.add_argument("--jobs", type=int, default=1, help="cells trained in parallel (threads split between them)")
    a.add_argument("--workers", type=int, default=None, help="evaluation worker processes (default: all cores)")
    a.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    a.add_argument("--max-images", type=int, metavar="N", help="evaluate on the first N images only")
    a.add_argument("--train-only", action="store_true")
    a.add_argument("--eval-only", action="store_true", help="evaluate the checkpoints as they are")
    a.add_argument("--summary-only", action="store_true",
                   help="neither train nor evaluate: summarize the rows already in OUT/results.csv (no checkpoints needed)")
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(fn=cmd_ablate)

    def analysis_args(sp):
        sp.add_argument("results", nargs="+", metavar="RESULTS", help="result folders, results.csv files or CompressAI JSON files")
        sp.add_argument("--weighting", choices=("mean", "pixels"), default="mean",
                        help="mean of per-image values (default) or pixel-weighted")
        sp.add_argument("--reference", action="append", metavar="NAME",
                        help="add a published Kodak curve (bpg, jpeg, webp, jpeg2000, vtm, mbt2018, mbt2018-mean, or a file stem)")
        sp.add_argument("--versions", choices=("newest", "all"), default="newest",
                        help="several versions of a codec: only the one measured last, with a note (default), or each "
                             "as its own curve, labelled with its version")
        sp.add_argument("--allow-mismatched-reference", action="store_true",
                        help="compare published curves with curves over other images (a subset, another dataset); "
                             "every such row or curve is marked MISMATCHED")

    b = sub.add_parser("bdrate", help="BD-rate and BD-metric of every codec against an anchor")
    analysis_args(b)
    b.add_argument("--anchor", default="bpg", help="codec spec; measured if present, else the published curve")
    b.add_argument("--metric", default=HEADLINE_METRICS[0], choices=CURVE_DB_METRICS,
                   help="ms_ssim_db: mean of per-image dB (against a published curve: matched to its dB of the mean); "
                        "ms_ssim_db_of_mean: dB of the mean MS-SSIM")
    b.add_argument("--method", default="pchip", choices=("pchip", "cubic", "akima"))
    b.add_argument("--per-image", action="store_true", help="BD per image, then mean, std and bootstrap 95%% interval")
    b.add_argument("--common-images", action="store_true",
                   help="compare curves over different image sets on the images both measured (said in the table)")
    b.add_argument("--csv", metavar="FILE")
    b.add_argument("--markdown", metavar="FILE")
    b.set_defaults(fn=cmd_bdrate)

    pl = sub.add_parser("plot", help="RD curves as PNG/SVG/PDF")
    analysis_args(pl)
    pl.add_argument("--out", required=True, metavar="DIR")
    pl.add_argument("--metric", action="append", choices=CURVE_DB_METRICS,
                    help=f"repeat for several (default: {', '.join(HEADLINE_METRICS)})")
    pl.add_argument("--format", default="png,svg", help="comma-separated: png, svg, pdf")
    pl.set_defaults(fn=cmd_plot)

    rp = sub.add_parser("report", help="Markdown report: BD tables vs the anchor, RD plots, method")
    analysis_args(rp)
    rp.add_argument("--out", required=True, metavar="DIR")
    rp.add_argument("--anchor", default="bpg")
    rp.add_argument("--method", default="pchip", choices=("pchip", "cubic", "akima"))
    rp.add_argument("--common-images", action="store_true",
                    help="compare curves over different image sets on the images both measured (said in every table)")
    rp.set_defaults(fn=cmd_report)

    c = sub.add_parser("codecs", help="list codecs, their versions, ladders and availability")
    c.set_defaults(fn=cmd_codecs)
    d = sub.add_parser("datasets", help="list known datasets and where they are read from")
    d.set_defaults(fn=cmd_datasets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rdbench.codecs.base import CodecUnavailable
    from rdbench.data.datasets import DatasetError
    from rdbench.bench.store import StoreError

    try:
        return args.fn(args)
    except (DatasetError, CodecUnavailable, StoreError, ValueError, FileNotFoundError) as exc:
        print(f"rdbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rdbench: interrupted; every finished item is stored, run the same command again to continue",
              file=sys.stderr)
        return 130
