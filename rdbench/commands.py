"""What each `rdbench` subcommand does; cli.py parses the arguments and calls these.

The commands are the edge of rdbench: they read result files and published curves, hand
DataFrames to analysis, and write what it returns (through analysis/report). Heavy modules are
imported inside each command, so that parsing the command line stays fast.
"""

from __future__ import annotations

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
        from rdbench.analysis.bd import MIN_POINTS

        rows, table = load_inputs([out])
        if table["codec"].nunique() and table.groupby("codec")["quality"].nunique().max() >= MIN_POINTS:
            print(f"report: {write_report(rows, table, out, args.anchor)}", file=sys.stderr)
        else:
            print(f"no report: BD needs at least {MIN_POINTS} qualities per codec", file=sys.stderr)
    return EXIT_ITEMS_FAILED if summary.failed else 0


def load_inputs(paths: list[str], weighting: str = "mean"):
    """(per-image rows or None, curves): rows from the results.csv inputs (folders or files), curves
    from every input, CompressAI-style JSON files included."""
    import pandas as pd

    from rdbench.analysis.curves import curves
    from rdbench.analysis.published import read_compressai_json
    from rdbench.bench.store import read_results

    rows, tables = [], []
    for p in paths:
        if str(p).endswith(".json"):
            tables.append(read_compressai_json(p))
        else:
            r = read_results(p)
            rows.append(r)
            tables.append(curves(r, weighting))
    all_rows = pd.concat(rows, ignore_index=True) if rows else None
    return all_rows, pd.concat(tables, ignore_index=True)


def write_report(rows, table, out, anchor: str = "bpg", method: str = "pchip", references=None):
    """The report on these rows and curves into OUT, with the published curves it names loaded here."""
    from rdbench.analysis.published import anchor_if_unmeasured, published
    from rdbench.analysis.report import write_document
    from rdbench.analysis.summary import DEFAULT_REFERENCES, report_document
    from rdbench.conventions import utc_now

    document = report_document(
        rows, table, anchor, method,
        references=[published(n) for n in (references or DEFAULT_REFERENCES)],
        published_anchor=anchor_if_unmeasured(table, anchor),
        made_at=utc_now(), command=sys.argv,
    )
    return write_document(document, out)


def cmd_bdrate(args) -> int:
    import pandas as pd

    from rdbench.analysis.document import markdown_table
    from rdbench.analysis.published import anchor_if_unmeasured, with_references
    from rdbench.analysis.report import write_csv, write_text
    from rdbench.analysis.tables import bd_table, bd_table_per_image

    rows, table = load_inputs(args.results, args.weighting)
    table = with_references(table, args.reference or [])
    if args.per_image:
        if rows is None:
            raise ValueError("--per-image needs results.csv inputs (per-image rows)")
        result = bd_table_per_image(rows, args.anchor, args.metric, args.method)
    else:
        result = bd_table(table, args.anchor, args.metric, args.method, anchor_if_unmeasured(table, args.anchor))
    pd.set_option("display.width", 200)
    shown = result if result["error"].astype(bool).any() else result.drop(columns="error")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        write_csv(result, args.csv)
    if args.markdown:
        write_text(markdown_table(result) + "\n", args.markdown)
    return 0


def cmd_plot(args) -> int:
    from pathlib import Path

    from rdbench.analysis.plots import rd_figure
    from rdbench.analysis.published import with_references
    from rdbench.analysis.report import write_figure
    from rdbench.bench.columns import HEADLINE_METRICS

    _, table = load_inputs(args.results, args.weighting)
    table = with_references(table, args.reference or [])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for metric in args.metric or HEADLINE_METRICS:
        fig = rd_figure(table, metric)
        for ext in args.format.split(","):
            print(write_figure(fig, out / f"rd-{metric}.{ext}", dpi=130))
    return 0


def cmd_report(args) -> int:
    rows, table = load_inputs(args.results, args.weighting)
    print(write_report(rows, table, args.out, args.anchor, args.method, args.reference))
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
    from rdbench.data.images import rgb_pixels
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
        path = train(opts, log=_progress_printer(), load_image=rgb_pixels)
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
    from rdbench.ablation.files import write_summary
    from rdbench.ablation.train import train_all

    config = ablation_config.load(args.config, args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "config.toml").exists():
        (out / "config.toml").write_text(config.text)
    if args.summary_only:
        print(write_summary(config, out, " ".join(["rdbench", *sys.argv[1:]])))
        return 0
    if not args.eval_only:
        train_all(config, out, jobs=args.jobs, device=args.device)
    if args.train_only:
        return 0
    summary = evaluate(config, out, workers=args.workers, device=args.device,
                       max_images=args.max_images, progress=not args.no_progress)
    print(f"{summary.ok} measured, {summary.failed} failed, {summary.skipped} already stored", file=sys.stderr)
    print(write_summary(config, out, " ".join(["rdbench", *sys.argv[1:]])))
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
