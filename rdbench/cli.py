"""The `rdbench` command line. Heavy modules are imported inside the subcommands."""

from __future__ import annotations

import argparse
import sys

from rdbench import __version__

EXIT_USAGE = 2  # bad input, unavailable codec: nothing was run
EXIT_ITEMS_FAILED = 3  # the run finished but some items failed (recorded in results.csv)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _on_cuda(spec: str) -> str:
    """Add device=cuda to a learned codec's spec (classical codecs have no device)."""
    from rdbench.codecs.base import parse_spec
    from rdbench.codecs.registry import LEARNED_CODECS

    parsed = parse_spec(spec)
    if parsed.name not in LEARNED_CODECS or "device" in parsed.options:
        return spec
    return spec + ("," if parsed.options else ":") + "device=cuda"


def cmd_run(args) -> int:
    from rdbench.codecs.base import canonical_quality, split_spec_list
    from rdbench.data.datasets import resolve_dataset
    from rdbench.bench.measure import Settings
    from rdbench.bench.runner import default_codec_specs, load_codecs, run

    dataset = resolve_dataset(args.dataset)
    if args.max_images:
        dataset.images = dataset.images[: args.max_images]
    specs = split_spec_list(args.codec) if args.codec else default_codec_specs()
    if args.device == "cuda":
        specs = [_on_cuda(s) for s in specs]
    codecs = load_codecs(specs)
    qualities = [canonical_quality(q) for q in _split(args.quality)] or None
    out = args.out or f"results/{dataset.name}"
    print(f"rdbench {__version__}: {len(dataset.images)} images ({dataset.source}), codecs: {', '.join(specs)}", file=sys.stderr)
    settings = Settings(timeout_s=args.timeout, keep_dir=out if args.keep else None)
    summary = run(
        dataset, codecs, out, qualities=qualities, workers=args.workers, settings=settings,
        retry_failed=args.retry_failed, progress=not args.no_progress, argv=sys.argv,
    )
    print(
        f"{summary.ok} measured, {summary.failed} failed, {summary.skipped} already stored "
        f"-> {summary.out_dir}/results.csv ({summary.elapsed_s:.1f} s)",
        file=sys.stderr,
    )
    if not args.no_report:
        from rdbench.analysis.report import load_inputs, write_report

        rows, table = load_inputs([out])
        if table["codec"].nunique() and table.groupby("codec")["quality"].nunique().max() >= 4:
            print(f"report: {write_report(rows, table, out, anchor=args.anchor, command=sys.argv)}", file=sys.stderr)
        else:
            print("no report: BD needs at least 4 qualities per codec", file=sys.stderr)
    return EXIT_ITEMS_FAILED if summary.failed else 0


def cmd_bdrate(args) -> int:
    import pandas as pd

    from rdbench.analysis.tables import bd_table, bd_table_per_image
    from rdbench.analysis.report import load_inputs, markdown_table, with_references

    rows, table = load_inputs(args.results, args.weighting)
    table = with_references(table, args.reference or [])
    if args.per_image:
        if rows is None:
            raise ValueError("--per-image needs results.csv inputs (per-image rows)")
        result = bd_table_per_image(rows, args.anchor, args.metric, args.method)
    else:
        result = bd_table(table, args.anchor, args.metric, args.method)
    pd.set_option("display.width", 200)
    shown = result if result["error"].astype(bool).any() else result.drop(columns="error")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        result.to_csv(args.csv, index=False)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(markdown_table(result) + "\n")
    return 0


def cmd_plot(args) -> int:
    from pathlib import Path

    from rdbench.analysis.plots import rd_figure
    from rdbench.analysis.report import load_inputs, with_references

    _, table = load_inputs(args.results, args.weighting)
    table = with_references(table, args.reference or [])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for metric in args.metric or ["psnr_rgb", "ms_ssim_db"]:
        fig = rd_figure(table, metric)
        for ext in args.format.split(","):
            fig.savefig(out / f"rd-{metric}.{ext}", dpi=130)
            print(out / f"rd-{metric}.{ext}")
    return 0


def cmd_report(args) -> int:
    from rdbench.analysis.report import load_inputs, write_report

    rows, table = load_inputs(args.results, args.weighting)
    print(write_report(rows, table, args.out, args.anchor, args.method, args.reference or ("bpg", "mbt2018"), sys.argv))
    return 0


def cmd_codecs(args) -> int:
    from rdbench.codecs import available

    rows = available()
    width = max(len(name) for name, _, _ in rows)
    for name, codec, problem in rows:
        if problem:
            print(f"{name:<{width}}  unavailable: {problem}")
            continue
        ladder = ", ".join(f"{q:g}" for q in codec.qualities)
        print(f"{name:<{width}}  {codec.version}")
        print(f"{'':<{width}}  {codec.description}")
        print(f"{'':<{width}}  {codec.quality_name}: {ladder}")
        if codec.options:
            opts = "; ".join(
                f"{k}={'|'.join(o.choices) if o.choices else '...'} (default {o.default})" for k, o in codec.options.items()
            )
            print(f"{'':<{width}}  options: {opts}")
    return 0


def _progress_printer():
    """Training progress: a redrawn bar on a terminal, one line per report otherwise."""
    tty = sys.stderr.isatty()

    def show(line: str) -> None:
        if tty and line.startswith("step "):
            done, total = (int(x) for x in line.split()[1].split("/"))
            filled = int(30 * done / max(total, 1))
            end = "\n" if done >= total else ""
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {line}", end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    return show


def cmd_train(args) -> int:
    import torch

    from rdbench.learned.config import QUALITY_LAMBDAS, QUALITY_LAMBDAS_MS_SSIM, ModelConfig
    from rdbench.learned.train import TrainingError, TrainOptions, train

    ladder = QUALITY_LAMBDAS if args.metric == "mse" else QUALITY_LAMBDAS_MS_SSIM
    lambdas = [float(x) for x in _split(args.lmbda)]
    for q in _split(args.quality):
        if not 1 <= int(q) <= len(ladder):
            raise ValueError(f"--quality {q}: expected 1..{len(ladder)}")
        lambdas.append(ladder[int(q) - 1])
    if not lambdas:
        raise ValueError("give --lambda or --quality (several of either make a variable-rate model)")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no CUDA device")
    config = ModelConfig(args.variant, args.N, args.M, args.k, args.K, tuple(lambdas))
    opts = TrainOptions(
        config=config, data=args.data, out=args.out, steps=args.steps, batch=args.batch, crop=args.crop,
        lr=args.lr, metric=args.metric, downscale=args.downscale, seed=args.seed, device=args.device,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, resume=args.resume,
    )
    try:
        path = train(opts, log=_progress_printer())
    except TrainingError as exc:
        print(f"rdbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(path)
    return 0


def cmd_export(args) -> int:
    from rdbench.learned.checkpoint import export_rate

    config = export_rate(args.checkpoint, args.rate - 1, args.out)
    print(f"{args.out}: {config.label()}, lambda {config.rates[0]:g} (CompressAI's classes load its state_dict)")
    return 0


def cmd_ablate(args) -> int:
    from pathlib import Path

    from rdbench.ablation import config as ablation_config
    from rdbench.ablation.evaluate import evaluate
    from rdbench.ablation.summary import summarize
    from rdbench.ablation.train import train_all

    config = ablation_config.load(args.config, args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "config.toml").exists():
        (out / "config.toml").write_text(config.text)
    if not args.eval_only:
        train_all(config, out, jobs=args.jobs, device=args.device)
    if args.train_only:
        return 0
    summary = evaluate(config, out, workers=args.workers, device=args.device,
                                max_images=args.max_images, progress=not args.no_progress)
    print(f"{summary.ok} measured, {summary.failed} failed, {summary.skipped} already stored", file=sys.stderr)
    print(summarize(config, out, " ".join(["rdbench", *sys.argv[1:]])))
    return EXIT_ITEMS_FAILED if summary.failed else 0


def cmd_datasets(args) -> int:
    import os

    from rdbench.data.datasets import data_home, load_manifest, manifest_names

    for name in manifest_names():
        m = load_manifest(name)
        local = os.environ.get(m.local_env or "")
        where = f"local copy {local} (${m.local_env})" if local else f"cache {data_home() / name} (downloaded on first use)"
        print(f"{name}: {m.description}; {len(m.images)} images; {where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rdbench", description="Rate-distortion benchmarking of image codecs.")
    p.add_argument("--version", action="version", version=f"rdbench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="encode, decode and measure a dataset with codecs at qualities")
    r.add_argument("--dataset", default="kodak", help="manifest name (kodak) or a folder of PNG/JPEG/PPM images")
    r.add_argument("--codec", action="append", metavar="SPEC",
                   help="codec spec, e.g. jpeg, jpeg:subsampling=444, bpg:encoder=x265; repeat or comma-separate "
                        "(default: every available classical codec; see `rdbench codecs`)")
    r.add_argument("--quality", action="append", metavar="Q",
                   help="quality value(s) in each codec's own scale; repeat or comma-separate (default: each codec's ladder)")
    r.add_argument("--out", metavar="DIR", help="result folder (default results/<dataset>)")
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
    t.add_argument("--variant", default="joint", choices=("factorized", "hyperprior", "mean-scale", "context", "joint"))
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
    a.add_argument("--no-progress", action="store_true")
    a.set_defaults(fn=cmd_ablate)

    def analysis_args(sp):
        sp.add_argument("results", nargs="+", metavar="RESULTS", help="result folders, results.csv files or CompressAI JSON files")
        sp.add_argument("--weighting", choices=("mean", "pixels"), default="mean",
                        help="mean of per-image values (default) or pixel-weighted")
        sp.add_argument("--reference", action="append", metavar="NAME",
                        help="add a published Kodak curve (bpg, jpeg, webp, jpeg2000, vtm, mbt2018, mbt2018-mean, or a file stem)")

    b = sub.add_parser("bdrate", help="BD-rate and BD-metric of every codec against an anchor")
    analysis_args(b)
    b.add_argument("--anchor", default="bpg", help="codec spec; measured if present, else the published curve")
    b.add_argument("--metric", default="psnr_rgb", choices=("psnr_rgb", "psnr_y", "ms_ssim_db"))
    b.add_argument("--method", default="pchip", choices=("pchip", "cubic", "akima"))
    b.add_argument("--per-image", action="store_true", help="BD per image, then mean, std and bootstrap 95%% interval")
    b.add_argument("--csv", metavar="FILE")
    b.add_argument("--markdown", metavar="FILE")
    b.set_defaults(fn=cmd_bdrate)

    pl = sub.add_parser("plot", help="RD curves as PNG/SVG/PDF")
    analysis_args(pl)
    pl.add_argument("--out", required=True, metavar="DIR")
    pl.add_argument("--metric", action="append", choices=("psnr_rgb", "psnr_y", "ms_ssim_db"))
    pl.add_argument("--format", default="png,svg", help="comma-separated: png, svg, pdf")
    pl.set_defaults(fn=cmd_plot)

    rp = sub.add_parser("report", help="Markdown report: BD tables vs the anchor, RD plots, method")
    analysis_args(rp)
    rp.add_argument("--out", required=True, metavar="DIR")
    rp.add_argument("--anchor", default="bpg")
    rp.add_argument("--method", default="pchip", choices=("pchip", "cubic", "akima"))
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
