"""`rdbench run`, `rdbench codecs`, `rdbench metrics`, `rdbench datasets`: measuring, and what can be measured here."""

from __future__ import annotations

import sys
from pathlib import Path

from rdbench import __version__
from rdbench.commands.common import EXIT_ITEMS_FAILED, _split, default_out_dir
from rdbench.commands.inputs import load_inputs, split_label, write_report


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
        from rdbench.bench.dask_executor import (DaskExecutor, load_cluster_config, read_cluster_file, security_from,
                                                 slurm_cluster)
    except ImportError as exc:
        raise ValueError(f"--scheduler/--cluster need Dask: pip install 'rdbench[dask]' ({exc})") from None
    options = dict(batch_size=args.batch_size, resources=resources)
    if args.cluster == "slurm":
        config = load_cluster_config(args.cluster_config)
        security = security_from(config.get("security"))
        return DaskExecutor(cluster=slurm_cluster(config), wait_for_workers=1, security=security, **options)
    # --scheduler and --cluster local: the file's [security] table (TLS), if one is given
    security = security_from(read_cluster_file(args.cluster_config).get("security")) if args.cluster_config else None
    if args.scheduler:
        return DaskExecutor(args.scheduler, security=security, **options)
    return DaskExecutor(n_workers=args.workers, security=security, **options)


def cmd_run(args) -> int:
    from rdbench.codecs.base import canonical_quality, split_spec_list
    from rdbench.data.datasets import resolve_dataset
    from rdbench.bench.measure import Settings
    from rdbench.bench.runner import default_codec_specs, fetch_zoo_weights, load_codecs, run

    metrics = chosen_metrics(args.metric)  # unknown or unavailable: exit 2 before any work
    dataset = resolve_dataset(args.dataset)
    if args.max_images:
        dataset.images = dataset.images[: args.max_images]
    specs = split_spec_list(args.codec) if args.codec else default_codec_specs()
    specs = [split_label(s)[0] for s in specs]  # label= is presentation: read back from runs.jsonl by reports
    if args.device == "cuda":
        specs = [_on_cuda(s) for s in specs]
    codecs = load_codecs(specs)
    qualities = [canonical_quality(q) for q in _split(args.quality)] or None
    targets = _targets(args)
    if targets and qualities:
        raise ValueError("--quality and --target-bpp/--target-psnr exclude each other: a target run searches the quality")
    for codec in codecs:  # out-of-range qualities stop the run before any work (exit 2)
        for q in qualities or []:
            codec.check_quality(q)
    fetch_zoo_weights(codecs, qualities)
    out = args.out or str(default_out_dir(dataset.name))
    print(f"rdbench {__version__}: {len(dataset.images)} images ({dataset.source}), "
          f"codecs: {', '.join(c.spec.text for c in codecs)}", file=sys.stderr)
    settings = Settings(timeout_s=args.timeout, keep_dir=out if args.keep else None, results_dir=out,
                        metrics=tuple(m.name for m in metrics) if args.metric else None,
                        check_decode=args.check_decode)
    executor = dask_executor(args)
    try:
        summary = run(
            dataset, codecs, out, qualities=qualities, workers=args.workers, settings=settings,
            retry_failed=args.retry_failed, progress=not args.no_progress, argv=sys.argv, executor=executor,
            fsync=args.fsync,
            targets=targets,
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
    inputs = load_inputs([out]) if (summary.failed or not args.no_report) else None
    if summary.failed:  # why, grouped: one line per way of failing, not one per item
        from rdbench.analysis.items import failure_lines

        print("failed items stored in results.csv, by reason:", file=sys.stderr)
        print("\n".join(failure_lines(inputs.rows)), file=sys.stderr)
    if targets:
        print(f"target rows: {', '.join(t.text for t in targets)} (one per image and codec; the row's "
              "target_bound names a bound hit)", file=sys.stderr)
    if not args.no_report and not targets:
        from rdbench.analysis.bd import MIN_POINTS

        table = inputs.curves
        if not len(table):
            print("no report: no item was measured (see the reasons above)", file=sys.stderr)
        elif table["codec"].nunique() and table.groupby("codec")["quality"].nunique().max() >= MIN_POINTS:
            try:
                report = write_report(inputs, out, args.anchor)
            except OSError as exc:  # the disk failed after the run: its rows are stored (exit 5, not 2)
                from rdbench.bench.store import StoreWriteError

                raise StoreWriteError(f"{exc.filename or out}: cannot write the report: {exc.strerror or exc}. Every "
                                      f"row is stored in {Path(out) / 'results.csv'}; `rdbench report {out} --out "
                                      f"{out}` writes the report again") from None
        else:
            print(f"no report: BD needs at least {MIN_POINTS} measured qualities per codec", file=sys.stderr)
    print(f"results: {Path(out) / 'results.csv'}" + (f"; report: {report}" if report else ""), file=sys.stderr)
    return EXIT_ITEMS_FAILED if summary.failed else 0


def _targets(args) -> list:
    """The targets of --target-bpp / --target-psnr (empty without them); bad values stop the run."""
    from rdbench.bench.targets import targets_from_options

    bpp = [float(v) for v in _split(getattr(args, "target_bpp", None))]
    psnr = [float(v) for v in _split(getattr(args, "target_psnr", None))]
    if getattr(args, "target_below", False) and not (bpp or psnr):
        raise ValueError("--target-below needs --target-bpp or --target-psnr")
    return targets_from_options(bpp, psnr, below=getattr(args, "target_below", False))


def chosen_metrics(values: list[str] | None):
    """The registry entries `--metric` names (the default set when none), each checked to run here:
    an unknown name (with the closest ones) or a missing library (with its install hint) is a
    ValueError, so the run stops before any work."""
    from rdbench.metrics import registry

    metrics = registry.parse(",".join(_split(values)))
    problems = [problem for problem in (m.missing() for m in metrics) if problem]
    if not problems:  # network weights: in the folder, or fetched now (checksum checked), before any work
        from rdbench.metrics import weights

        for metric in metrics:
            for file in metric.weight_files:
                try:
                    weights.fetch(file)
                except weights.WeightsUnavailable as exc:
                    problems.append(f"metric {metric.name!r}: {exc}")
    if problems:
        raise ValueError("--metric: cannot measure here:\n  " + "\n  ".join(problems))
    return metrics


def cmd_metrics(args) -> int:
    from rdbench.metrics import registry

    width = max(len(name) for name in (*registry.REGISTRY, *registry.NOT_YET))
    for metric in registry.REGISTRY.values():
        problem = metric.missing()
        state = f"unavailable: {problem}" if problem else "available"
        print(f"{metric.name:<{width}}  {state}{'; in the default set' if metric.default else ''}")
        columns = ", ".join(f"{c.name} ({c.unit})" if c.unit else c.name for c in metric.columns)
        needs = [n for n, flag in (("torch", metric.needs_torch), ("network weights", metric.weights)) if flag]
        print(f"{'':<{width}}  columns: {columns}; {metric.direction} is better")
        print(f"{'':<{width}}  {metric.library}; implementation {metric.identity() if not problem else metric.implementation}"
              + (f"; needs {' and '.join(needs)}" if needs else ""))
        print(f"{'':<{width}}  reference: {metric.reference}")
        if metric.weight_files:
            from rdbench.metrics import weights

            for file in metric.weight_files:
                where = (f"cached in {weights.weights_dir()}" if weights.cached(file) else
                         f"not in {weights.weights_dir()}: fetched from {weights.source_url(file)} (SHA-256 "
                         f"{file.sha256}...) by the first run that asks for it")
                print(f"{'':<{width}}  weights {file.name}: {where}")
    for name, why in registry.NOT_YET.items():
        print(f"{name:<{width}}  not in this rdbench yet: {why}")
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
        try:  # a codec's own code (a plugin's version, its ladder) may fail: name it, list the others
            ladder = ", ".join(f"{q:g}" for q in codec.qualities)
            version = codec.version
        except Exception as exc:
            print(f"{name:<{width}}  broken: {type(exc).__name__} from the codec's own code: {exc}")
            continue
        print(f"{name:<{width}}  {version}")
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


def cmd_datasets(args) -> int:
    import os

    from rdbench.data.datasets import dataset_state, load_manifest, manifest_names

    for name in manifest_names():
        m = load_manifest(name)
        size, state = dataset_state(m)
        print(f"{name}: {m.description}; {m.image_count} images" + (f"; {size}" if size else ""))
        print(f"  {state}" + (f"; or set ${m.local_env} to a copy" if m.local_env and not os.environ.get(m.local_env)
                                else ""))
    return 0
