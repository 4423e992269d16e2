"""The `rdbench` command line: its grammar (subcommands, options, help) and the entry point.

What each subcommand does is in commands/; heavy modules are imported there, inside each
command, so that `rdbench --help` and argument errors cost no import of pandas or torch.
"""

from __future__ import annotations

import argparse
import functools
import sys

from rdbench import __version__, describe_libraries, library_versions
from rdbench.bench.columns import BD_METRICS, HEADLINE_METRICS
from rdbench.conventions import DEFAULT_TIMEOUT_S
from rdbench.commands import (
    DEFAULT_RESULTS_DIR,
    EXIT_CLUSTER,
    EXIT_STORE,
    EXIT_USAGE,
    cmd_ablate,
    cmd_bdrate,
    cmd_codecs,
    cmd_datasets,
    cmd_export,
    cmd_metrics,
    cmd_plot,
    cmd_profile,
    cmd_report,
    cmd_run,
    cmd_targets,
    cmd_train,
)
from rdbench.analysis import DEFAULT_REFERENCES
from rdbench.metrics.registry import DEFAULT
from rdbench.learned.config import VARIANTS  # a small module of dataclasses: no torch


def _at_least(minimum: float, kind=int, strict: bool = False):
    """An argparse type: a number of `kind` >= minimum (> minimum if strict); the error names the option."""
    relation = ">" if strict else ">="

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"expected a value {relation} {minimum:g}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse's own messages name the type
    return parse


def _numbers(text: str) -> str:
    """An argparse type for a comma-separated list of numbers, kept as text (commands split it)."""
    for part in text.split(","):
        try:
            float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a number")
    return text


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help (unless the help already says it), and required ones marked."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required and action.option_strings:
            text += " (required)"
        if ("default" in text or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


FIGURE_FORMATS = ("png", "svg", "pdf")


def _formats(text: str) -> str:
    """An argparse type: comma-separated figure formats, each one of FIGURE_FORMATS."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"{', '.join(bad) or repr(text)}: expected png, svg and/or pdf")
    return ",".join(formats)


def _limits(text: str) -> tuple[float, float]:
    """An argparse type: 'LO,HI', two numbers with LO < HI."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two numbers), got {text!r}")
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"expected LO < HI, got {text!r}")
    return lo, hi


def _add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """Where the items run instead of local processes: a Dask cluster (pip install 'rdbench[dask]')."""
    g = p.add_argument_group("Dask cluster (README: Scaling out)")
    g.add_argument("--scheduler", metavar="ADDRESS|FILE",
                   help="a running Dask scheduler: tcp://host:8786 or its scheduler file")
    g.add_argument("--cluster", choices=("local", "slurm"),
                   help="start a Dask cluster: local (--workers processes) or slurm (dask-jobqueue, --cluster-config)")
    g.add_argument("--cluster-config", metavar="FILE",
                   help="TOML file: a [slurm] table for --cluster slurm, a [security] table (TLS certificates, "
                        "distributed.Security's arguments) for any cluster (example: rdbench/_cluster_examples/slurm.toml)")
    g.add_argument("--batch-size", type=_at_least(1), metavar="N",
                   help="items per Dask task (default: from the measured per-item cost, ~1 s per task)")
    g.add_argument("--resources", metavar="NAME=N", action="append",
                   help="Dask worker resources every task needs, e.g. GPU=1 (workers started with --resources GPU=1)")


class _VersionAction(argparse.Action):
    """--version: read the libraries' versions only when asked (package metadata, no import)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"rdbench {__version__} ({describe_libraries(library_versions())})")  # stdout, as argparse's own
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rdbench", description="Rate-distortion benchmarking of image codecs.",
                                formatter_class=_HelpFormatter)
    p.add_argument("--version", action=_VersionAction,
                   help="show rdbench's version and those of the libraries its numbers depend on, and exit")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, formatter_class=_HelpFormatter)  # every subcommand's help

    r = sub.add_parser("run", help="encode, decode and measure a dataset with codecs at qualities")
    r.add_argument("--dataset", default="kodak", help="manifest name (kodak) or a folder of images (PNG, JPEG, PPM, ...)")
    r.add_argument("--codec", action="append", metavar="SPEC",
                   help="codec spec, e.g. jpeg, jpeg:subsampling=444, bpg:encoder=x265; repeat or comma-separate "
                        "(default: every available classical codec; see `rdbench codecs`)")
    r.add_argument("--quality", action="append", metavar="Q", type=_numbers,
                   help="quality value(s) in each codec's own scale; repeat or comma-separate (default: each codec's ladder)")
    r.add_argument("--target-bpp", action="append", metavar="BPP", type=_numbers,
                   help="instead of a ladder, per image the quality closest to each rate (bpp; CompressAI's find_close: "
                        "bisection over the codec's quality scale); repeat or comma-separate, e.g. 0.25,0.5")
    r.add_argument("--target-psnr", action="append", metavar="DB", type=_numbers,
                   help="likewise, per image the quality closest to each PSNR-RGB (dB)")
    r.add_argument("--target-below", action="store_true",
                   help="with --target-bpp/--target-psnr: the closest quality that does not exceed the target")
    r.add_argument("--out", metavar="DIR", help=f"result folder (default {DEFAULT_RESULTS_DIR}/<dataset> in the current "
                   "folder, apart from the shipped results/)")
    r.add_argument("--workers", type=_at_least(1), default=None, help="worker processes (default: all cores)")
    _add_cluster_arguments(r)
    r.add_argument("--metric", action="append", metavar="NAME",
                   help=f"metric(s) to measure; repeat or comma-separate (default: {', '.join(m.name for m in DEFAULT)}; "
                        "see `rdbench metrics`). Items already stored without a metric get that metric alone")
    r.add_argument("--keep", action="store_true", help="keep bitstreams and reconstructions under DIR")
    r.add_argument("--timeout", type=_at_least(0, float, strict=True), default=None, metavar="S",
                   help="per-call limit for external binaries (s) (default: the codec spec's `timeout` where it "
                        f"sets one, as vtm and hm do, else {DEFAULT_TIMEOUT_S:g})")
    r.add_argument("--fsync", action="store_true",
                   help="sync every stored row to the disk as it is written (default: flushed per row, synced at the "
                        "end of the run); for shared or unreliable disks")
    r.add_argument("--retry-failed", action="store_true", help="run again the items stored as failed")
    r.add_argument("--max-images", type=_at_least(1), metavar="N", help="only the first N images of the dataset")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--no-report", action="store_true", help="do not write DIR/report.md at the end")
    r.add_argument("--anchor", default="bpg", help="anchor codec of the report (measured if run, else published)")
    r.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where learned codecs run their transforms")
    r.add_argument("--check-decode", action="store_true",
                   help="decode every learned stream a second time in another process, with another torch thread count "
                        "and on the CPU, and store whether the pixels were identical (column decode_check)")
    r.set_defaults(fn=cmd_run)

    t = sub.add_parser("train", help="train a learned codec (Minnen 2018 family) on a folder of images",
                       description="Train a learned codec. Give the rate points with --lambda or --lambda-index "
                                   "(at least one is required; several make one variable-rate model).")
    t.add_argument("--variant", default="joint", choices=VARIANTS, help="which model of the family")
    t.add_argument("--N", type=_at_least(1), default=192, help="channels of g_a/g_s and of z")
    t.add_argument("--M", type=_at_least(1), default=192, help="channels of y")
    t.add_argument("--context-size", dest="k", type=_at_least(1), default=5, metavar="k",
                   help="context model kernel size k (odd)")
    t.add_argument("--mixtures", dest="K", type=_at_least(1), default=1, metavar="K",
                   help="Gaussian mixture components K (1: single Gaussian)")
    # the old spellings (-k/-K differing only by case) still parse, hidden and deprecated
    t.add_argument("--k", dest="k_deprecated", type=_at_least(1), help=argparse.SUPPRESS)
    t.add_argument("--K", dest="K_deprecated", type=_at_least(1), help=argparse.SUPPRESS)
    rate = t.add_argument_group("rate points (required: --lambda and/or --lambda-index)")
    rate.add_argument("--lambda", dest="lmbda", action="append", metavar="L",
                      help="rate-distortion weight; several make a variable-rate model (gain units)")
    rate.add_argument("--lambda-index", action="append", metavar="I",
                      help="index 1..8 into CompressAI's lambda ladder for the --loss (instead of --lambda)")
    t.add_argument("--quality", dest="lambda_index_deprecated", action="append", help=argparse.SUPPRESS)
    t.add_argument("--loss", default="mse", choices=("mse", "ms-ssim"), help="distortion term of the training loss")
    t.add_argument("--metric", dest="loss_deprecated", choices=("mse", "ms-ssim"), help=argparse.SUPPRESS)
    t.add_argument("--data", required=True, metavar="DIR", help="folder of training images (never Kodak)")
    t.add_argument("--out", required=True, metavar="FILE", help="checkpoint path")
    t.add_argument("--steps", type=_at_least(1), default=100000, help="optimizer steps")
    t.add_argument("--batch", type=_at_least(1), default=8, help="crops per step")
    t.add_argument("--crop", type=_at_least(1), default=256, metavar="PX", help="side of the random square crops")
    t.add_argument("--lr", type=_at_least(0, float, strict=True), default=1e-4, help="Adam learning rate")
    t.add_argument("--downscale", type=_at_least(1), default=1, help="shrink images by this factor before cropping")
    t.add_argument("--seed", type=int, default=0, help="random seed (weights, crops)")
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train")
    t.add_argument("--threads", type=_at_least(0), default=0, help="torch CPU threads (0: torch's default)")
    t.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: autocast of the transforms (entropy models stay float32); about 1.9x faster on a "
                        "CPU with AMX-BF16, and on GPUs")
    t.add_argument("--channels-last", action="store_true", help="NHWC memory format for the convolutions")
    t.add_argument("--loader-workers", type=_at_least(0), default=0, metavar="N",
                   help="processes that make the batches (pinned memory on CUDA); 0: in the training process")
    t.add_argument("--keep-at", type=_at_least(1), action="append", metavar="STEP",
                   help="also keep the checkpoint of STEP as FILE-stepSTEP.pt (repeatable: learning curves)")
    t.add_argument("--checkpoint-every", type=_at_least(1), default=500, metavar="STEPS",
                   help="write the checkpoint every STEPS steps")
    t.add_argument("--log-every", type=_at_least(1), default=50, metavar="STEPS", help="log a line every STEPS steps")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint at --out")
    t.set_defaults(fn=cmd_train)

    e = sub.add_parser("export", help="one rate point of a checkpoint as a single-rate (CompressAI-loadable) checkpoint")
    e.add_argument("checkpoint", metavar="CHECKPOINT", help="an rdbench checkpoint (from train or ablate)")
    e.add_argument("--rate", type=int, required=True, help="rate point, 1..number of lambdas")
    e.add_argument("--out", required=True, metavar="FILE", help="the single-rate checkpoint to write")
    e.set_defaults(fn=cmd_export)

    a = sub.add_parser("ablate", help="train and evaluate a grid of learned-codec variants (see results/ablation/)")
    a.add_argument("config", metavar="CONFIG", help="ablation TOML file")
    a.add_argument("--out", required=True, metavar="DIR", help="result folder: checkpoints, results.csv, ablation.md")
    a.add_argument("--data", metavar="DIR", help="training images (overrides the config's [training] data)")
    a.add_argument("--jobs", type=_at_least(1), default=1, help="cells trained in parallel (threads split between them)")
    a.add_argument("--workers", type=_at_least(1), default=None, help="evaluation worker processes (default: all cores)")
    _add_cluster_arguments(a)
    a.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train and evaluate")
    a.add_argument("--max-images", type=_at_least(1), metavar="N", help="evaluate on the first N images only")
    a.add_argument("--train-only", action="store_true", help="train, do not evaluate")
    a.add_argument("--eval-only", action="store_true", help="evaluate the checkpoints as they are")
    a.add_argument("--summary-only", action="store_true",
                   help="neither train nor evaluate: summarize the rows already in OUT/results.csv (no checkpoints needed)")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.set_defaults(fn=cmd_ablate)

    def analysis_args(sp, default_references: str = ""):
        sp.add_argument("results", nargs="+", metavar="RESULTS", help="result folders, results.csv files or CompressAI JSON files")
        sp.add_argument("--weighting", choices=("mean", "pixels"), default="mean",
                        help="mean of per-image values (default) or pixel-weighted")
        sp.add_argument("--reference", action="append", metavar="NAME",
                        help="add a published Kodak curve (bpg, jpeg, webp, jpeg2000, vtm, mbt2018, mbt2018-mean, or a "
                             "file stem); repeatable" + default_references)
        sp.add_argument("--versions", choices=("newest", "all"), default="newest",
                        help="several versions of a codec: only the one measured last, with a note (default), or each "
                             "as its own curve, labelled with its version")
        sp.add_argument("--allow-mismatched-reference", action="store_true",
                        help="compare published curves with curves over other images (a subset, another dataset); "
                             "every such row or curve is marked MISMATCHED")
        sp.add_argument("--label", action="append", metavar="SPEC=TEXT",
                        help="show the curve of codec spec (or label) SPEC as TEXT in legends and tables; repeatable. "
                             "Presentation only: never part of a curve's identity (a run's `label=` in --codec is "
                             "read from its runs.jsonl)")

    b = sub.add_parser("bdrate", help="BD-rate and BD-metric of every codec against an anchor")
    analysis_args(b)
    b.add_argument("--anchor", default="bpg", help="codec spec; measured if present, else the published curve")
    b.add_argument("--metric", default=HEADLINE_METRICS[0], choices=BD_METRICS, metavar="COLUMN",
                   help="any metric column (see `rdbench metrics`), BD in its direction; ms_ssim_db: mean of per-image "
                        "dB (against a published curve: matched to its dB of the mean); ms_ssim_db_of_mean: dB of the "
                        "mean MS-SSIM")
    b.add_argument("--method", default="pchip", choices=("pchip", "cubic", "akima"), help="BD interpolation")
    b.add_argument("--per-image", action="store_true", help="BD per image, then mean, std and bootstrap 95%% interval")
    b.add_argument("--common-images", action="store_true",
                   help="compare curves over different image sets on the images both measured (said in the table)")
    b.add_argument("--csv", metavar="FILE", help="also write the whole table as CSV")
    b.add_argument("--markdown", metavar="FILE", help="also write the whole table as Markdown")
    b.add_argument("--wide", action="store_true", help="every column in the terminal (default: one compact line per codec)")
    b.set_defaults(fn=cmd_bdrate)

    tg = sub.add_parser("targets", help="each codec at target rates (JPEG AI's, CLIC's) and CLIC's corpus budget")
    tg.add_argument("results", nargs="+", metavar="RESULTS", help="result folders or results.csv files")
    tg.add_argument("--rates", action="append", metavar="BPP", type=_numbers,
                    help="target rates, comma-separated (default: JPEG AI's 0.06,0.12,0.25,0.5,0.75 and CLIC's "
                         "0.075,0.15,0.3)")
    tg.add_argument("--budgets", action="append", metavar="BPP", type=_numbers,
                    help="CLIC corpus budgets in bpp over the whole set (default: 0.075,0.15,0.3)")
    tg.add_argument("--versions", choices=("newest", "all"), default="newest",
                    help="several versions of a codec: the newest only, or each as its own curve")
    tg.add_argument("--csv", metavar="FILE", help="also write the rate table as CSV (and FILE_budget.csv)")
    tg.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    tg.set_defaults(fn=cmd_targets)

    pl = sub.add_parser("plot", help="RD curves as PNG/SVG/PDF")
    analysis_args(pl)
    pl.add_argument("--out", required=True, metavar="DIR", help="folder for the figures")
    pl.add_argument("--metric", action="append", choices=BD_METRICS, metavar="COLUMN",
                    help=f"repeat for several (default: {', '.join(HEADLINE_METRICS)})")
    pl.add_argument("--format", default="png,svg", type=_formats, help="comma-separated: png, svg, pdf")
    pl.add_argument("--codec", action="append", metavar="NAME",
                    help="only these curves (codec spec or legend label); repeat or comma-separate (default: all)")
    pl.add_argument("--log-rate", action="store_true", help="logarithmic bpp axis")
    pl.add_argument("--xlim", type=_limits, metavar="LO,HI", help="bpp axis limits (default: automatic)")
    pl.add_argument("--ylim", type=_limits, metavar="LO,HI", help="quality axis limits (default: automatic)")
    pl.add_argument("--title", help="figure title (default: '<dataset>: <metric> vs bpp')")
    pl.set_defaults(fn=cmd_plot)

    rp = sub.add_parser("report", help="Markdown report: BD tables vs the anchor, RD plots, method")
    analysis_args(rp, "; added to the ones every report shows: " + ", ".join(DEFAULT_REFERENCES))
    rp.add_argument("--out", required=True, metavar="DIR", help="folder for report.md, its figures and tables")
    rp.add_argument("--anchor", default="bpg", help="codec spec; measured if present, else the published curve")
    rp.add_argument("--method", default="pchip", choices=("pchip", "cubic", "akima"), help="BD interpolation")
    rp.add_argument("--common-images", action="store_true",
                    help="compare curves over different image sets on the images both measured (said in every table)")
    rp.set_defaults(fn=cmd_report)

    pr = sub.add_parser("profile", help="one codec spec's cost on one image: seconds, rate, parameters, kMAC/px by box")
    pr.add_argument("spec", metavar="SPEC", help="a codec spec, e.g. compressai:arch=cheng2020-anchor,checkpoint=FILE")
    pr.add_argument("--image", required=True, metavar="FILE", help="the image to code")
    pr.add_argument("--quality", type=float, metavar="Q", help="quality (default: the middle of the codec's ladder)")
    pr.add_argument("--repeats", type=_at_least(1), default=3, help="timed encode/decode pairs (median reported)")
    pr.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    pr.set_defaults(fn=cmd_profile)

    c = sub.add_parser("codecs", help="list codecs, their versions, ladders and availability")
    c.set_defaults(fn=cmd_codecs)
    m = sub.add_parser("metrics", help="list metrics, their columns, direction, library and availability")
    m.set_defaults(fn=cmd_metrics)
    d = sub.add_parser("datasets", help="list known datasets and where they are read from")
    d.set_defaults(fn=cmd_datasets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rdbench.codecs.base import CodecUnavailable
    from rdbench.data.datasets import DatasetError
    from rdbench.bench.store import StoreError, StoreWriteError
    from rdbench.errors import ClusterError

    try:
        return args.fn(args)
    except StoreWriteError as exc:  # the disk failed mid-run: not "nothing run"; the rows stored are kept
        print(f"rdbench: error: {exc}", file=sys.stderr)
        return EXIT_STORE
    except (DatasetError, CodecUnavailable, StoreError, ValueError, OSError) as exc:  # OSError: a file's name and fault
        print(f"rdbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ClusterError as exc:  # the Dask scheduler unreachable or lost: what was stored stays
        print(f"rdbench: error: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
    except KeyboardInterrupt as exc:
        summary = getattr(exc, "summary", None)  # bench.runner.RunInterrupted
        if summary is not None:
            left = summary.planned - summary.ok - summary.failed
            print(f"\nrdbench: interrupted: {summary.ok} measured and {summary.failed} failed items of this run are "
                  f"stored in {summary.out_dir}/results.csv ({summary.skipped} were stored before), {left} not "
                  f"measured; the run is logged in {summary.out_dir}/runs.jsonl. Run the same command again to "
                  "measure only what is missing.", file=sys.stderr)
        else:
            print("\nrdbench: interrupted; every finished item is stored, run the same command again to continue",
                  file=sys.stderr)
        return 130
