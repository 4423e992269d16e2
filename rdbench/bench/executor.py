"""Executors run independent jobs and hand back each result as soon as it exists.

`Executor` is the seam: anything with `run(fn, jobs, on_crash)` that yields (job, result) pairs
as results arrive. The runner is the only writer of the store; executors only compute rows.

`LocalExecutor` uses worker processes on this machine. It keeps only a few jobs in flight per
worker, so that when a worker process dies (a codec library crashing the interpreter) the jobs
that may have caused it are known: each is rerun alone in a fresh process, and only a job that
kills a process with nothing else running is reported as failed (jobs that merely shared the
pool with the culprit are measured normally). Another engine (e.g. Dask) only needs `run` and
`describe`, and is handed to `runner.run(executor=...)`.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator, Protocol, TypeVar

from rdbench.conventions import end_worker, exit_with, usable_cores

J = TypeVar("J")
R = TypeVar("R")

IN_FLIGHT_PER_WORKER = 2


def default_workers() -> int:
    return usable_cores()


def _init_worker(single_thread: bool, run_pid: int) -> None:
    exit_with(run_pid)
    # Ctrl-C reaches the whole process group: only the parent acts on it (it stores what is done
    # and stops the workers); a worker interrupted mid-item would only print a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # the run ends its workers with SIGTERM (worker_pool): the binary a worker runs and its scratch
    # folder go with it (a codec binary inherits the ignored SIGINT, so Ctrl-C alone never stops it)
    signal.signal(signal.SIGTERM, lambda *_: end_worker(128 + signal.SIGTERM))
    if single_thread:  # one thread per worker: parallelism comes from the processes
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        torch = sys.modules.get("torch")
        threads = os.environ["OMP_NUM_THREADS"]
        if torch is not None and threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))  # the fork server imported torch (preload): it read the variables already


@contextmanager
def worker_pool(workers: int, context=None, single_thread: bool = True,
                preload: tuple[str, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """A process pool that, when the caller stops early (Ctrl-C, an error, the generator closed),
    terminates its workers at once: ProcessPoolExecutor's own exit waits for them, which can hang
    for ever once they were interrupted too (seen: a run stuck after Ctrl-C in shutdown's join).

    `preload`: modules the fork server imports once, before it forks any worker (the codecs'
    `worker_preload`); ignored where the fork server of this process had started already, and
    with other start methods."""
    if context is None and os.name == "posix":
        context = multiprocessing.get_context("forkserver")
        if preload:  # it only imports: no thread pool is started before the fork
            context.set_forkserver_preload(["__main__", *preload])
    context = context or multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(single_thread, os.getpid()))
    try:
        yield pool
    except BaseException:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        # the pool's manager thread sees its workers gone, closes its wake-up pipe and ends: wait
        # for that (briefly), or the interpreter's exit hook may write to the pipe while it is
        # being closed (Python 3.11: "OSError: Bad file descriptor" printed after the run's error)
        manager = getattr(pool, "_executor_manager_thread", None)
        if manager is not None:
            manager.join(timeout=10)
        raise
    pool.shutdown(wait=True)


class Executor(Protocol):
    """Where result rows are computed: the seam between the runner and an engine.

    The contract an implementation keeps (LocalExecutor here; a Dask client would be another):

    - `run(fn, jobs, on_crash)` calls `fn(job)` once per job, wherever it likes, and yields
      `(job, result)` pairs in completion order, as soon as each result exists, so that the
      runner can store it at once (a killed run loses nothing that was yielded).
    - Every job is yielded exactly once. A job whose worker kept dying (a codec crashing its
      process) is yielded with `on_crash(job)` as its result instead of stopping the run.
    - `fn` and the jobs are picklable (a module-level function, `functools.partial` of one, and
      frozen dataclasses), and `fn` never raises for a codec's failure (measure() returns an
      error row), so a job may run in another process or on another machine.
    - Executors only compute; they never write the result store: the runner, in the calling
      process, is its only writer.
    - `describe()` returns a small JSON-able dict saying where jobs ran (engine, workers,
      scheduler address...); the runner records it in runs.jsonl.
    """

    def run(self, fn: Callable[[J], R], jobs: Iterable[J], on_crash: Callable[[J], R]) -> Iterator[tuple[J, R]]: ...

    def describe(self) -> dict: ...


class LocalExecutor:
    """The Executor of one machine: a pool of `workers` processes (default: every usable core)."""

    def __init__(self, workers: int | None = None, preload: tuple[str, ...] = ()):
        self.workers = workers or default_workers()
        self.preload = tuple(preload)  # see worker_pool

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
        suspects: list = []  # jobs in flight at a crash: each is rerun alone, so blame is certain
        while pending or suspects:
            alone = bool(suspects)
            with worker_pool(1 if alone else self.workers, preload=self.preload) as pool:
                if alone:
                    job = suspects.pop()
                    try:
                        result = pool.submit(fn, job).result()
                    except BrokenProcessPool:
                        result = on_crash(job)  # it killed a worker with nothing else running
                    yield job, result
                    continue
                in_flight: dict = {}
                broken = False
                while (pending or in_flight) and not broken:
                    while pending and len(in_flight) < self.workers * IN_FLIGHT_PER_WORKER:
                        job = pending.pop()
                        try:
                            in_flight[pool.submit(fn, job)] = job
                        except BrokenProcessPool:  # a worker died since the last wait: this job never ran
                            pending.append(job)
                            broken = True
                            break
                    if broken:
                        break
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        try:
                            result = future.result()
                        except BrokenProcessPool:
                            broken = True
                            continue
                        yield in_flight.pop(future), result
                # after a crash any job still in flight may be the culprit, or an innocent that
                # shared the pool with it: rerun each alone, one fresh process at a time
                suspects.extend(reversed(list(in_flight.values())))
