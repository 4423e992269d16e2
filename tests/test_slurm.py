"""`rdbench run --cluster slurm` on a real Slurm: dask-jobqueue submits a job whose Dask workers
measure a small sweep; the rows must equal a local run's.

.ci/start-slurm.sh starts a single-node Slurm on the CI host (as root); where none is running the
test skips and says so."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("dask_jobqueue", reason="dask-jobqueue not installed (pip install 'rdbench[dask]')")

from rdbench.cli import main  # noqa: E402

COMPARED = ["image", "codec", "quality", "status", "bytes", "psnr_rgb", "psnr_y", "ms_ssim"]


def _slurm_idle() -> str | None:
    """None when a Slurm partition has an idle node; else why not."""
    if not shutil.which("sinfo") or not shutil.which("sbatch"):
        return "Slurm is not installed (sinfo/sbatch not on PATH); .ci/start-slurm.sh installs and starts one"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld not answering (run .ci/start-slurm.sh as root)"
    if states.returncode or not {"idle", "mixed"} & set(states.stdout.split()):
        return f"no idle Slurm node (sinfo: {(states.stdout + states.stderr).strip()!r}); run .ci/start-slurm.sh as root"
    return None


@pytest.mark.slow
def test_sweep_through_slurmcluster_equals_a_local_run(tmp_path, small_dataset):
    why = _slurm_idle()
    if why:
        pytest.skip(why)
    config = tmp_path / "slurm.toml"
    config.write_text(f"""
[slurm]
jobs = 1
walltime = "00:10:00"
cores = 2
processes = 2
memory = "2GB"
python = "{sys.executable}"
log_directory = "{tmp_path / 'logs'}"
local_directory = "{tmp_path / 'spill'}"
job_extra_directives = ["--job-name=rdbench-test"]
""")
    common = ["run", "--dataset", str(small_dataset), "--codec", "jpeg", "--quality", "30,60,90",
              "--no-progress", "--no-report"]
    assert main([*common, "--out", str(tmp_path / "slurm"), "--cluster", "slurm", "--cluster-config", str(config)]) == 0
    assert main([*common, "--out", str(tmp_path / "local"), "--workers", "2"]) == 0
    got, want = (pd.read_csv(tmp_path / d / "results.csv").sort_values(["image", "quality"]).reset_index(drop=True)
                 for d in ("slurm", "local"))
    assert len(got) == 9 and (got["status"] == "ok").all()
    pd.testing.assert_frame_equal(got[COMPARED], want[COMPARED])
    logged = json.loads((tmp_path / "slurm" / "runs.jsonl").read_text().splitlines()[-1])
    assert logged["executor"] == "dask" and logged["cluster"] == "SLURMCluster" and logged["worker_addresses"]
    assert any(Path(tmp_path / "logs").glob("*.err")) or any(Path(tmp_path / "logs").glob("*.out"))
