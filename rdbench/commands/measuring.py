"""`rdbench run`, `rdbench codecs`, `rdbench datasets`: measuring, and what can be measured here."""

from __future__ import annotations

import sys
from pathlib import Path

from rdbench import __version__
from rdbench.commands.common import DEFAULT_RESULTS_DIR, EXIT_ITEMS_FAILED, _split
from rdbench.commands.inputs import load_inputs, write_report


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
    settings = Settings(timeout_s=args.timeout, keep_dir=out if args.keep else None, check_decode=args.check_decode)
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


def cmd_datasets(args) -> int:
    import os

    from rdbench.data.datasets import data_home, load_manifest, manifest_names

    for name in manifest_names():
        m = load_manifest(name)
        local = os.environ.get(m.local_env or "")
        where = f"local copy {local} (${m.local_env})" if local else f"cache {data_home() / name} (downloaded on first use)"
        print(f"{name}: {m.description}; {len(m.images)} images; {where}")
    return 0
