"""DaskExecutor against real processes on 127.0.0.1: a `dask scheduler` and `dask worker`s.

Rows must equal a local run's (bytes and metrics); a worker SIGKILLed mid-run loses and
duplicates nothing; a scheduler killed mid-run is a ClusterError naming its address, and the
same run again completes the grid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("distributed", reason="dask[distributed] not installed (pip install 'rdbench[dask]')")

from rdbench.bench.dask_executor import DaskExecutor  # noqa: E402
from rdbench.bench.executor import LocalExecutor  # noqa: E402
from rdbench.bench.runner import load_codecs, run  # noqa: E402
from rdbench.data.datasets import resolve_dataset  # noqa: E402
from rdbench.errors import ClusterError  # noqa: E402

DASK = str(Path(sys.executable).with_name("dask"))
RDBENCH_CLI = [sys.executable, "-m", "rdbench"]
COMPARED = ["image", "codec", "quality", "status", "bytes", "bpp", "psnr_rgb", "psnr_y", "psnr_ycbcr", "ms_ssim"]


# A scheduler or worker outlives a pytest that is killed (a CI timeout: fixtures never tear down);
# util-linux's setpriv gives each a parent-death signal, where it exists (it execs: same pid).
DIE_WITH_PYTEST = [shutil.which("setpriv"), "--pdeathsig", "KILL"] if shutil.which("setpriv") else []


class Cluster:
    """A scheduler and workers as subprocesses; each worker is its own process (--no-nanny),
    so SIGKILL of its pid kills the worker itself."""

    def __init__(self, folder: Path, tls: list[str] = ()):
        self.folder = folder
        self.file = folder / "scheduler.json"
        self.procs: dict[str, subprocess.Popen] = {}
        self.tls = list(tls)  # --tls-ca-file, --tls-cert, --tls-key: every connection TLS
        self.start_scheduler()

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> None:
        log = open(self.folder / f"{name}.log", "w")
        self.procs[name] = subprocess.Popen([*DIE_WITH_PYTEST, DASK, *args], stdout=log, stderr=subprocess.STDOUT,
                                            env=env, cwd=self.folder)

    def start_scheduler(self) -> None:
        self.file.unlink(missing_ok=True)
        self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(self.file),
                                  *(["--protocol", "tls", *self.tls] if self.tls else [])])
        deadline = time.monotonic() + 30
        while not self.file.exists() or not self.file.read_text().strip():
            if time.monotonic() > deadline or self.procs["scheduler"].poll() is not None:
                pytest.fail("dask scheduler did not start: " + (self.folder / "scheduler.log").read_text())
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written before the listener is fully up
        self.address = json.loads(self.file.read_text())["address"]

    def start_worker(self, name: str, env: dict | None = None) -> None:
        self._spawn(name, ["worker", "--scheduler-file", str(self.file), "--nthreads", "1", "--no-nanny",
                           "--no-dashboard", "--name", name, "--host", "127.0.0.1", "--death-timeout", "20", *self.tls],
                    env)

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    c.start_worker("w1")
    c.start_worker("w2")
    yield c
    c.close()


def _rows(folder) -> pd.DataFrame:
    return pd.read_csv(Path(folder) / "results.csv").sort_values(["image", "codec", "quality"]).reset_index(drop=True)


@pytest.fixture
def crops(small_dataset):
    """Three Kodak crops: the whole JPEG ladder is 57 items, a few seconds on two workers."""
    return resolve_dataset(str(small_dataset))


def test_rows_equal_a_local_run(cluster, small_dataset, tmp_path):
    dataset = resolve_dataset(str(small_dataset))
    codecs = load_codecs(["jpeg", "jpeg:subsampling=444"])
    with DaskExecutor(str(cluster.file), wait_for_workers=2) as ex:
        summary = run(dataset, codecs, tmp_path / "dask", qualities=[20, 50, 80, 95], progress=False, executor=ex)
    run(dataset, codecs, tmp_path / "local", qualities=[20, 50, 80, 95], progress=False, executor=LocalExecutor(2))
    assert summary.ok == summary.planned == 3 * 2 * 4
    got, want = _rows(tmp_path / "dask"), _rows(tmp_path / "local")
    pd.testing.assert_frame_equal(got[COMPARED], want[COMPARED])
    logged = json.loads((tmp_path / "dask" / "runs.jsonl").read_text().splitlines()[-1])
    assert logged["executor"] == "dask" and logged["scheduler"] == cluster.address
    assert len(logged["worker_addresses"]) == 2 and logged["tasks"] >= 1


def test_batches_follow_per_item_cost(cluster, small_dataset):
    dataset = resolve_dataset(str(small_dataset))
    items = [i for i in __import__("rdbench.bench.runner", fromlist=["plan"]).plan(
        dataset, load_codecs(["jpeg"]), None, set())[0]]
    from functools import partial

    from rdbench.bench.measure import Settings, measure

    with DaskExecutor(str(cluster.file), wait_for_workers=2) as ex:
        out = list(ex.run(partial(measure, settings=Settings()), items, on_crash=lambda job: None))
        # a few ms per crop item against a 1 s target: the first single-item tasks give way to batches
        assert ex.largest_batch > 1 and ex.tasks < len(items)
    assert sorted(id(j) for j, _ in out) == sorted(id(j) for j in items)


def test_worker_sigkilled_mid_run_loses_and_duplicates_nothing(cluster, crops, tmp_path):
    from functools import partial

    from rdbench.bench.measure import Settings, measure
    from rdbench.bench.runner import plan

    items, _ = plan(crops, load_codecs(["jpeg"]), None, set())
    with DaskExecutor(str(cluster.file), batch_size=2, wait_for_workers=2) as ex:
        workers = {info["name"]: addr for addr, info in ex.client.scheduler_info()["workers"].items()}
        seen = []
        for job, row in ex.run(partial(measure, settings=Settings()), items, on_crash=lambda job: None):
            if not seen:  # the first row is back: w1 holds tasks now; kill it where it stands
                assert ex.client.processing(workers=[workers["w1"]])[workers["w1"]], "w1 had no task to lose"
                cluster.kill("w1")
            seen.append((job, row))
        assert list(ex.client.scheduler_info()["workers"]) == [workers["w2"]]
    assert len(seen) == len(items) and len({id(j) for j, _ in seen}) == len(items)
    assert all(row["status"] == "ok" for _, row in seen)
    assert {(r["image"], r["quality"]) for _, r in seen} == {(i.image.name, str(i.quality)) for i in items}


class _KillSchedulerAfter:
    """An executor wrapper that SIGKILLs the scheduler once `n` rows have been yielded."""

    def __init__(self, inner: DaskExecutor, cluster: Cluster, n: int):
        self.inner, self.cluster, self.n = inner, cluster, n

    def describe(self):
        return self.inner.describe()

    def run(self, fn, jobs, on_crash):
        for k, pair in enumerate(self.inner.run(fn, jobs, on_crash), 1):
            yield pair
            if k == self.n:
                self.cluster.kill("scheduler")


def test_scheduler_killed_is_a_clear_error_and_the_rerun_completes(cluster, crops, tmp_path):
    codecs = load_codecs(["jpeg"])
    out = tmp_path / "out"
    with DaskExecutor(str(cluster.file), batch_size=2, wait_for_workers=2, connect_timeout_s=2) as ex:
        address = ex.address
        with pytest.raises(ClusterError, match=f"lost the Dask scheduler at {address}"):
            run(crops, codecs, out, progress=False, executor=_KillSchedulerAfter(ex, cluster, 5))
    stored = _rows(out)
    assert 5 <= len(stored) < 57 and not stored.duplicated(["image", "quality"]).any()
    cluster.close()
    cluster.start_scheduler()
    cluster.start_worker("w3")
    with DaskExecutor(str(cluster.file), wait_for_workers=1) as ex:
        summary = run(crops, codecs, out, progress=False, executor=ex)
    assert summary.skipped == len(stored) and summary.ok == 57 - len(stored)
    rows = _rows(out)
    assert len(rows) == 57 and not rows.duplicated(["image", "quality"]).any() and (rows["status"] == "ok").all()


def test_unreachable_scheduler_names_the_address():
    with pytest.raises(ClusterError, match="tcp://127.0.0.1:9"):
        DaskExecutor("tcp://127.0.0.1:9", connect_timeout_s=1)


def test_worker_without_the_codec_binary_fails_the_item_with_that_reason(tmp_path, small_dataset):
    if not shutil.which("cwebp"):
        pytest.skip("cwebp not installed here")
    c = Cluster(tmp_path)
    try:
        # a worker whose PATH holds only the virtual environment: no cwebp there
        c.start_worker("bare", env={**os.environ, "PATH": str(Path(sys.executable).parent)})
        dataset = resolve_dataset(str(small_dataset))
        with DaskExecutor(str(c.file), wait_for_workers=1) as ex:
            summary = run(dataset, load_codecs(["cwebp"]), tmp_path / "out", qualities=[50], progress=False, executor=ex)
    finally:
        c.close()
    rows = _rows(tmp_path / "out")
    assert summary.failed == 3 and (rows["status"] == "error").all()
    assert rows["error"].str.contains("cwebp").all(), rows["error"].tolist()


def test_image_changed_on_shared_storage_fails_its_items(cluster, small_dataset, tmp_path):
    dataset = resolve_dataset(str(small_dataset))
    victim = dataset.images[0].path
    from PIL import Image

    Image.new("RGB", (256, 192), (9, 9, 9)).save(victim)  # changed after the client planned the run
    with DaskExecutor(str(cluster.file), wait_for_workers=1) as ex:
        run(dataset, load_codecs(["jpeg"]), tmp_path / "out", qualities=[50, 80], progress=False, executor=ex)
    rows = _rows(tmp_path / "out")
    bad = rows[rows["image"] == dataset.images[0].name]
    assert (bad["status"] == "error").all() and bad["error"].str.contains("pixel digest").all()
    assert (rows[rows["image"] != dataset.images[0].name]["status"] == "ok").all()


def test_cli_runs_on_a_scheduler_file_and_names_an_unreachable_one(cluster, small_dataset, tmp_path, capsys,
                                                                  monkeypatch):
    from rdbench.bench import dask_executor
    from rdbench.cli import main

    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT_S", 1.0)

    common = ["run", "--dataset", str(small_dataset), "--codec", "jpeg", "--quality", "40,80", "--no-progress",
              "--no-report"]
    assert main([*common, "--out", str(tmp_path / "a"), "--scheduler", str(cluster.file), "--batch-size", "2"]) == 0
    logged = json.loads((tmp_path / "a" / "runs.jsonl").read_text().splitlines()[-1])
    assert logged["scheduler"] == cluster.address and logged["batch_size"] == 2 and logged["tasks"] == 3
    assert len(_rows(tmp_path / "a")) == 6
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "b"), "--scheduler", "tcp://127.0.0.1:9"]) == 4
    assert "tcp://127.0.0.1:9" in capsys.readouterr().err


@pytest.mark.slow
def test_training_cell_resumes_on_another_worker_after_its_worker_is_killed(tmp_path, train_dir):
    """An ablation training cell as a Dask task on GPU=1 workers (the resource is only a label
    here): its worker SIGKILLed once its first checkpoint exists, the other worker resumes it."""
    pytest.importorskip("compressai")
    import threading

    from rdbench.ablation.config import parse
    from rdbench.ablation.train import train_all, trained_steps

    config_file = tmp_path / "grid.toml"
    config_file.write_text(f"""
name = "tiny"
[model]
N = 16
M = 16
[[cells]]
variant = "mean-scale"
[rates]
lambdas = [0.001, 0.01, 0.05, 0.2]
[training]
data = "{train_dir}"
crop = 64
batch = 2
steps = 150
checkpoint_every = 2
[evaluation]
dataset = "kodak"
reference = "mean-scale"
""")
    config = parse(config_file.read_text(), str(config_file))
    out = tmp_path / "out"
    c = Cluster(tmp_path)
    for name in ("g1", "g2"):
        c._spawn(name, ["worker", "--scheduler-file", str(c.file), "--nthreads", "1", "--no-nanny", "--no-dashboard",
                        "--name", name, "--host", "127.0.0.1", "--resources", "GPU=1"])
    killed = []
    try:
        with DaskExecutor(str(c.file), resources={"GPU": 1}, wait_for_workers=2) as ex:
            names = {addr: info["name"] for addr, info in ex.client.scheduler_info()["workers"].items()}

            def kill_when_a_checkpoint_exists():
                deadline = time.monotonic() + 240
                while time.monotonic() < deadline and not killed:
                    if any(out.glob("cells/*/model.pt")):
                        busy = [a for a, keys in ex.client.processing().items() if keys]
                        c.kill(names[busy[0]])
                        killed.append(names[busy[0]])
                    time.sleep(0.02)  # short: a tiny training runs ~100 steps/s

            watcher = threading.Thread(target=kill_when_a_checkpoint_exists, daemon=True)
            watcher.start()
            trained = train_all(config, out, executor=ex, log=lambda line: None)
            watcher.join(1)
    finally:
        c.close()
    assert killed, "no checkpoint appeared before the deadline"
    assert len(trained) == 1 and trained_steps(Path(trained[0])) == 150
    logs = "".join(p.read_text() for p in out.glob("cells/*/train.log"))
    assert "resuming at step" in logs, logs[-2000:]


def test_a_worker_with_another_codec_version_fails_the_item_with_both_versions(small_dataset):
    """_run_batch is what each Dask task runs on its worker; here it runs in this process."""
    from dataclasses import replace
    from functools import partial

    from rdbench.bench.dask_executor import _run_batch
    from rdbench.bench.measure import Settings, measure
    from rdbench.bench.runner import plan

    items, _ = plan(resolve_dataset(str(small_dataset)), load_codecs(["jpeg"]), [50], set())
    planned = [replace(items[0], codec_version="Pillow 0.0.1"), items[1]]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("distributed.get_worker", lambda: type("W", (), {"address": "tcp://here"})())
        rows, _, worker = _run_batch(partial(measure, settings=Settings()), planned)
    assert worker == "tcp://here"
    assert rows[0]["status"] == "error" and "Pillow 0.0.1" in rows[0]["error"] and "the client planned" in rows[0]["error"]
    assert rows[1]["status"] == "ok"


# -- security: TLS, scheduler files, the Slurm config ---------------------------------------------
def _certificates(folder: Path) -> dict:
    """A certificate authority and a certificate for 127.0.0.1 signed by it, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl on PATH to make the test certificates (apt-get install openssl)")
    folder.mkdir()

    def sh(*args):
        done = subprocess.run([openssl, *args], capture_output=True, text=True, cwd=folder, timeout=60)
        assert done.returncode == 0, done.stderr

    sh("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
       "-subj", "/CN=rdbench-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
       "-addext", "keyUsage=keyCertSign,cRLSign")
    sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=127.0.0.1")
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    sh("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "node.pem",
       "-days", "2", "-extfile", "ext")
    return {name: folder / name for name in ("ca.pem", "node.pem", "node.key")}


def _security_table(certs: dict) -> str:
    return (f'[security]\nrequire_encryption = true\ntls_ca_file = "{certs["ca.pem"]}"\n'
            f'tls_client_cert = "{certs["node.pem"]}"\ntls_client_key = "{certs["node.key"]}"\n')


def test_a_tls_secured_cluster_on_localhost(tmp_path, small_dataset):
    """A scheduler and a worker speaking only TLS with certificates made here: rdbench measures on
    it given the certificates in --cluster-config's [security] table, and without them stops with
    a clear error (exit 4) rather than a traceback; a scheduler file others can write is refused."""
    certs = _certificates(tmp_path / "certs")
    tls = ["--tls-ca-file", str(certs["ca.pem"]), "--tls-cert", str(certs["node.pem"]), "--tls-key", str(certs["node.key"])]
    c = Cluster(tmp_path, tls=tls)
    try:
        assert c.address.startswith("tls://127.0.0.1:")
        c.start_worker("w1")
        config = tmp_path / "cluster.toml"
        config.write_text(_security_table(certs))
        out = tmp_path / "out"
        cmd = [*RDBENCH_CLI, "run", "--scheduler", str(c.file), "--cluster-config", str(config), "--dataset",
               str(small_dataset), "--codec", "jpeg", "--quality", "30,60", "--out", str(out), "--no-progress",
               "--no-report"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        assert (pd.read_csv(out / "results.csv")["status"] == "ok").sum() == 6
        logged = json.loads((out / "runs.jsonl").read_text().splitlines()[-1])
        assert logged["scheduler"].startswith("tls://127.0.0.1:"), logged

        plain = subprocess.run([a for a in cmd if a not in ("--cluster-config", str(config))], capture_output=True,
                               text=True, timeout=180)
        assert plain.returncode == 4 and "Traceback" not in plain.stderr, plain.stderr
        assert "speaks TLS" in plain.stderr and "[security]" in plain.stderr

        c.file.chmod(0o666)
        shared = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        assert shared.returncode == 4 and "writable by other users" in shared.stderr, shared.stderr
    finally:
        c.close()


def test_slurm_config_passes_security_and_scheduler_options_through(tmp_path):
    """[security] and scheduler_options reach SLURMCluster (no job is submitted: jobs = 0)."""
    pytest.importorskip("dask_jobqueue", reason="dask-jobqueue not installed (pip install 'rdbench[dask]')")
    from rdbench.bench.dask_executor import load_cluster_config, slurm_cluster

    certs = _certificates(tmp_path / "certs")
    config = tmp_path / "slurm.toml"
    files = {f"tls_{who}_{kind}": certs["node.pem" if kind == "cert" else "node.key"]
             for who in ("client", "scheduler", "worker") for kind in ("cert", "key")}
    config.write_text('[slurm]\njobs = 0\ncores = 1\nmemory = "1GB"\nscheduler_options = { host = "127.0.0.1" }\n'
                      f'[security]\ntls_ca_file = "{certs["ca.pem"]}"\n'
                      + "".join(f'{k} = "{v}"\n' for k, v in files.items()))
    cluster = slurm_cluster(load_cluster_config(config))
    try:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        script = cluster.job_script()
        assert f"--tls-ca-file {certs['ca.pem']}" in script and "--protocol tls://" in script
    finally:
        cluster.close()
    config.write_text('[slurm]\njobs = 0\n[security]\ntls_ca_file = "missing.pem"\n')
    with pytest.raises(ValueError, match="tls_ca_file = .*missing.pem'?: no such file"):
        slurm_cluster(load_cluster_config(config))
