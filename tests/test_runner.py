import csv
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from rdbench.data.datasets import folder_dataset
from rdbench.bench.executor import LocalExecutor
from rdbench.bench.runner import load_codecs, run
from rdbench.bench.store import COLUMNS, read_results

from . import crashy
from .conftest import REPO

RDBENCH = [sys.executable, "-m", "rdbench"]


def rows(out):
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_grid_is_measured_and_rerun_recomputes_nothing(small_dataset, tmp_path):
    out = tmp_path / "out"
    ds = folder_dataset(small_dataset)
    codecs = load_codecs(["jpeg", "webp:method=2"])
    s = run(ds, codecs, out, qualities=[20, 80], workers=2, progress=False)
    assert (s.ok, s.failed, s.skipped) == (12, 0, 0)
    table = rows(out)
    assert len(table) == 12 and list(table[0]) == list(COLUMNS)
    for r in table:
        assert r["status"] == "ok"
        assert float(r["bpp"]) == pytest.approx(8 * int(r["bytes"]) / (256 * 192))
        assert float(r["enc_s"]) > 0 and float(r["dec_s"]) > 0
        assert 20 < float(r["psnr_rgb"]) < 50 and 0 < float(r["ms_ssim"]) < 1
    again = run(ds, codecs, out, qualities=[20, 80], workers=2, progress=False)
    assert (again.ok, again.skipped) == (0, 12)
    assert len(rows(out)) == 12
    # a new quality only adds its own rows
    more = run(ds, codecs, out, qualities=[20, 50, 80], workers=2, progress=False)
    assert (more.ok, more.skipped) == (6, 12)


def test_keep_writes_bitstreams_and_reconstructions(small_dataset, tmp_path):
    from rdbench.data.images import load_rgb
    from rdbench.bench.measure import Settings

    out = tmp_path / "out"
    run(folder_dataset(small_dataset), load_codecs(["jpeg:subsampling=444"]), out, qualities=[40],
        workers=1, progress=False, settings=Settings(keep_dir=str(out)))
    bits = sorted((out / "bitstreams" / "jpeg_subsampling=444").iterdir())
    recs = sorted((out / "reconstructions" / "jpeg_subsampling=444").iterdir())
    assert [p.name for p in bits] == ["kodim01_crop.png.q40.jpg", "kodim07_crop.png.q40.jpg", "kodim23_crop.png.q40.jpg"]
    table = {r["image"]: r for r in rows(out)}
    assert bits[0].stat().st_size == int(table["kodim01_crop.png"]["bytes"])
    assert load_rgb(recs[0]).pixels.shape == (192, 256, 3)


def test_bad_image_is_recorded_and_the_run_goes_on(small_dataset, tmp_path):
    (small_dataset / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    s = run(folder_dataset(small_dataset), load_codecs(["jpeg"]), out, qualities=[50], workers=1, progress=False)
    assert (s.ok, s.failed) == (3, 1)
    bad = [r for r in rows(out) if r["image"] == "broken.png"]
    assert bad[0]["status"] == "error" and "broken.png" in bad[0]["error"]


def test_worker_crash_fails_only_the_crashing_job():
    results = dict(LocalExecutor(2).run(crashy.work, [1, 2, "crash", 3, 4, 5], on_crash=lambda job: "died"))
    assert results == {1: 2, 2: 4, 3: 6, 4: 8, 5: 10, "crash": "died"}


def test_torn_last_line_is_dropped_and_recomputed(small_dataset, tmp_path):
    out = tmp_path / "out"
    ds = folder_dataset(small_dataset)
    run(ds, load_codecs(["jpeg"]), out, qualities=[30, 60], workers=1, progress=False)
    data = (out / "results.csv").read_bytes()
    (out / "results.csv").write_bytes(data[:-40])  # as if killed in the middle of a write
    s = run(ds, load_codecs(["jpeg"]), out, qualities=[30, 60], workers=1, progress=False)
    assert s.ok == 1
    df = read_results(out)
    assert len(df) == 6 and df["status"].eq("ok").all()
    assert len(rows(out)) == 6


@pytest.mark.slow
def test_sigkill_then_rerun_completes_grid_without_loss_or_duplicates(kodak_dir, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "RDBENCH_KODAK": str(kodak_dir)}
    cmd = RDBENCH + ["run", "--codec", "jpeg,webp", "--quality", "10,30,50,70,90", "--max-images", "6",
                     "--out", str(out), "--no-progress", "--workers", "2"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once some, but not all, rows are stored
        if (out / "results.csv").exists() and len((out / "results.csv").read_bytes().splitlines()) > 8:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = len(rows(out))
    assert 0 < stored < 60, "the kill should land mid-run"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = pd.DataFrame(rows(out))
    assert len(table) == 60
    assert not table.duplicated(["image_sha256", "codec", "codec_version", "quality"]).any()
    assert table["status"].eq("ok").all()


def test_unavailable_codec_stops_before_any_work(kodak_dir, tmp_path):
    env = {**os.environ, "RDBENCH_KODAK": str(kodak_dir), "PATH": "/nonexistent", "RDBENCH_BPG_DIR": ""}
    done = subprocess.run(RDBENCH + ["run", "--codec", "jpeg,bpg", "--out", str(tmp_path / "o")],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "bpgenc, bpgdec not found" in done.stderr and "RDBENCH_BPG_DIR" in done.stderr
    assert not (tmp_path / "o" / "results.csv").exists()


def test_default_run_covers_every_available_classical_codec(kodak_dir, tmp_path):
    from rdbench.bench.runner import default_codec_specs

    out = tmp_path / "o"
    env = {**os.environ, "RDBENCH_KODAK": str(kodak_dir)}
    done = subprocess.run(RDBENCH + ["run", "--max-images", "1", "--quality", "40", "--out", str(out), "--no-progress"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = pd.DataFrame(rows(out))
    assert set(table["codec"]) == set(default_codec_specs()) and {"jpeg", "webp", "jpeg2000"} <= set(table["codec"])
    assert table["status"].eq("ok").all()


def test_cli_and_import_stay_light():
    code = "import sys, rdbench, rdbench.cli; rdbench.cli.build_parser(); print(sorted(m for m in ('torch','compressai','matplotlib','pandas') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    helped = subprocess.run(RDBENCH + ["run", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--codec" in helped.stdout


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...), from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_workers_die_with_a_killed_run(kodak_dir, tmp_path):
    """SIGKILL to the run alone (not its group, as the OOM killer does): no worker goes on measuring.
    (Forkserver workers hold the fork server alive, so the parent-death signal alone would not do.)"""
    out = tmp_path / "out"
    cmd = RDBENCH + ["run", "--codec", "jpeg2000,webp:method=6", "--max-images", "6", "--out", str(out),
                     "--no-progress", "--no-report", "--workers", "2"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "RDBENCH_KODAK": str(kodak_dir)})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "results.csv").exists():
        time.sleep(0.02)
    workers = set()
    while time.monotonic() < deadline and len(workers) < 4:  # resource tracker, fork server, 2 workers
        workers = _descendants(proc.pid)
        time.sleep(0.05)
    assert proc.poll() is None and len(workers) >= 4
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.05)
    left = [p for p in workers if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"{len(left)} worker process(es) outlived the killed run"


PRELOAD_PROBE = '''
import sys


def probe(_):
    """What a worker had imported before its first job, and its torch thread count."""
    torch = sys.modules.get("torch")
    return torch is not None, torch.get_num_threads() if torch is not None else None
'''

PRELOAD_RUN = '''
import sys
from rdbench.bench.executor import LocalExecutor
from probe import probe

preload = tuple(sys.argv[1:])
print(sorted({r for _, r in LocalExecutor(2, preload=preload).run(probe, range(4), on_crash=lambda j: None)}))
'''


@pytest.mark.parametrize("preload, expected", [((), "[(False, None)]"), (("torch",), "[(True, 1)]")])
def test_workers_inherit_preloaded_modules_and_stay_single_threaded(preload, expected, tmp_path):
    """A learned codec's `worker_preload` is imported once by the fork server (a fresh process per
    test: the fork server is one per process); its workers still run torch on one thread."""
    if preload:
        pytest.importorskip("torch")
    (tmp_path / "probe.py").write_text(PRELOAD_PROBE)
    done = subprocess.run([sys.executable, "-c", PRELOAD_RUN, *preload], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**{k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")},
                                                           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == expected
