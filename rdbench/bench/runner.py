"""Running the grid image x codec x quality into a result store."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from rdbench import __version__, library_versions
from rdbench.bench.executor import Executor, LocalExecutor
from rdbench.bench.measure import Item, Settings, error_row, measure
from rdbench.bench.store import ResultStore, StoreWriteError, cut_torn_line, quality_key, read_stored_rows
from rdbench.codecs import Codec, CodecUnavailable, available, load
from rdbench.conventions import utc_now
from rdbench.metrics.registry import parse_versions
from rdbench.data.datasets import Dataset


RUNS_FILE = "runs.jsonl"  # one JSON line per invocation
# How often the progress bar is redrawn while no item finishes (its clock keeps moving through a
# reference encoder's minutes per item): each second on a terminal, each minute into a file or pipe
REDRAW_S = {True: 1.0, False: 60.0}


class _Redrawing:
    """Redraws a tqdm bar every REDRAW_S seconds from a daemon thread until closed (tqdm's own
    lock orders the redraws with the updates of the thread storing rows)."""

    def __init__(self, bar):
        self.bar, self.stop = bar, threading.Event()
        every = REDRAW_S[bool(getattr(bar.fp, "isatty", lambda: False)())]
        self.thread = threading.Thread(target=self._loop, args=(every,), name="rdbench-progress", daemon=True)
        self.thread.start()

    def _loop(self, every: float) -> None:
        while not self.stop.wait(every):
            self.bar.refresh()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.bar.close()


@dataclass
class RunSummary:
    out_dir: str
    planned: int
    skipped: int
    ok: int
    failed: int
    elapsed_s: float


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during `run`: every row yielded so far is stored and the run is logged (interrupted)."""

    def __init__(self, summary: RunSummary):
        super().__init__()
        self.summary = summary


def default_codec_specs() -> list[str]:
    """Every classical codec that can run here (learned codecs are asked for by name)."""
    return [
        name for name, codec, problem in available(include_learned=False)
        if not problem and not getattr(codec, "learned", False)
    ]


def load_codecs(specs: list[str]) -> list[Codec]:
    """Load every requested codec before any work starts; a missing one stops the run here.

    Specs naming one configuration are loaded once (see `distinct_codecs`), and each one dropped
    is said on stderr."""
    codecs, problems = [], []
    for spec in specs:
        try:
            codecs.append(load(spec))
        except CodecUnavailable as exc:
            problems.append(str(exc))
    if problems:
        raise CodecUnavailable("cannot run:\n  " + "\n  ".join(problems))
    return _without_duplicates(codecs)


def fetch_zoo_weights(codecs: list[Codec], qualities: list | None) -> None:
    """Have every CompressAI zoo weight file the run needs in the cache before any work (offline,
    or with a bad mirror, the run stops here with the reason, rather than failing every item)."""
    from rdbench.codecs.zoo import ARCHITECTURES

    problems = []
    for codec in codecs:
        if hasattr(codec, "prefetch"):  # compressai:arch=NAME without a checkpoint (codecs/models.py)
            try:
                codec.prefetch(qualities)
            except CodecUnavailable as exc:
                problems.append(f"{codec.spec.text}: {exc}")
            continue
        if codec.spec.name not in ARCHITECTURES:
            continue
        from rdbench.codecs.zoo import fetch_weights

        for q in dict.fromkeys(int(codec.check_quality(q)) for q in (qualities or codec.qualities)):
            try:
                fetch_weights(codec.spec.name, codec.opts["metric"], q)
            except CodecUnavailable as exc:
                problems.append(f"{codec.spec.text}: {exc}")
                break  # one reason per codec is enough
    if problems:
        raise CodecUnavailable("cannot run:\n  " + "\n  ".join(problems))


def distinct_codecs(codecs: list[Codec]) -> tuple[list[Codec], list[tuple[Codec, Codec]]]:
    """(the codecs, each configuration once, in the order given; [(dropped, kept), ...]).

    Two codecs are one configuration when their `Codec.configuration` is equal: the same name and
    options after normalisation (option order, whitespace, defaults spelled out or not, a
    checkpoint's path written two ways). The first spec given is kept, with its text verbatim,
    so the keys of results already stored do not change."""
    kept: dict[str, Codec] = {}
    dropped = []
    for codec in codecs:
        first = kept.setdefault(codec.configuration, codec)
        if first is not codec:
            dropped.append((codec, first))
    return list(kept.values()), dropped


def _without_duplicates(codecs: list[Codec]) -> list[Codec]:
    codecs, dropped = distinct_codecs(codecs)
    for codec, first in dropped:
        same = "the same spec" if codec.spec.text == first.spec.text else f"the same configuration as {first.spec.text!r}"
        print(f"rdbench: codec {codec.spec.text!r} is {same} ({first.configuration}): measured once, as "
              f"{first.spec.text!r}", file=sys.stderr)
    return codecs


def plan(dataset: Dataset, codecs: list[Codec], qualities: list | None, done: set, targets: list | None = None,
         stored: dict | None = None, metrics: tuple = ()) -> tuple[list, int]:
    """(items to measure, number already stored): every image x codec x quality once, or with
    `targets` (bench.targets.Target) every image x codec x target once (TargetItem jobs).

    Codecs of one configuration are planned once (`distinct_codecs`), and so are qualities that are
    one value (30, 30.0 and '30'). A stored ok row (`stored`: {key: row}) that lacks some of
    `metrics` (registry entries) is planned again to measure those alone (`Item.add_metrics`)."""
    items, skipped = [], 0
    codecs, _ = distinct_codecs(codecs)
    versions = {c.spec.text: c.version for c in codecs}
    if targets:
        from rdbench.bench.targets import TargetItem

        for image in dataset.images:
            for codec in codecs:
                spec = codec.spec.text
                for target in targets:
                    if (image.sha256, spec, versions[spec], "", target.text) in done:
                        skipped += 1
                    else:
                        items.append(TargetItem(Item(dataset.name, image, spec, versions[spec], None), target))
        return items, skipped
    ladders = {c.spec.text: list(dict.fromkeys(c.check_quality(q) for q in (qualities or c.qualities))) for c in codecs}
    for image in dataset.images:
        for codec in codecs:
            spec = codec.spec.text
            for q in ladders[spec]:
                key = (image.sha256, spec, versions[spec], quality_key(q), "")
                row = (stored or {}).get(key)
                lacking = tuple(m.name for m in metrics if _lacks(row, m)) if row and row.get("status") == "ok" else ()
                if lacking:
                    items.append(Item(dataset.name, image, spec, versions[spec], q, lacking, tuple(row.items())))
                elif key in done:
                    skipped += 1
                else:
                    items.append(Item(dataset.name, image, spec, versions[spec], q))
    return items, skipped


def _image(job):
    """The ImageRef of a job: an Item, or a TargetItem wrapping one."""
    return job.image if isinstance(job, Item) else job.item.image


def _crashed_target(job) -> dict:
    from rdbench.bench.targets import target_error_row

    return target_error_row(job, "worker process died twice while this item was in flight (codec crash?)")


def _lacks(row: dict, metric) -> bool:
    """Whether a stored row lacks `metric`: its column empty, or NaN because the metric could not run
    where the row was measured (its library or weights missing then: not in the row's metric_versions)."""
    cell = row.get(metric.columns[0].name, "")
    return cell == "" or (cell == "nan" and metric.name not in parse_versions(row.get("metric_versions", "")))


def _crashed(item: Item) -> dict:
    return error_row(item, "worker process died twice while this item was in flight (codec crash?)")


def run(
    dataset: Dataset,
    codecs: list[Codec],
    out_dir: str | Path,
    qualities: list | None = None,
    workers: int | None = None,
    settings: Settings = Settings(),
    retry_failed: bool = False,
    progress: bool = True,
    argv: list[str] | None = None,
    executor: Executor | None = None,
    fsync: bool = False,
    targets: list | None = None,
) -> RunSummary:
    """Measure every missing item of dataset x codecs x qualities into OUT/results.csv.

    `executor` computes the rows: any `bench.executor.Executor` (default: a LocalExecutor with
    `workers` processes, the only place that names it); this process alone writes them, as they
    arrive. `fsync`: sync each row to the disk as it is stored (default: flushed per row, synced at
    the end; see ResultStore)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    codecs = _without_duplicates(codecs)
    with ResultStore(out_dir, fsync=fsync) as store:
        # metrics are added to stored rows only when asked for by name (--metric): a rerun of a grid
        # measures nothing it has, even rows from before a default metric existed
        stored = read_stored_rows(store.path) if settings.metrics is not None and not targets else None
        items, skipped = plan(dataset, codecs, qualities, store.done_keys(include_failed=not retry_failed), targets,
                              stored, settings.chosen_metrics())
        fn, crashed, failed_row = partial(measure, settings=settings), _crashed, error_row
        if targets:  # each job searches its quality, then measures it (bench/targets.py)
            from rdbench.bench.targets import measure_target, target_error_row

            fn, crashed, failed_row = partial(measure_target, settings=settings), _crashed_target, target_error_row
        bad = [i for i in items if _image(i).error]
        good = [i for i in items if not _image(i).error]
        ok = failed = 0
        bar = None
        if progress and items:
            from tqdm import tqdm

            bar = tqdm(total=len(items), unit="item", file=sys.stderr, dynamic_ncols=True, desc=f"{dataset.name}")
            redrawing = _Redrawing(bar)
        # modules the codecs' workers import anyway (torch, compressai), imported once by the fork server
        preload = tuple(sorted({m for c in codecs for m in getattr(c, "worker_preload", ())}))
        executor = executor or LocalExecutor(workers, preload=preload)
        interrupted = False
        try:
            for item in bad:  # images that could not be read: recorded, never sent to a codec
                store.append(failed_row(item, _image(item).error))
                failed += 1
                if bar:
                    bar.update()
            for _, row in executor.run(fn, good, on_crash=crashed):
                store.append(row)
                if row["status"] == "ok":
                    ok += 1
                else:
                    failed += 1
                if bar:
                    bar.update()
                    if failed:
                        bar.set_postfix(failed=failed)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if bar:
                redrawing.close()
    summary = RunSummary(str(out_dir), len(items), skipped, ok, failed, time.perf_counter() - started)
    _log_run(out_dir, dataset, codecs, qualities, summary, argv, executor.describe(), interrupted, fsync,
             [t.text for t in targets or []])
    if interrupted:
        raise RunInterrupted(summary)
    return summary


def _log_run(out_dir: Path, dataset: Dataset, codecs, qualities, summary: RunSummary, argv, where: dict,
             interrupted: bool = False, fsync: bool = False, targets: list | None = None) -> None:
    """Append what was run to DIR/runs.jsonl, so every result file says which command made it.

    A torn last line (a run killed while logging) is cut first, as the store cuts results.csv's:
    appended to, it would swallow this run's entry."""
    entry = {
        "finished_at": utc_now(),
        "command": argv if argv is not None else sys.argv,
        "rdbench_version": __version__,
        "libraries": library_versions(),
        "dataset": dataset.name,
        "dataset_source": dataset.source,
        "codecs": {c.spec.text: c.version for c in codecs},
        "qualities": qualities,
        **({"targets": targets} if targets else {}),
        **where,
        **asdict(summary),
        "interrupted": interrupted,
    }
    log = out_dir / RUNS_FILE
    try:
        cut_torn_line(log)
        with open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:  # the disk full or read-only after the last row: the rows are stored
        raise StoreWriteError(f"{out_dir / 'runs.jsonl'}: cannot log the run: {exc.strerror or exc} (its rows are "
                         f"stored in {out_dir / 'results.csv'})") from None
