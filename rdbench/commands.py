"""What each `rdbench` subcommand does; cli.py parses the arguments and calls these.

The commands are the edge of rdbench: they read result files and published curves, hand
DataFrames to analysis, and write what it returns (through analysis/report). Heavy modules are
imported inside each command, so that parsing the command line stays fast.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rdbench import __version__

EXIT_USAGE = 2  # bad input, unavailable codec: nothing was run
EXIT_ITEMS_FAILED = 3  # the run finished but some items failed (recorded in results.csv)
EXIT_CLUSTER = 4  # the Dask scheduler could not be reached or was lost (rows received are stored)
# `rdbench run` without --out writes DEFAULT_RESULTS_DIR/<dataset> under the current folder: never
# the shipped, tracked results/ of a checkout (.gitignore lists it).
DEFAULT_RESULTS_DIR = "rdbench-results"


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


def dask_executor(args):
    """None (the local process pool) unless --scheduler or --cluster asks for a Dask cluster."""
    if not (getattr(args, "scheduler", None) or getattr(args, "cluster", None)):
        return None
    if args.scheduler and args.cluster:
        raise ValueError("--scheduler and --cluster exclude each other: use a running cluster, or start one")
    if args.cluster == "slurm" and not args.cluster_config:
        raise ValueError("--cluster slurm needs --cluster-config FILE (example: rdbench/_cluster_examples/slurm.toml)")
    resources = {}
    for text in args.resources or []:
        name, _, amount = text.partition("=")
        try:
            resources[name.strip()] = float(amount)
        except ValueError:
            raise ValueError(f"--resources {text!r}: expected NAME=N, e.g. GPU=1") from None
    try:
        from rdbench.bench.dask_executor import DaskExecutor, load_cluster_config, slurm_cluster
    except ImportError as exc:
        raise ValueError(f"--scheduler/--cluster need Dask: pip install 'rdbench[dask]' ({exc})") from None
    options = dict(batch_size=args.batch_size, resources=resources)
    if args.scheduler:
        return DaskExecutor(args.scheduler, **options)
    if args.cluster == "slurm":
        config = load_cluster_config(args.cluster_config)
        return DaskExecutor(cluster=slurm_cluster(config), wait_for_workers=1, **options)
    return DaskExecutor(n_workers=args.workers, **options)


def cmd_run(args) -> int:
    from rdbench.codecs.base import canonical_quality, split_spec_list
    from rdbench.data.datasets import resolve_dataset
    from rdbench.bench.measure import Settings
    from rdbench.bench.runner import default_codec_specs, fetch_zoo_weights, load_codecs, run

    dataset = resolve_dataset(args.dataset)
    if args.max_images:
        dataset.images = dataset.images[: args.max_images]
    specs = split_spec_list(args.codec) if args.codec else default_codec_specs()
    if args.device == "cuda":
        specs = [_on_cuda(s) for s in specs]
    codecs = load_codecs(specs)
    qualities = [canonical_quality(q) for q in _split(args.quality)] or None
    for codec in codecs:  # out-of-range qualities stop the run before any work (exit 2)
        for q in qualities or []:
            codec.check_quality(q)
    fetch_zoo_weights(codecs, qualities)
    out = args.out or str(Path(DEFAULT_RESULTS_DIR) / dataset.name)
    print(f"rdbench {__version__}: {len(dataset.images)} images ({dataset.source}), "
          f"codecs: {', '.join(c.spec.text for c in codecs)}", file=sys.stderr)
    settings = Settings(timeout_s=args.timeout, keep_dir=out if args.keep else None)
    executor = dask_executor(args)
    try:
        summary = run(
            dataset, codecs, out, qualities=qualities, workers=args.workers, settings=settings,
            retry_failed=args.retry_failed, progress=not args.no_progress, argv=sys.argv, executor=executor,
        )
    finally:
        if executor is not None:
            executor.close()
    print(
        f"{summary.ok} measured, {summary.failed} failed, {summary.skipped} already stored "
        f"-> {summary.out_dir}/results.csv ({summary.elapsed_s:.1f} s)",
        file=sys.stderr,
    )
    report = None
    if not args.no_report:
        from rdbench.analysis.bd import MIN_POINTS

        inputs = load_inputs([out])
        table = inputs.curves
        if table["codec"].nunique() and table.groupby("codec")["quality"].nunique().max() >= MIN_POINTS:
            report = write_report(inputs, out, args.anchor)
        else:
            print(f"no report: BD needs at least {MIN_POINTS} qualities per codec", file=sys.stderr)
    print(f"results: {Path(out) / 'results.csv'}" + (f"; report: {report}" if report else ""), file=sys.stderr)
    return EXIT_ITEMS_FAILED if summary.failed else 0


@dataclass
class Inputs:
    """What the analysis commands read: per-image rows (None with JSON inputs only), curves, which
    images each image set holds (measured and published), notes on what was left out, the paths."""

    rows: object
    curves: object
    images: object
    notes: list = field(default_factory=list)
    paths: list = field(default_factory=list)


def load_inputs(paths: list[str], weighting: str = "mean", versions: str = "newest") -> Inputs:
    """Rows from the results.csv inputs (folders or files; a measurement in two inputs counted once,
    only the newest version of each codec unless versions="all"), curves from the rows and from
    the CompressAI-style JSON inputs."""
    import pandas as pd

    from rdbench.analysis.curves import curves, drop_duplicate_rows, image_index, relabel, select_versions
    from rdbench.analysis.published import read_compressai_json, reference_images
    from rdbench.bench.store import read_results

    rows, tables, notes = [], [], []
    for p in paths:
        if str(p).endswith(".json"):
            tables.append(read_compressai_json(p))
        else:
            rows.append(read_results(p))
    all_rows = None
    images = [reference_images()]
    if rows:
        all_rows, duplicates = drop_duplicate_rows(pd.concat(rows, ignore_index=True))
        if duplicates:
            notes.append(f"{duplicates} rows are in more than one input (same image, codec, version and quality): "
                         "each counted once")
        all_rows, left_out = select_versions(all_rows, versions)
        notes += left_out
        tables.insert(0, curves(all_rows, weighting))
        images.insert(0, image_index(all_rows))
    tables = [t for t in tables if len(t)]
    table = relabel(pd.concat(tables, ignore_index=True)) if tables else curves(pd.DataFrame(columns=["status"]))
    images = pd.concat(images, ignore_index=True).drop_duplicates(["image_set", "image_sha256"])
    return Inputs(all_rows, table, images, notes, [str(p) for p in paths])


# An absolute path inside a command-line word: after its start, '=' or ',' (--out=/x, checkpoint=/x,...).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/[^\s,;'\"()]+")


def relative_paths(text: str, base: Path | None = None) -> str:
    """`text` with every absolute path made relative to `base` (default: the current directory)."""
    base = base or Path.cwd()

    def relative(match: re.Match) -> str:
        try:
            return os.path.relpath(match.group(0), base)
        except ValueError:  # another drive (Windows)
            return match.group(0)

    return _ABSOLUTE_PATH.sub(relative, text)


def relative_command(argv) -> list[str]:
    """A logged command line without machine paths: the program as `rdbench`, other paths relative."""
    argv = [str(a) for a in argv]
    if argv and Path(argv[0]).name in ("rdbench", "__main__.py"):
        argv[0] = "rdbench"
    return [relative_paths(a) for a in argv]


def read_runs(paths: list[str]) -> list[dict]:
    """Every run logged in the inputs' runs.jsonl (result folders, or the folder of a results.csv),
    oldest first, with machine paths made relative (relative_command)."""
    import json

    runs, seen = [], set()
    for p in paths:
        folder = Path(p) if Path(p).is_dir() else Path(p).parent
        log = folder / "runs.jsonl"
        if str(p).endswith(".json") or not log.is_file() or log.resolve() in seen:
            continue
        seen.add(log.resolve())
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a torn last line of a killed run
                continue
            entry["command"] = relative_command(entry.get("command") or [])
            for key in ("dataset_source", "out_dir"):
                if isinstance(entry.get(key), str):
                    entry[key] = relative_paths(entry[key])
            runs.append(entry)
    return sorted(runs, key=lambda r: str(r.get("finished_at", "")))


def write_report(inputs: Inputs, out, anchor: str = "bpg", method: str = "pchip", references=None,
                 common_images: bool = False, allow_mismatched_reference: bool = False):
    """The report on these inputs into OUT, with the published curves it names and the runs.jsonl of
    the inputs loaded here."""
    from rdbench.analysis.published import PUBLISHED_ALIASES, anchor_if_unmeasured, published
    from rdbench.analysis.report import write_document
    from rdbench.analysis.summary import DEFAULT_REFERENCES, report_document
    from rdbench.conventions import utc_now

    document = report_document(
        inputs.rows, inputs.curves, anchor, method,
        # --reference adds to the default references, each curve once (an alias and its file stem are one)
        references=[published(n) for n in dict.fromkeys(PUBLISHED_ALIASES.get(n, n)
                                                        for n in [*DEFAULT_REFERENCES, *(references or [])])],
        published_anchor=anchor_if_unmeasured(inputs.curves, anchor),
        made_at=utc_now(), command=relative_command(sys.argv), runs=read_runs(inputs.paths), notes=inputs.notes,
        images=inputs.images, common_images=common_images, allow_mismatched_reference=allow_mismatched_reference,
    )
    return write_document(document, out)


BD_SHOWN = ["label", "bd_rate_pct", "bd_metric", "overlap", "n_points", "n_images", "images", "std_pct", "ci95_lo",
            "ci95_hi", "n_failed", "n_dropped", "dropped", "error"]  # what `bdrate` prints, where present


def cmd_bdrate(args) -> int:
    import pandas as pd

    from rdbench.analysis.document import bd_terminal_lines, markdown_table
    from rdbench.analysis.published import anchor_if_unmeasured, with_references
    from rdbench.analysis.report import write_csv, write_text
    from rdbench.analysis.per_image import bd_table_per_image
    from rdbench.analysis.tables import bd_table

    inputs = load_inputs(args.results, args.weighting, args.versions)
    for note in inputs.notes:
        print(f"note: {note}", file=sys.stderr)
    table = with_references(inputs.curves, args.reference or [])
    if args.per_image:
        if inputs.rows is None:
            raise ValueError("--per-image needs results.csv inputs (per-image rows)")
        result = bd_table_per_image(inputs.rows, args.anchor, args.metric, args.method)
    else:
        result = bd_table(table, args.anchor, args.metric, args.method, anchor_if_unmeasured(table, args.anchor),
                          rows=inputs.rows, images=inputs.images, common_images=args.common_images,
                          allow_mismatched_reference=args.allow_mismatched_reference)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 400)
    parts = list(result.groupby("dataset", sort=False)) if len(result) else []
    for dataset, part in parts:
        first = part.iloc[0]
        conventions = "; ".join(dict.fromkeys(f"{m}: {c}" for m, c in zip(part["metric"], part["convention"])))
        print(f"{dataset}: BD versus {first['anchor']} ({first['anchor_source']}; version {first['anchor_version']}), "
              f"{first['mode']}, method {first['method']}; {conventions}")
        if not args.wide:
            print("\n".join(bd_terminal_lines(part)) + "\n")
            continue
        shown = [c for c in BD_SHOWN if c in part and not (c in ("error", "dropped") and not part[c].astype(bool).any())
                 and not (c == "images" and part[c].astype(str).str.startswith("same").all())]
        print(part[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n")
    if args.csv:
        write_csv(result, args.csv)
    if args.markdown:
        text = markdown_table(result) if len(parts) == 1 else "\n\n".join(
            f"## {dataset}\n\n{markdown_table(part)}" for dataset, part in parts)
        write_text(text + "\n", args.markdown)
    return 0


def cmd_plot(args) -> int:
    from rdbench.analysis.curves import add_curves, curve_groups, file_stem
    from rdbench.analysis.plots import rd_figure
    from rdbench.analysis.published import published
    from rdbench.analysis.report import write_figure
    from rdbench.analysis.summary import references_for
    from rdbench.bench.columns import HEADLINE_METRICS

    inputs = load_inputs(args.results, args.weighting, args.versions)
    for note in inputs.notes:
        print(f"note: {note}", file=sys.stderr)
    references = [published(n) for n in args.reference or []]
    table = inputs.curves
    datasets = list(dict.fromkeys(table.loc[table["source"] != "published", "dataset"]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        here = table[table["dataset"] == dataset]
        matching = references_for(references, here, args.allow_mismatched_reference)
        shown = add_curves(here, matching)
        for ref in references:
            if not any(m["source"].iloc[0] == ref["source"].iloc[0] for m in matching):
                print(f"note: {ref['codec'].iloc[0]} is over other images ({ref['dataset'].iloc[0]}, "
                      f"{int(ref['image_set_size'].iloc[0])} images): not on the {dataset} plots "
                      "(--allow-mismatched-reference shows it, labelled)", file=sys.stderr)
        suffix = f"-{file_stem(dataset)}" if len(datasets) > 1 else ""
        names = set(shown["label"].astype(str)) | set(shown["codec"].astype(str))
        unknown = [c for c in _split(args.codec) if c not in names]
        if unknown:
            raise ValueError(f"--codec {', '.join(unknown)}: no such curve on {dataset}; curves: "
                             + ", ".join(dict.fromkeys(shown["label"].astype(str))))
        for metric in args.metric or HEADLINE_METRICS:
            for _, curve in curve_groups(shown):
                if curve[metric].isna().all():
                    print(f"note: {curve['label'].iloc[0]} has no {metric} values: not on rd-{metric}{suffix}"
                          + (" (its MS-SSIM dB is the dB of the mean: --metric ms_ssim_db_of_mean)"
                             if metric == "ms_ssim_db" and curve["ms_ssim_db_of_mean"].notna().any() else ""),
                          file=sys.stderr)
            fig = rd_figure(shown, metric, args.title or "", codecs=_split(args.codec) or None,
                            log_rate=args.log_rate, xlim=args.xlim, ylim=args.ylim)
            for ext in args.format.split(","):
                print(write_figure(fig, out / f"rd-{metric}{suffix}.{ext}", dpi=130))
    return 0


def cmd_report(args) -> int:
    inputs = load_inputs(args.results, args.weighting, args.versions)
    for note in inputs.notes:
        print(f"note: {note}", file=sys.stderr)
    print(write_report(inputs, args.out, args.anchor, args.method, args.reference, args.common_images,
                       args.allow_mismatched_reference))
    return 0


def cmd_codecs(args) -> int:
    from rdbench.codecs import available
    from rdbench.codecs.registry import NEEDS_OPTION

    rows = available()
    width = max(len(name) for name, _, _ in rows)
    for name, codec, problem in rows:
        if problem and problem.startswith(NEEDS_OPTION):
            print(f"{name:<{width}}  available; {problem}")
            continue
        if problem:
            print(f"{name:<{width}}  unavailable: {problem}")
            continue
        ladder = ", ".join(f"{q:g}" for q in codec.qualities)
        print(f"{name:<{width}}  {codec.version}")
        print(f"{'':<{width}}  {codec.description}")
        print(f"{'':<{width}}  {codec.quality_name}: {ladder}")
        weights = _zoo_weights_line(name, codec)
        if weights:
            print(f"{'':<{width}}  {weights}")
        if codec.options:
            opts = "; ".join(
                f"{k}={'|'.join(o.choices) if o.choices else '...'} (default {o.default})" for k, o in codec.options.items()
            )
            print(f"{'':<{width}}  options: {opts}")
    return 0


def _zoo_weights_line(name: str, codec) -> str:
    """For a CompressAI zoo codec, how many of its weight files are cached (none is downloaded here)."""
    from rdbench.codecs.zoo import ARCHITECTURES, weights_dir, weights_url

    if name not in ARCHITECTURES:
        return ""
    try:
        urls = [weights_url(name, codec.opts["metric"], q) for q in codec.qualities]
    except ValueError:
        return ""
    cached = sum((weights_dir() / u.rsplit("/", 1)[1]).is_file() for u in urls)
    host = urls[0].split("/")[2] if "//" in urls[0] else urls[0]
    return (f"weights: {cached} of {len(urls)} cached in {weights_dir()}" + ("" if cached == len(urls) else
            f"; the rest are downloaded from {host} when a run needs them (checked before any work)"))


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


def _require_learned(command: str) -> None:
    """Stop a torch-only command with the install hint (rather than an import traceback)."""
    from rdbench.codecs.base import CodecUnavailable
    from rdbench.codecs.registry import missing_learned_packages

    missing = missing_learned_packages()
    if missing:
        raise CodecUnavailable(f"rdbench {command} needs {', '.join(missing)}: pip install 'rdbench[learned]'")


def _deprecated(args, renames) -> None:
    """Old option spellings still work, with a note: (old dest, new dest, old option, new option)."""
    for old_dest, new_dest, old, new in renames:
        value = getattr(args, old_dest, None)
        if value is not None:
            print(f"rdbench: {old} is deprecated: use {new}", file=sys.stderr)
            setattr(args, new_dest, value)


def cmd_train(args) -> int:
    from rdbench.learned.config import QUALITY_LAMBDAS, QUALITY_LAMBDAS_MS_SSIM, ModelConfig  # no torch

    _require_learned("train")
    _deprecated(args, [("k_deprecated", "k", "--k", "--context-size"), ("K_deprecated", "K", "--K", "--mixtures"),
                       ("loss_deprecated", "loss", "--metric", "--loss")])
    if args.lambda_index_deprecated:
        print("rdbench: --quality is deprecated in train: use --lambda-index", file=sys.stderr)
        args.lambda_index = (args.lambda_index or []) + args.lambda_index_deprecated
    ladder = QUALITY_LAMBDAS if args.loss == "mse" else QUALITY_LAMBDAS_MS_SSIM
    lambdas = [float(x) for x in _split(args.lmbda)]
    for q in _split(args.lambda_index):
        if not q.isdigit() or not 1 <= int(q) <= len(ladder):
            raise ValueError(f"--lambda-index {q}: expected 1..{len(ladder)}")
        lambdas.append(ladder[int(q) - 1])
    if not lambdas:
        raise ValueError("give --lambda or --lambda-index (several of either make a variable-rate model)")
    import torch

    from rdbench.data.images import rgb_pixels
    from rdbench.learned.train import TrainingError, TrainOptions, train

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no CUDA device")
    config = ModelConfig(args.variant, args.N, args.M, args.k, args.K, tuple(lambdas))
    opts = TrainOptions(
        config=config, data=args.data, out=args.out, steps=args.steps, batch=args.batch, crop=args.crop,
        lr=args.lr, metric=args.loss, downscale=args.downscale, seed=args.seed, device=args.device,
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
    _require_learned("export")
    from rdbench.learned.checkpoint import export_rate

    config = export_rate(args.checkpoint, args.rate - 1, args.out)
    print(f"{args.out}: {config.label()}, lambda {config.rates[0]:g} (CompressAI's classes load its state_dict)")
    return 0


def cmd_ablate(args) -> int:
    if not args.summary_only:  # --summary-only reads stored rows: no torch needed
        _require_learned("ablate")
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
        print(write_summary(config, out, " ".join(relative_command(["rdbench", *sys.argv[1:]]))))
        return 0
    executor = dask_executor(args)  # training cells and evaluation items on a Dask cluster
    try:
        if not args.eval_only:
            train_all(config, out, jobs=args.jobs, device=args.device, executor=executor)
        if args.train_only:
            return 0
        summary = evaluate(config, out, workers=args.workers, device=args.device,
                           max_images=args.max_images, progress=not args.no_progress, executor=executor)
    finally:
        if executor is not None:
            executor.close()
    print(f"{summary.ok} measured, {summary.failed} failed, {summary.skipped} already stored", file=sys.stderr)
    print(write_summary(config, out, " ".join(relative_command(["rdbench", *sys.argv[1:]]))))
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
