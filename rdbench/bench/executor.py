"""Executors run independent jobs and hand back each result as soon as it exists.

`Executor` is the seam: anything with `run(fn, jobs, on_crash)` that yields (job, result) pairs
as results arrive. The runner is the only writer of the store; executors only compute rows.

`LocalExecutor` uses worker processes on this machine. It keeps only a few jobs in flight per
worker, so that when a worker process dies (a codec library crashing the interpreter) the jobs
that may have caused it are known: they are retried once in a fresh pool, and a job that was in
flight at two crashes is reported as failed. Another engine (e.g. Dask) only needs `run`.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator, Protocol, TypeVar

J = TypeVar("J")
R = TypeVar("R")

IN_FLIGHT_PER_WORKER = 2


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _init_worker() -> None:
    # one thread per worker: parallelism comes from the processes
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")


class Executor(Protocol):
    """Runs independent jobs and yields (job, fn(job)) in completion order.

    `on_crash(job)` stands in for a job whose worker kept dying (a codec crashing the process);
    every job is yielded exactly once. `describe()` says where jobs ran, for runs.jsonl."""

    def run(self, fn: Callable[[J], R], jobs: Iterable[J], on_crash: Callable[[J], R]) -> Iterator[tuple[J, R]]: ...

    def describe(self) -> dict: ...


class LocalExecutor:
    def __init__(self, workers: int | None = None):
        self.workers = workers or default_workers()

    def describe(self) -> dict:
        return {"executor": "local", "workers": self.workers}

    def run(
        self,
        fn: Callable[[J], R],
        jobs: Iterable[J],
        on_crash: Callable[[J], R],
    ) -> Iterator[tuple[J, R]]:
        """Yield (job, fn(job)) in completion order; `on_crash(job)` stands in for a job that kept killing its worker."""
        jobs = list(jobs)
        if self.workers <= 1:
            for job in jobs:
                yield job, fn(job)
            return
        pending = list(reversed(jobs))
        crashes: dict[int, int] = {}
        context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
        while pending:
            with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker) as pool:
                in_flight: dict = {}
                broken = False
                while (pending or in_flight) and not broken:
                    while pending and len(in_flight) < self.workers * IN_FLIGHT_PER_WORKER:
                        job = pending.pop()
                        in_flight[pool.submit(fn, job)] = job
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        try:
                            result = future.result()
                        except BrokenProcessPool:
                            broken = True
                            continue
                        yield in_flight.pop(future), result
                # after a crash, whatever was in flight may be the culprit: retry once, then fail it
                for job in in_flight.values():
                    crashes[id(job)] = crashes.get(id(job), 0) + 1
                    if crashes[id(job)] >= 2:
                        yield job, on_crash(job)
                    else:
                        pending.append(job)
