"""The Executor on a Dask cluster: a laptop's LocalCluster, a hand-started scheduler, or Slurm.

`DaskExecutor` keeps the contract of `bench.executor.Executor`: it yields (job, result) pairs as
results arrive, every job exactly once, and never writes the store (the runner, in this client
process, stays its only writer, so kill-safety and resume are those of a local run).

How jobs become tasks:

- **Batches.** A Kodak JPEG item costs ~30 ms; one task per item would make the scheduler the
  bottleneck (~1 ms of scheduler work per task, more at scale). The first tasks carry one item
  each and report the seconds their items took (codec set-up excluded); from then on each task
  carries `target_task_s / mean item cost` items (at least 1, at most `MAX_BATCH`, and never so
  many that the last tasks leave workers idle). `batch_size=N` fixes the size instead.
- **Images by path.** Items carry the image's path and pixel digest; a worker reads the file
  from shared storage and checks the digest once per process and image (`measure.check_image`);
  a mismatch is that item's error row, and so is a worker whose build of the codec is not the
  version the client planned (rows are keyed by it). Jobs are planned image by image, so a batch's items
  share an image and it is read once per batch, not once per item; pixels never pass through
  the scheduler.
- **In flight.** About `IN_FLIGHT_PER_WORKER` tasks per worker are submitted at a time, so a
  batch size learnt from the first results applies to nearly all of the grid, and workers that
  join later (Slurm jobs starting) are used as they arrive.

Faults:

- A worker that dies (SIGKILL, node lost): Dask reruns its tasks on other workers. Each task's
  result is yielded once, when its future completes, and a job index is never yielded twice.
  A task that kills `distributed.scheduler.allowed-failures` workers (KilledWorker) is split
  into single-item tasks; a single item that still does is yielded as `on_crash(job)`.
- The scheduler gone: `ClusterError` naming its address. Rows yielded so far are stored, so the
  same command run again measures only what is missing.
- A worker without a codec binary: `measure` returns that item's error row, as locally.

Security: Dask's messages are pickles, so whoever reaches the scheduler, or can write the
scheduler file rdbench reads, runs code on every worker and in this client. `security` (a
distributed.Security, from a cluster file's [security] table: `security_from`) makes every
connection TLS with certificates; a scheduler file that other users can write, or that another
user owns, is refused (`check_scheduler_file`). README's "Scaling out" gives the safe set-ups.

Each worker process runs one item at a time (a lock here; start workers with `--nthreads 1`
and `--nworkers N` for parallelism): `measure` keeps per-process codec caches, and timings of
threads that share a core would be worth nothing.
"""

from __future__ import annotations

import math
import threading
import time
import tomllib
import uuid
from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

import dask
from distributed import Client, LocalCluster, as_completed
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from rdbench.errors import ClusterError

J = TypeVar("J")
R = TypeVar("R")

IN_FLIGHT_PER_WORKER = 3
TARGET_TASK_S = 1.0  # ~0.1 % scheduler overhead per task at ~1 ms each
MAX_BATCH = 256
WORKER_COUNT_EVERY_S = 1.0
CONNECT_TIMEOUT_S = 10.0

_one_at_a_time = threading.Lock()


def _run_batch(fn: Callable[[J], R], jobs: list[J]) -> tuple[list[R], float, str]:
    """On a worker: ([fn(job) for each job], seconds the jobs took minus their codec set-up, the
    worker's address)."""
    from distributed import get_worker

    from rdbench.bench.measure import Item, check_codec_version, check_image, error_row

    results = []
    with _one_at_a_time:
        started = time.perf_counter()
        setup = 0.0
        for job in jobs:
            problem = (check_image(job.image) or check_codec_version(job)) if isinstance(job, Item) else None
            result = error_row(job, problem) if problem else fn(job)
            if isinstance(result, dict):
                setup += result.get("setup_s") or 0.0
            results.append(result)
        busy = time.perf_counter() - started - setup
    return results, max(busy, 0.0), get_worker().address


def _worker_total(client: Client) -> int:
    """Workers connected now, without fetching each one's details where this distributed can."""
    try:
        info = client.scheduler_info(n_workers=0)  # distributed >= 2025: totals only
    except TypeError:
        info = client.scheduler_info()
    if "n_workers" in info:
        return int(info["n_workers"])
    return len(info.get("workers", {}))


def _is_scheduler_file(target: str) -> bool:
    return "://" not in target and (target.endswith(".json") or Path(target).is_file())


def check_scheduler_file(path: str | Path) -> None:
    """Refuse a scheduler file that someone else could have written: the address in it is where
    this client sends and receives pickles (code). It must belong to this user and be writable by
    no one else (chmod go-w)."""
    import os
    import stat

    try:
        st = os.stat(path)
    except OSError:
        return  # not there (yet): Client waits for it and names it
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ClusterError(f"{path}: the scheduler file belongs to another user (uid {st.st_uid}); whoever writes it "
                           "chooses the scheduler this run trusts with code: use your own (README: Scaling out)")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ClusterError(f"{path}: the scheduler file is writable by other users (mode {stat.S_IMODE(st.st_mode):o});"
                           f" whoever writes it chooses the scheduler this run trusts with code: chmod go-w {path}")


# The keys of a cluster file's [security] table: distributed.Security's own arguments.
SECURITY_KEYS = {"require_encryption", "tls_ca_file", "tls_ciphers", "tls_min_version", "tls_max_version",
                 "tls_client_key", "tls_client_cert", "tls_scheduler_key", "tls_scheduler_cert",
                 "tls_worker_key", "tls_worker_cert", "extra_conn_args"}


def security_from(table: dict | None):
    """A distributed.Security from a [security] table (None without one). Unknown keys are an
    error, naming them; certificate files must exist."""
    if not table:
        return None
    from distributed.security import Security

    unknown = set(table) - SECURITY_KEYS
    if unknown:
        raise ValueError(f"unknown [security] keys: {', '.join(sorted(unknown))} (known: {', '.join(sorted(SECURITY_KEYS))})")
    for key, value in table.items():
        if key.startswith("tls_") and key.endswith(("_file", "_key", "_cert")) and not Path(value).is_file():
            raise ValueError(f"[security] {key} = {value!r}: no such file")
    return Security(**table)


class DaskExecutor:
    """Jobs on a Dask cluster, given by one of:

    - `scheduler`: a running scheduler's address (`tcp://host:8786`) or its scheduler file;
    - `cluster`: a dask Cluster object (e.g. from `slurm_cluster`), closed with this executor;
    - neither: a LocalCluster of `n_workers` single-threaded worker processes.

    `resources` (e.g. {"GPU": 1}) is asked of every task (workers started with
    `--resources GPU=1`). `security`: a distributed.Security for TLS connections (`security_from`);
    a LocalCluster started here then uses TLS as well. Use as a context manager, or call `close()`."""

    def __init__(self, scheduler: str | None = None, *, cluster=None, n_workers: int | None = None,
                 batch_size: int | None = None, target_task_s: float = TARGET_TASK_S,
                 resources: dict | None = None, connect_timeout_s: float | None = None,
                 wait_for_workers: int = 0, security=None):
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.target_task_s = target_task_s
        self.resources = resources or None
        self._own_cluster = None
        self.kind = "external"
        connect_timeout_s = connect_timeout_s or CONNECT_TIMEOUT_S
        try:
            if scheduler and _is_scheduler_file(scheduler):
                check_scheduler_file(scheduler)
                self.address = scheduler
                self.client = Client(scheduler_file=scheduler, timeout=connect_timeout_s, security=security)
            elif scheduler:
                self.address = scheduler
                self.client = Client(scheduler, timeout=connect_timeout_s, security=security)
            else:
                if cluster is None:
                    from rdbench.conventions import usable_cores

                    tls = {"protocol": "tls://", "security": security} if security else {}
                    cluster = LocalCluster(n_workers=n_workers or usable_cores(), threads_per_worker=1,
                                           processes=True, dashboard_address=None, host="127.0.0.1", **tls)
                    self.kind = "local"
                else:
                    self.kind = type(cluster).__name__
                self._own_cluster = cluster
                self.address = cluster.scheduler_address
                self.client = Client(cluster, timeout=connect_timeout_s,
                                     security=security or getattr(cluster, "security", None))
        except (OSError, TimeoutError) as exc:
            self._close_cluster()
            raise ClusterError(f"cannot connect to the Dask scheduler at {scheduler or 'a new cluster'}: {exc}") from exc
        except TypeError as exc:  # distributed's words for a tls:// address without certificates
            if "TLS" not in str(exc):
                raise
            self._close_cluster()
            raise ClusterError(f"the Dask scheduler at {scheduler} speaks TLS: give its certificates in a [security] "
                               "table of --cluster-config FILE (README: Scaling out)") from None
        self.address = self.client.scheduler.address or self.address
        self.workers_seen: set[str] = set()
        self.tasks = 0
        self.largest_batch = 0
        self._workers_now, self._counted_at = 1, -math.inf
        if wait_for_workers:
            try:
                self.client.wait_for_workers(wait_for_workers)
            except BaseException:  # Ctrl-C while Slurm jobs queue: cancel them, not leave them
                self.close()
                raise

    # -- lifetime ---------------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self.client.close(timeout=5)
        except Exception:  # a scheduler already gone: nothing left to close cleanly
            pass
        self._close_cluster()

    def _close_cluster(self) -> None:
        if self._own_cluster is not None:
            try:
                self._own_cluster.close()
            except Exception:
                pass
            self._own_cluster = None

    # -- the Executor protocol ----------------------------------------------------------------------
    def describe(self) -> dict:
        try:
            workers = _worker_total(self.client)
        except Exception:  # the scheduler is gone: say what took part
            workers = None
        return {
            "executor": "dask",
            "cluster": self.kind,
            "scheduler": self.address,
            "workers": workers,
            "worker_addresses": sorted(self.workers_seen),  # those that computed rows of this run
            "tasks": self.tasks,
            "batch_size": self.batch_size or "adaptive",
            "largest_batch": self.largest_batch,
            "resources": self.resources,
            "dask_version": dask.__version__,
        }

    def _worker_count(self) -> int:
        """Workers now connected, asked of the scheduler at most once a second (it is a round trip)."""
        now = time.monotonic()
        if now - self._counted_at > WORKER_COUNT_EVERY_S:
            try:
                self._workers_now = _worker_total(self.client)
            except Exception:
                pass
            self._counted_at = now
        return max(1, self._workers_now)

    def _lost(self, exc: BaseException | None = None) -> ClusterError:
        why = f": {exc}" if exc else ""
        return ClusterError(f"lost the Dask scheduler at {self.address}{why}; every row received so far is stored, "
                            "run the same command again to measure the rest")

    def run(self, fn: Callable[[J], R], jobs: Iterable[J], on_crash: Callable[[J], R]) -> Iterator[tuple[J, R]]:
        """Yield (job, fn(job)) as batches complete; `on_crash(job)` for a job that kept killing workers."""
        jobs = list(jobs)
        pending = deque(range(len(jobs)))
        alone: deque[int] = deque()  # indices of a batch that kept killing workers: one task each
        yielded: set[int] = set()
        in_flight: dict = {}
        done = as_completed()
        item_s: list[float] = []  # per-item seconds reported by finished batches
        run_id = uuid.uuid4().hex[:8]

        def size() -> int:
            if self.batch_size:
                return self.batch_size
            if not item_s:
                return 1
            mean = sum(item_s) / len(item_s)
            by_cost = max(1, round(self.target_task_s / max(mean, 1e-6)))
            balance = max(1, math.ceil(len(pending) / (2 * self._worker_count())))
            return min(by_cost, balance, MAX_BATCH)

        def submit(indices: list[int]) -> None:
            self.tasks += 1
            future = self.client.submit(_run_batch, fn, [jobs[i] for i in indices], pure=False,
                                        key=f"rdbench-{run_id}-{self.tasks}", resources=self.resources)
            in_flight[future] = indices
            done.add(future)

        def top_up() -> None:
            window = IN_FLIGHT_PER_WORKER * self._worker_count()
            while alone and len(in_flight) < window:
                submit([alone.popleft()])
            while pending and len(in_flight) < window:
                n = size()
                self.largest_batch = max(self.largest_batch, n)
                submit([pending.popleft() for _ in range(min(n, len(pending)))])

        try:
            top_up()
            while in_flight:
                future = next(done)
                indices = in_flight.pop(future)
                if future.cancelled() or self.client.status not in ("running", "newly-created"):
                    raise self._lost()
                if future.status == "error":
                    exc = future.exception()
                    if isinstance(exc, KilledWorker):
                        if len(indices) > 1:
                            alone.extend(indices)
                        else:
                            yielded.add(indices[0])
                            yield jobs[indices[0]], on_crash(jobs[indices[0]])
                        top_up()
                        continue
                    raise ClusterError(f"a task failed on the Dask cluster at {self.address}: "
                                       f"{type(exc).__name__}: {exc}") from exc
                results, busy, worker = future.result()
                self.workers_seen.add(worker)
                future.release()
                if results:
                    item_s.append(busy / len(results))
                top_up()
                for i, result in zip(indices, results):
                    if i not in yielded:  # a rerun batch after a worker loss is never yielded twice
                        yielded.add(i)
                        yield jobs[i], result
        except (FutureCancelledError, OSError) as exc:
            raise self._lost(exc) from exc
        except StopIteration as exc:
            raise self._lost() from exc
        finally:
            for future in in_flight:
                future.cancel()
        missing = len(jobs) - len(yielded)
        if missing:  # the contract: every job once; never silently short
            raise ClusterError(f"{missing} jobs were not returned by the Dask cluster at {self.address}")


def read_cluster_file(path: str | Path) -> dict:
    """A cluster configuration file's tables ([slurm], [security]; see
    rdbench/_cluster_examples/slurm.toml), checked for tables rdbench does not know."""
    path = Path(path)
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read cluster configuration {path}: {exc}") from exc
    unknown = set(config) - {"slurm", "security"}
    if unknown:
        raise ValueError(f"{path}: unknown tables {', '.join(sorted(unknown))} (known: slurm, security)")
    if "security" in config:  # certificate files named relative to the configuration file
        config["security"] = {k: str((path.parent / v).resolve()) if k.startswith("tls_") and isinstance(v, str)
                              and k not in ("tls_ciphers", "tls_min_version", "tls_max_version") else v
                              for k, v in config["security"].items()}
    return config


def load_cluster_config(path: str | Path) -> dict:
    """The [slurm] table of a cluster configuration file, with its [security] table (if any) under
    the key `security` (see rdbench/_cluster_examples/slurm.toml)."""
    config = read_cluster_file(path)
    if "slurm" not in config:
        raise ValueError(f"{path}: no [slurm] table (see rdbench/_cluster_examples/slurm.toml)")
    slurm = dict(config["slurm"])
    if "security" in config:
        slurm["security"] = config["security"]
    return slurm


# SLURMCluster's arguments rdbench passes through ([slurm] table); `security` is the [security]
# table (TLS certificates), `scheduler_options` a table of the scheduler's own (e.g.
# {interface = "ib0", port = 8786}), `protocol` "tls://" with security.
SLURM_KEYS = {"queue", "account", "walltime", "cores", "processes", "memory", "job_extra_directives",
              "job_script_prologue", "python", "local_directory", "log_directory", "interface",
              "worker_extra_args", "job_name", "death_timeout", "security", "scheduler_options", "protocol",
              "shared_temp_directory"}


def slurm_cluster(config: dict):
    """A dask-jobqueue SLURMCluster from a [slurm] table, scaled to its `jobs` (default 1).

    `gpus = N` adds `--gres=gpu:N` to each job and starts its workers with resources GPU=N
    (split over the job's worker processes). `security` (the [security] table) makes the
    scheduler, workers and client speak TLS with those certificates (protocol tls:// unless
    given). Unknown keys are an error, naming them."""
    from dask_jobqueue import SLURMCluster

    config = dict(config)
    jobs = int(config.pop("jobs", 1))
    gpus = int(config.pop("gpus", 0))
    unknown = set(config) - SLURM_KEYS
    if unknown:
        raise ValueError(f"unknown [slurm] keys: {', '.join(sorted(unknown))} (known: jobs, gpus, "
                         f"{', '.join(sorted(SLURM_KEYS))})")
    config.setdefault("cores", 1)
    config.setdefault("memory", "4GB")
    config.setdefault("processes", config["cores"])  # one single-threaded worker per core
    if config.get("security") is not None and not hasattr(config["security"], "get_connection_args"):
        config["security"] = security_from(config["security"])
        config.setdefault("protocol", "tls://")
    extra_args = list(config.pop("worker_extra_args", []))
    directives = list(config.pop("job_extra_directives", []))
    if gpus:
        directives.append(f"--gres=gpu:{gpus}")
        per_worker = max(1, gpus // int(config["processes"]))
        extra_args += ["--resources", f"GPU={per_worker}"]
    cluster = SLURMCluster(job_extra_directives=directives, worker_extra_args=extra_args, **config)
    cluster.scale(jobs=jobs)
    return cluster
