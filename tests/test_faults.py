"""Faults with real processes during `rdbench run` (issue 13): the disk filling up and the output
folder turning read-only mid-run, external codec binaries that hang, die by a signal, write
garbage or nothing, and a worker killed as by the OOM killer.

Every run here is the real command line in a subprocess (`python -m rdbench run`), on real
filesystems (a small tmpfs, an ext4 image on a loop device) and real binaries (the shell script
tests/fake_codecs/fake_codec.sh behind codec specs written as a user would, found through
RDBENCH_CODECS_PATH). Mounting needs root and a kernel that lets this container mount: where
that is refused the test is skipped, saying why.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rdbench.bench.store import read_results

from .test_runner import _alive

RDBENCH = [sys.executable, "-m", "rdbench"]
FAKE_CODEC = Path(__file__).resolve().parent / "fake_codecs" / "fake_codec.sh"
KEY = ["image_sha256", "codec", "codec_version", "quality"]
JPEG_LADDER = ",".join(str(q) for q in range(5, 100, 5))  # 19 qualities


# -- helpers -----------------------------------------------------------------------------------
def make_images(folder: Path, n: int = 3) -> Path:
    """n small synthetic RGB images (smooth gradients and noise, 96 x 64) as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(13)
    y, x = np.mgrid[0:64, 0:96]
    for i in range(n):
        base = np.stack([x * 2 + 10 * i, y * 3, (x + y) * (i + 1)], axis=-1) % 256
        noisy = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"img{i}.png")
    return folder


def write_fake_codecs(folder: Path, codecs: dict[str, tuple[str, str]], extra: str = "") -> Path:
    """One codec spec per name, its encoder and decoder being fake_codec.sh in the given modes
    (`extra`: more top-level keys of each spec)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (enc, dec) in codecs.items():
        (folder / f"{name}.toml").write_text(textwrap.dedent(f"""
            name = "{name}"
            description = "fake codec for tests/test_faults.py: encoder {enc}, decoder {dec}"
            binaries = ["sh"]
            extension = "png"
            qualities = [1, 2, 3, 4]
            quality_range = [0, 100]
            {extra}
            [commands]
            encode = ["{{sh}}", "{FAKE_CODEC}", "{enc}", "{{input}}", "{{output}}"]
            decode = ["{{sh}}", "{FAKE_CODEC}", "{dec}", "{{input}}", "{{output}}"]
        """))
    return folder


def rdbench(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*RDBENCH, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def csv_rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_clean_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    """A non-zero exit with rdbench's one-line error (naming the file and the problem), no traceback."""
    assert done.returncode not in (0, 3), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "rdbench: error:" in done.stderr, done.stderr
    for needle in needles:
        assert needle in done.stderr, done.stderr


def assert_complete_grid(out: Path, expected: int) -> list[dict]:
    rows = csv_rows(out)
    keys = [tuple(r[k] for k in KEY) for r in rows]
    assert len(rows) == expected and len(set(keys)) == expected, f"{len(rows)} rows, {len(set(keys))} keys"
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows if r["status"] != "ok"]
    return rows


def _need(condition: bool, reason: str) -> None:
    if not condition:
        pytest.skip(reason)


def _sh(*cmd) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60)


# -- the disk filling up -----------------------------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs mounted in tmp_path (root and mount permission needed, else skipped)."""
    _need(sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("mount"),
          "ENOSPC test mounts a small tmpfs: needs Linux, root and mount(8)")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    done = _sh("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt)
    _need(done.returncode == 0, f"cannot mount a tmpfs here (container without CAP_SYS_ADMIN?): {done.stderr.strip()}")
    yield mnt
    _sh("umount", "-l", mnt)


def test_disk_full_mid_run_is_a_clear_error_and_the_rerun_completes(small_tmpfs, tmp_path):
    images = make_images(tmp_path / "images")
    out = small_tmpfs / "out"
    filler = small_tmpfs / "filler"
    st = os.statvfs(small_tmpfs)
    filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 3 * 4096))  # room for ~25 of the 57 rows
    cmd = ["run", "--dataset", images, "--codec", "jpeg", "--quality", JPEG_LADDER, "--out", out,
           "--workers", "2", "--no-progress", "--no-report"]
    full = rdbench(*cmd)
    assert_clean_error(full, str(out / "results.csv"), "No space left on device")
    assert full.returncode == 5, full.stderr  # the store failed mid-run: not 2, "nothing run"
    # what was stored before the fault is intact: whole lines, each row complete and measured
    data = (out / "results.csv").read_bytes()
    assert data.endswith(b"\n"), "a torn line was left in results.csv"
    before = csv_rows(out)
    assert 0 < len(before) < 57, "the disk should fill up mid-run"
    assert all(r["status"] == "ok" for r in before)
    assert len(read_results(out)) == len(before)
    # space freed: the same command measures only what is missing, and stores no row twice
    filler.unlink()
    again = rdbench(*cmd)
    assert again.returncode == 0, again.stderr
    rows = assert_complete_grid(out, 57)
    assert rows[: len(before)] == before


def test_disk_full_at_the_run_log_is_a_clear_error_and_keeps_the_rows(small_tmpfs, tmp_path):
    """Room for results.csv (one page) but not for runs.jsonl, written after the last row."""
    images = make_images(tmp_path / "images", 1)
    out = small_tmpfs / "out"
    filler = small_tmpfs / "filler"
    st = os.statvfs(small_tmpfs)
    filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 4096))
    cmd = ["run", "--dataset", images, "--codec", "jpeg", "--quality", "50", "--out", out, "--workers", "1",
           "--no-progress", "--no-report"]
    full = rdbench(*cmd)
    assert_clean_error(full, str(out / "runs.jsonl"), "No space left on device")
    assert full.returncode == 5, full.stderr  # the store failed mid-run: not 2, "nothing run"
    assert [r["status"] for r in csv_rows(out)] == ["ok"]
    filler.unlink()
    again = rdbench(*cmd)
    assert again.returncode == 0 and "0 measured, 0 failed, 1 already stored" in again.stderr, again.stderr
    assert_complete_grid(out, 1)


# -- the output folder turning read-only -------------------------------------------------------
@pytest.fixture
def ext4_volume(tmp_path):
    """An 8 MiB ext4 image mounted with errors=remount-ro, as a data disk usually is, and how to make
    the kernel remount it read-only at once (its trigger_fs_error, what a disk error does)."""
    _need(sys.platform.startswith("linux") and os.geteuid() == 0 and shutil.which("mkfs.ext4") and shutil.which("mount"),
          "read-only test mounts an ext4 image: needs Linux, root, mkfs.ext4 and mount(8)")
    image, mnt = tmp_path / "volume.img", tmp_path / "volume"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    done = _sh("mkfs.ext4", "-q", "-F", image)
    _need(done.returncode == 0, f"mkfs.ext4 failed: {done.stderr.strip()}")

    def mount():
        done = _sh("mount", "-o", "loop,errors=remount-ro", image, mnt)
        _need(done.returncode == 0, f"cannot mount a loop device here (container?): {done.stderr.strip()}")
        device = _sh("findmnt", "-n", "-o", "SOURCE", mnt).stdout.strip()
        trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
        _need(trigger.exists(), f"{trigger} missing: this kernel cannot turn ext4 read-only on demand")
        return trigger

    def make_writable():  # what an administrator does: unmount, repair, mount again
        assert _sh("umount", mnt).returncode == 0
        _sh("e2fsck", "-f", "-y", image)
        return mount()

    volume = {"mnt": mnt, "trigger": mount(), "make_writable": make_writable}
    yield volume
    _sh("umount", "-l", mnt)


def test_output_turning_read_only_mid_run_is_a_clear_error_and_the_rerun_completes(ext4_volume, tmp_path):
    images = make_images(tmp_path / "images")
    env = {"RDBENCH_CODECS_PATH": str(write_fake_codecs(tmp_path / "codecs", {"fake-slow": ("slow", "copy")}))}
    out = ext4_volume["mnt"] / "out"
    cmd = [*RDBENCH, "run", "--dataset", images, "--codec", "fake-slow", "--quality", "1,2,3,4", "--out", out,
           "--workers", "2", "--no-progress", "--no-report"]
    proc = subprocess.Popen(list(map(str, cmd)), env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    results = out / "results.csv"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not results.exists() or results.read_bytes().count(b"\n") < 3):
        time.sleep(0.02)  # header and two rows stored: 10 of the 12 items still to come
    os.sync()  # the stored rows are on the disk before it fails (what rdbench wrote, not the fs, is tested)
    ext4_volume["trigger"].write_text("rdbench test\n")
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    done = subprocess.CompletedProcess(cmd, proc.returncode, "", err)
    assert_clean_error(done, str(results), "Read-only file system")
    assert done.returncode == 5, err
    before = csv_rows(out)
    assert 2 <= len(before) < 12, "the folder should turn read-only mid-run"
    assert all(r["status"] == "ok" for r in before)
    # still read-only: a rerun is refused with the same kind of message, not a traceback
    assert_clean_error(rdbench(*cmd[3:], env=env), str(out), "Read-only file system")
    ext4_volume["make_writable"]()
    again = rdbench(*cmd[3:], env=env)
    assert again.returncode == 0, again.stderr
    rows = assert_complete_grid(out, 12)
    assert rows[: len(before)] == before


# -- external binaries that misbehave ----------------------------------------------------------
TIMEOUT_S = 2
FAULTY = {
    "fake-hang": ("hang", "copy"),
    "fake-segv": ("segv", "copy"),
    "fake-garbage": ("copy", "garbage"),
    "fake-empty": ("empty", "copy"),
    "fake-nothing": ("copy", "nothing"),
}


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    """One `rdbench run --timeout 2` of every faulty codec and JPEG on one image, two qualities:
    (the finished process, its wall seconds, the rows by codec, the pid-file folder)."""
    tmp = tmp_path_factory.mktemp("faulty")
    pids = tmp / "pids"
    pids.mkdir()
    env = {"RDBENCH_CODECS_PATH": str(write_fake_codecs(tmp / "codecs", FAULTY)), "FAKE_CODEC_PIDS": str(pids)}
    out = tmp / "out"
    started = time.monotonic()
    done = rdbench("run", "--dataset", make_images(tmp / "images", 1), "--codec", ",".join(["jpeg", *FAULTY]),
                   "--quality", "1,2", "--out", out, "--workers", "2", "--timeout", TIMEOUT_S,
                   "--no-progress", "--no-report", env=env, timeout=90)
    elapsed = time.monotonic() - started
    rows = {}
    for row in csv_rows(out):
        rows.setdefault(row["codec"], []).append(row)
    return done, elapsed, rows, pids


def test_faulty_binaries_are_failed_rows_and_the_run_goes_on(faulty_run):
    done, _, rows, _ = faulty_run
    assert done.returncode == 3, done.stderr  # finished, some items failed
    assert "Traceback" not in done.stderr, done.stderr
    assert sorted(rows) == sorted(["jpeg", *FAULTY])
    assert all(len(r) == 2 for r in rows.values()), {c: len(r) for c, r in rows.items()}
    assert [r["status"] for r in rows["jpeg"]] == ["ok", "ok"]
    for codec in FAULTY:
        assert all(r["status"] == "error" and r["error"].strip() for r in rows[codec]), rows[codec]


def test_hung_binary_times_out_is_recorded_and_leaves_no_process(faulty_run):
    done, elapsed, rows, pids = faulty_run
    for row in rows["fake-hang"]:
        assert "timed out after 2 s" in row["error"] and "encoder" in row["error"], row["error"]
    # each item waits for the timeout once (its warm-up encode), the two run in parallel: the run
    # takes about 2 x 2 s plus start-up, not the 3,000 s the binary would sleep
    assert TIMEOUT_S <= elapsed < 30, f"run took {elapsed:.0f} s with --timeout {TIMEOUT_S}"
    hung = [int(p) for f in pids.glob("hang.*") for p in f.read_text().split()]
    assert len(hung) >= 2 * 3, hung  # (script, its parent, the child it waits on) per call
    children = [int(f.read_text().split()[2]) for f in pids.glob("hang.*")]
    scripts = [int(f.name.split(".")[1]) for f in pids.glob("hang.*")]
    left = [p for p in scripts + children if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"{len(left)} process(es) of the hung binary outlived its timeout"


def test_binary_killed_by_a_signal_names_the_signal(faulty_run):
    for row in faulty_run[2]["fake-segv"]:
        assert "SIGSEGV" in row["error"] and "encoder" in row["error"], row["error"]


def test_garbage_and_empty_outputs_are_clear_failures(faulty_run):
    rows = faulty_run[2]
    for row in rows["fake-garbage"]:
        assert "decoder output" in row["error"] and "CodecError" in row["error"], row["error"]
    for row in rows["fake-empty"]:
        assert "encoder wrote an empty file" in row["error"], row["error"]
    for row in rows["fake-nothing"]:
        assert "decoder wrote no output file" in row["error"], row["error"]


def _started(pid: int) -> str | None:
    """When process `pid` started (field 22 of /proc/PID/stat, in clock ticks); None if it is gone."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@pytest.mark.parametrize("how", ["ctrl-c", "run-killed"])
def test_a_stopped_run_leaves_no_codec_binary_running_and_no_scratch_folder(tmp_path, how):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) or SIGKILL to the run alone,
    while a binary codes: the binaries (which inherit the SIGINT their worker ignores, so Ctrl-C
    never reaches them: VTM would go on for minutes) and their scratch folders in /dev/shm go with
    the run's workers."""
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {**os.environ, "FAKE_CODEC_PIDS": str(pids),
           "RDBENCH_CODECS_PATH": str(write_fake_codecs(tmp_path / "codecs", {"fake-hang": ("hang", "copy")}))}
    cmd = [*RDBENCH, "run", "--dataset", make_images(tmp_path / "images", 2), "--codec", "fake-hang", "--quality", "1",
           "--out", tmp_path / "out", "--workers", "2", "--timeout", "600", "--no-progress", "--no-report"]
    proc = subprocess.Popen(list(map(str, cmd)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        calls: dict[int, list[str]] = {}
        while time.monotonic() < deadline and len(calls) < 2:  # both workers inside a binary, its child started
            for f in pids.glob("hang.*"):
                fields = f.read_text().split()
                if len(fields) == 3 and int(fields[0]) not in calls:
                    calls[int(fields[0])] = fields
            time.sleep(0.02)
        assert len(calls) == 2 and proc.poll() is None, "the binaries did not start"
        scratch = [Path(open(f"/proc/{script}/cmdline").read().split("\0")[3]).parent for script in calls]
        assert all(str(folder).startswith(tempfile.gettempdir()) or str(folder).startswith("/dev/shm")
                   for folder in scratch), scratch
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 130 and "interrupted" in err, err
        else:
            proc.kill()
            proc.wait()
        binaries = {int(p): _started(int(p)) for script, fields in calls.items() for p in (script, fields[2])}

        def alive(pid: int) -> bool:  # that process, not another that got its pid since (pid_max may be 32768)
            return _alive(pid) and _started(pid) == binaries[pid]

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (any(alive(p) for p in binaries) or any(f.exists() for f in scratch)):
            time.sleep(0.05)
        left = [p for p in binaries if alive(p)]
        for p in left:
            os.kill(p, signal.SIGKILL)
        assert not left, f"{len(left)} process(es) of the codec binary outlived the stopped run"
        assert not [f for f in scratch if f.exists()], "a scratch folder outlived the stopped run"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


# -- a worker killed as by the OOM killer ------------------------------------------------------
def test_worker_sigkilled_mid_item_is_retried_and_no_row_is_lost_or_doubled(tmp_path):
    """SIGKILL from outside to a worker while its codec runs: the items it held are rerun alone,
    and the run ends with every row once. (tests/test_runner.py covers the executor's blame with a
    job that exits its worker; here it is the real CLI, a real binary and a real SIGKILL.)"""
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {**os.environ, "FAKE_CODEC_PIDS": str(pids),
           "RDBENCH_CODECS_PATH": str(write_fake_codecs(tmp_path / "codecs", {"fake-slow": ("slow", "copy")}))}
    out = tmp_path / "out"
    cmd = [*RDBENCH, "run", "--dataset", make_images(tmp_path / "images"), "--codec", "fake-slow",
           "--quality", "1,2,3,4", "--out", out, "--workers", "2", "--no-progress", "--no-report"]
    proc = subprocess.Popen(list(map(str, cmd)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        results = out / "results.csv"
        while time.monotonic() < deadline and (not results.exists() or results.read_bytes().count(b"\n") < 3):
            time.sleep(0.02)  # two rows stored, then the next encode's worker is killed
        seen = set(pids.iterdir())
        victim = None
        while time.monotonic() < deadline and victim is None:
            for f in set(pids.iterdir()) - seen:
                fields = f.read_text().split()
                if len(fields) < 2:
                    continue  # the fake codec has created its file but not written it yet: read it again
                script, worker = map(int, fields[:2])
                if _alive(script):
                    victim = worker
            time.sleep(0.01)
        assert victim is not None and proc.poll() is None, "no codec call to kill mid-item"
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert_complete_grid(out, 12)


def test_item_that_always_kills_its_worker_is_a_failed_row(tmp_path):
    """A binary that SIGKILLs its worker on every call (as an OOM kill on one huge item): that item
    is a failed row saying so, the rest of the grid is measured, exit status 3."""
    env = {"RDBENCH_CODECS_PATH": str(write_fake_codecs(tmp_path / "codecs", {"fake-oom": ("oom", "copy")}))}
    out = tmp_path / "out"
    done = rdbench("run", "--dataset", make_images(tmp_path / "images", 2), "--codec", "jpeg,fake-oom",
                   "--quality", "1,2", "--out", out, "--workers", "2", "--no-progress", "--no-report", env=env)
    assert done.returncode == 3, done.stderr
    rows = csv_rows(out)
    assert len(rows) == 8 and len({tuple(r[k] for k in KEY) for r in rows}) == 8
    assert all(r["status"] == "ok" for r in rows if r["codec"] == "jpeg")
    for row in (r for r in rows if r["codec"] == "fake-oom"):
        assert row["status"] == "error" and "worker process died" in row["error"], row
