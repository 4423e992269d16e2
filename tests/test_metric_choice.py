"""Choosing metrics: the registry, `rdbench run --metric`, `rdbench metrics`, and adding a metric to
a stored grid (real JPEG coding of real Kodak crops, through the command line)."""

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rdbench.bench.columns import BY_NAME, DEFAULT_METRICS, METRICS, RESULT_NAMES, direction
from rdbench.metrics import registry

REPO_ROOT = Path(__file__).resolve().parents[1]


def rdbench(*argv, timeout=300):
    return subprocess.run([sys.executable, "-m", "rdbench", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT)


def test_the_column_table_is_the_registry():
    columns = [c.name for m in registry.REGISTRY.values() for c in m.columns]
    assert list(METRICS) == columns  # every metric column, nothing else, in the registry's order
    assert DEFAULT_METRICS == ("psnr_rgb", "psnr_y", "psnr_ycbcr", "ms_ssim", "ms_ssim_db")  # today's set
    for metric in registry.REGISTRY.values():
        for column in metric.columns:
            assert column.name in RESULT_NAMES
            assert BY_NAME[column.name].unit == column.unit and BY_NAME[column.name].kind == "distortion"
            assert direction(column.name) == metric.direction


def test_unknown_metric_suggests_the_closest_names():
    with pytest.raises(registry.UnknownMetric, match="did you mean 'ms_ssim'"):
        registry.parse("psnr_rgb,ms_sim")
    assert [m.name for m in registry.parse("ms_ssim, psnr_rgb,ms_ssim")] == ["psnr_rgb", "ms_ssim"]
    assert registry.parse(None) == registry.DEFAULT
    for name, why in registry.NOT_YET.items():  # named by the issue, not computed yet: the reason, not "unknown"
        with pytest.raises(registry.UnknownMetric, match=f"'{name}' is not in this rdbench yet: "):
            registry.parse(name)


def test_a_metric_without_its_library_names_the_install_hint(monkeypatch):
    absent = registry.Metric("absent_metric", (registry.MetricColumn("absent_metric", "", "x", "x", "x"),), "lower",
                             "nothing", "nothing/0", "rdbench.metrics.classic:prepare_psnr_rgb", "none",
                             requires=("no_such_module_rdbench",), install="pip install no-such-module")
    monkeypatch.setitem(registry.REGISTRY, "absent_metric", absent)
    problem = absent.missing()
    assert "no_such_module_rdbench" in problem and "pip install no-such-module" in problem


def test_run_refuses_an_unknown_metric_before_any_work(tmp_path, small_dataset):
    done = rdbench("run", "--dataset", small_dataset, "--codec", "jpeg", "--quality", "50", "--metric", "psnr-rgb",
                   "--out", tmp_path / "out", "--no-progress")
    assert done.returncode == 2
    assert "unknown metric 'psnr-rgb'" in done.stderr and "did you mean 'psnr_rgb'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_metrics_command_lists_every_metric():
    done = rdbench("metrics", timeout=60)
    assert done.returncode == 0, done.stderr
    for metric in registry.REGISTRY.values():
        assert f"\n{metric.name} " in "\n" + done.stdout
        assert metric.implementation in done.stdout
    for name in registry.NOT_YET:
        assert f"\n{name} " in "\n" + done.stdout and "not in this rdbench yet" in done.stdout


@pytest.mark.parametrize("keep", [False, True])
def test_adding_a_metric_to_a_stored_grid_measures_only_that_metric(tmp_path, small_dataset, keep):
    out = tmp_path / "out"
    grid = ["--dataset", small_dataset, "--codec", "jpeg", "--quality", "30,70", "--no-progress", "--no-report"]
    common = [*grid, "--out", out, *(["--keep"] if keep else [])]
    first = rdbench("run", *common, "--metric", "psnr_rgb")
    assert first.returncode == 0, first.stderr
    stored = pd.read_csv(out / "results.csv")
    assert len(stored) == 6 and stored["psnr_rgb"].notna().all() and stored["ms_ssim"].isna().all()

    again = rdbench("run", *common, "--metric", "psnr_rgb,ms_ssim")
    assert again.returncode == 0, again.stderr
    from rdbench.bench.store import read_results

    added = read_results(out).sort_values(["image", "quality"]).reset_index(drop=True)
    stored = stored.sort_values(["image", "quality"]).reset_index(drop=True)
    assert len(added) == 6
    for column in ("bytes", "psnr_rgb", "enc_s", "dec_s", "rdbench_version"):  # kept as stored, not measured again
        assert added[column].tolist() == stored[column].tolist()
    how = "on the kept reconstruction" if keep else "by coding again (same"
    assert added["note"].str.contains(f"ms_ssim measured {how}", regex=False).all()
    assert added["psnr_y"].isna().all()  # not asked for
    assert added["metric_versions"].str.contains("psnr_rgb=rdbench-psnr/1; ms_ssim=rdbench-ms_ssim/1").all()

    fresh = tmp_path / "fresh"
    full = rdbench("run", *grid, "--out", fresh)
    assert full.returncode == 0, full.stderr
    reference = read_results(fresh).sort_values(["image", "quality"]).reset_index(drop=True)
    assert added["ms_ssim"].tolist() == reference["ms_ssim"].tolist()  # the same values as measuring at once
    assert added["ms_ssim_db"].tolist() == reference["ms_ssim_db"].tolist()

    third = rdbench("run", *common, "--metric", "ms_ssim")
    assert third.returncode == 0 and "0 measured, 0 failed, 6 already stored" in third.stderr


def test_run_with_a_metric_whose_program_is_missing_gives_the_install_hint(tmp_path, small_dataset):
    import os

    env = {**os.environ, "PATH": str(tmp_path / "empty-bin")}  # no butteraugli_main anywhere
    done = subprocess.run([sys.executable, "-m", "rdbench", "run", "--dataset", str(small_dataset), "--codec", "jpeg",
                           "--quality", "50", "--metric", "psnr_rgb,butteraugli", "--out", str(tmp_path / "out"),
                           "--no-progress"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env)
    assert done.returncode == 2, done.stderr
    assert "butteraugli_main" in done.stderr and "apt-get install libjxl-devtools" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out" / "results.csv").exists()
    listed = subprocess.run([sys.executable, "-m", "rdbench", "metrics"], capture_output=True, text=True, timeout=120,
                            cwd=REPO_ROOT, env=env)
    assert "butteraugli  unavailable: " in listed.stdout and "libjxl-devtools" in listed.stdout
