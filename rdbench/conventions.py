"""Facts that more than one layer of rdbench relies on, each stated once.

Like `errors`, this module imports nothing of rdbench, so every layer (data, codecs, learned,
bench, analysis, ablation) may import it without creating a cycle. A fact that only one layer
uses lives in that layer (BD's minimum point count in `analysis/bd.py`, the result columns in
`bench/columns.py`, the scale bound of the Gaussian entropy model in `learned/exact.py`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import threading

# Image files rdbench reads, for measuring (data/) and for training (learned/): lower-case suffixes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pnm", ".pgm", ".bmp", ".webp", ".tif", ".tiff")

# MS-SSIM as pytorch-msssim and CompressAI compute it (metrics.py evaluates it, learned/train.py
# trains on it): an 11-tap Gaussian window, sigma 1.5, five scales with these weights.
MS_SSIM_WIN_SIZE = 11
MS_SSIM_WIN_SIGMA = 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# The window must still fit ('valid' filtering) after four 2x2 poolings: the smaller image side
# must be at least (11 - 1) * 2^4 + 1 = 161 pixels (pytorch-msssim asserts side > 160).
MS_SSIM_MIN_SIDE = (MS_SSIM_WIN_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1


# How long one call of an external binary (an encode, a decode) may take, in seconds, unless its
# codec spec's `timeout` (codecs/external.py) or `rdbench run --timeout` (cli.py) says otherwise.
DEFAULT_TIMEOUT_S = 600.0


# The largest image (pixels) rdbench decodes: an image file whose header declares more is refused
# before its pixels are allocated (a "decompression bomb": a few bytes declaring 100000 x 100000).
# $RDBENCH_MAX_PIXELS raises it (for images and for learned bitstreams, which default to 2**28).
MAX_PIXELS_ENV = "RDBENCH_MAX_PIXELS"
# The default is what one worker process (one per core) can afford: measuring an image costs
# about 60 bytes per pixel in the metrics (the goal of issue 24; 310 before it) plus ~10 for the
# original, the decoded copy and the codec's buffers, so 2**25 px (33.5 Mpx, e.g. 8192 x 4096)
# needs at most ~2.3 GB, one core's share of a machine with 2-4 GB per core.
DEFAULT_MAX_IMAGE_PIXELS = 2**25  # 33.5 Mpx: 8192 x 4096


def max_image_pixels() -> int:
    """The image pixel limit: $RDBENCH_MAX_PIXELS when it is a positive integer, else the default."""
    import os

    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MAX_IMAGE_PIXELS


def utc_now() -> str:
    """The current time in UTC, ISO 8601 to the second (e.g. 2026-12-01T06:00:00+00:00): the
    timestamp of result rows, runs.jsonl entries and reports."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def atomic_path(path):
    """A temporary name beside `path` to write to; renamed over `path` when the block ends without
    an error, deleted otherwise. So a reader (or a kill mid-write) never finds a half-written file
    at `path`: it holds the old content or the new, whole. The temporary name is hidden (a dot),
    unique per process, and keeps nothing of the extension (writers that pick a format by
    extension are told the format)."""
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.filename in (tmp, str(tmp)):  # the user knows the file, not its temporary name
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_atomic(path, data: bytes | str) -> None:
    """Write `data` (text as UTF-8) to `path` through a temporary name and a rename (atomic_path)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and Slurm set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def exit_with(pid: int) -> None:
    """Exit this (worker) process as soon as process `pid` (the run that started it) is gone.

    Called first thing in every pool worker rdbench starts: a run killed from outside (SIGKILL,
    the OOM killer, a closed terminal) must not leave workers measuring or training on their own.
    The parent-death signal cannot do it for forkserver workers: their parent is the fork server,
    which lives as long as any worker does. So a daemon thread waits on a pidfd of the run (Linux
    5.3+), or polls it once a second elsewhere, and ends the process when the run has ended."""

    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            os._exit(1)
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            import select

            select.select([fd], [], [])
        else:
            import time

            while True:
                time.sleep(1.0)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
        end_worker(1)

    threading.Thread(target=watch, name="rdbench-exit-with-run", daemon=True).start()


# What a worker started that must not outlive it: the process trees of the binaries it runs and
# its scratch folders. When the worker is ended from outside (the run's SIGTERM after Ctrl-C or an
# error, or the run gone: exit_with), end_worker ends them too, so that no codec binary goes on
# coding unowned (VTM takes minutes per image, and ignores the Ctrl-C its worker ignored) and no
# scratch folder stays behind in /dev/shm.
_OWNED_PIDS: set[int] = set()
_OWNED_DIRS: set[str] = set()
_ENDING = threading.Lock()  # end_worker runs once


def kill_tree(pid: int) -> None:
    """SIGKILL process `pid` and every process below it (found in /proc on Linux; elsewhere only `pid`)."""
    import signal

    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        entries = []
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    children.setdefault(int(f.read().rsplit(b")", 1)[1].split()[1]), []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile, or not readable
    tree, todo = [pid], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        tree += below
        todo += below
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


@contextlib.contextmanager
def owned_process(pid: int):
    """While the block runs, process `pid` (and what it starts) is killed if this worker is ended."""
    _OWNED_PIDS.add(pid)
    try:
        yield
    finally:
        _OWNED_PIDS.discard(pid)


@contextlib.contextmanager
def scratch_dir(prefix: str = "rdbench-"):
    """A private temporary folder (in /dev/shm when there is a writable one, else the system's
    temporary folder), removed when the block ends, and also when this worker is ended."""
    import tempfile
    from pathlib import Path

    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix=prefix, dir=shm) as tmp:
        _OWNED_DIRS.add(tmp)
        try:
            yield Path(tmp)
        finally:
            _OWNED_DIRS.discard(tmp)


def end_worker(status: int) -> None:
    """End this worker process now, with `status`, after killing the process trees it owns and
    removing its scratch folders (owned_process, scratch_dir).

    Two callers can come at once (the run's SIGTERM in the main thread, exit_with's thread seeing
    the run gone): one does the work and ends the process, the other returns at once. Otherwise
    the second could end the process (os._exit) while the first is between killing a binary and
    killing the child that binary started, which the kernel has just handed to init."""
    import shutil

    if not _ENDING.acquire(blocking=False):
        return
    for pid in list(_OWNED_PIDS):
        kill_tree(pid)
    for folder in list(_OWNED_DIRS):
        shutil.rmtree(folder, ignore_errors=True)
    os._exit(status)
