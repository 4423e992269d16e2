"""The JPEG sweep through Dask (a LocalCluster of N single-threaded workers) against the local
process pool of N workers, in one run, on the same images: throughput ratio and scheduler
overhead per task.

Each executor runs the sweep into a fresh result folder `--repeats` times, alternating, so a
machine's drift hits both alike; throughput is items per second of `runner.run` (planning,
measuring, storing), the cluster's start-up reported apart. On a machine shared with other work
wall times drift by 2x between runs; the CPU seconds of this process (the client, and the
LocalCluster's scheduler, which runs in it) do not, and say what Dask costs beside the workers. Overhead per task is the wall time
of `--noop-tasks` empty single-item tasks through the same DaskExecutor, divided by their number
(client submit, scheduler, worker, result back; the window of tasks in flight overlaps them as
in a sweep).

    python benchmarks/dask_sweep.py --kodak ../shared/datasets/kodak [--workers 2] [--max-images 24] \
        [--json results/benchmarks/dask_sweep.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

QUALITIES = list(range(5, 100, 5))


def _noop(job):
    return job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True, help="folder with the Kodak PNGs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-images", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--noop-tasks", type=int, default=1000)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()

    from rdbench.bench.dask_executor import DaskExecutor
    from rdbench.bench.executor import LocalExecutor
    from rdbench.bench.runner import load_codecs, run
    from rdbench.data.datasets import resolve_dataset

    dataset = resolve_dataset(args.kodak)
    dataset.images = dataset.images[: args.max_images]
    codecs = load_codecs(["jpeg"])
    items = len(dataset.images) * len(QUALITIES)

    t0 = time.perf_counter()
    dask = DaskExecutor(n_workers=args.workers)
    dask.client.wait_for_workers(args.workers)
    startup_s = time.perf_counter() - t0
    local = LocalExecutor(args.workers)
    seconds = {"local": [], "dask": []}
    client_cpu = {"local": [], "dask": []}  # CPU seconds of this process (client; LocalCluster's scheduler)
    with tempfile.TemporaryDirectory() as tmp, dask:
        for r in range(args.repeats):
            for name, executor in (("local", local), ("dask", dask)):
                cpu = time.process_time()
                summary = run(dataset, codecs, Path(tmp) / f"{name}{r}", qualities=QUALITIES, progress=False,
                              executor=executor)
                client_cpu[name].append(time.process_time() - cpu)
                assert summary.ok == items, summary
                seconds[name].append(summary.elapsed_s)
                print(f"{name} #{r}: {items} items in {summary.elapsed_s:.2f} s", file=sys.stderr)
        described = dask.describe()
        # overhead per task: empty tasks, one item each, through the same executor and window
        noop = DaskExecutor.__new__(DaskExecutor)
        noop.__dict__.update(dask.__dict__, batch_size=1, tasks=0, largest_batch=0)
        t1 = time.perf_counter()
        done = sum(1 for _ in noop.run(_noop, range(args.noop_tasks), on_crash=_noop))
        overhead_s = (time.perf_counter() - t1) / done
    local_s, dask_s = statistics.median(seconds["local"]), statistics.median(seconds["dask"])
    figures = {
        "items": items,
        "workers": args.workers,
        "local_s": seconds["local"],
        "dask_s": seconds["dask"],
        "local_items_per_s": items / local_s,
        "dask_items_per_s": items / dask_s,
        "throughput_ratio_dask_over_local": local_s / dask_s,  # of the medians
        "paired_ratios": [a / b for a, b in zip(seconds["local"], seconds["dask"])],  # each repeat's pair
        "dask_cluster_startup_s": startup_s,
        # robust to a shared machine's load: what the client (and, for Dask, the in-process
        # scheduler) spent, against the local pool's parent doing the same planning and storing
        "client_cpu_s_local": client_cpu["local"],
        "client_cpu_s_dask": client_cpu["dask"],
        "dask_extra_client_cpu_ms_per_item": (statistics.median(client_cpu["dask"]) -
                                               statistics.median(client_cpu["local"])) / items * 1e3,
        "dask_tasks_last_run": described["tasks"] // args.repeats,
        "dask_largest_batch": described["largest_batch"],
        "scheduler_overhead_per_task_ms": overhead_s * 1e3,
        "noop_tasks": args.noop_tasks,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
