"""`rdbench train`, `rdbench export`, `rdbench ablate`: the learned codecs' commands (torch imported inside)."""

from __future__ import annotations

import sys

from rdbench.commands.common import EXIT_ITEMS_FAILED, EXIT_USAGE, _deprecated, _progress_printer, _require_learned, _split
from rdbench.commands.inputs import relative_command
from rdbench.commands.measuring import dask_executor


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
        precision=args.precision, channels_last=args.channels_last, loader_workers=args.loader_workers,
        keep_at=tuple(args.keep_at or ()),
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
    from rdbench.ablation.profile import profile_all
    from rdbench.ablation.train import train_all
    from rdbench.conventions import write_atomic

    config = ablation_config.load(args.config, args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "config.toml").exists():
        write_atomic(out / "config.toml", config.text)
    if args.summary_only:
        print(write_summary(config, out, " ".join(relative_command(["rdbench", *sys.argv[1:]]))))
        return 0
    executor = dask_executor(args)  # training cells and evaluation items on a Dask cluster
    try:
        if not args.eval_only:
            train_all(config, out, jobs=args.jobs, device=args.device, executor=executor)
        if args.train_only:
            return 0
        profile_all(config, out)  # learning curves on the held-out images, complexity per cell
        summary = evaluate(config, out, workers=args.workers, device=args.device,
                           max_images=args.max_images, progress=not args.no_progress, executor=executor)
    finally:
        if executor is not None:
            executor.close()
    print(f"{summary.ok} measured, {summary.failed} failed, {summary.skipped} already stored", file=sys.stderr)
    print(write_summary(config, out, " ".join(relative_command(["rdbench", *sys.argv[1:]]))))
    return EXIT_ITEMS_FAILED if summary.failed else 0
