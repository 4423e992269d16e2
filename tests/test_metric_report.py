"""BD over any metric with its direction, and JPEG AI's summary, from real runs through the CLI."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdbench.analysis.bd import BDError, bd
from rdbench.analysis.jpeg_ai import jpeg_ai_summary
from rdbench.bench.columns import JPEG_AI_COLUMNS, REPORT_METRICS

REPO_ROOT = Path(__file__).resolve().parents[1]

RATE_A = np.array([0.2, 0.4, 0.8, 1.6])
RATE_T = RATE_A * 0.9
QUALITY = np.array([30.0, 33.0, 36.0, 39.0])


def test_bd_of_a_lower_is_better_metric_is_bd_of_its_negation():
    # a 'lower' metric falls as rate rises; BD-rate is the same as on its negation, BD-metric is test - anchor
    a, t = 10 - QUALITY / 5, 10 - (QUALITY + 0.5) / 5
    rate = bd(RATE_A, a, RATE_T, t, "rate", direction="lower")
    assert rate.value == pytest.approx(bd(RATE_A, -a, RATE_T, -t, "rate").value, abs=1e-12) and rate.value < 0
    assert rate.interval[0] < rate.interval[1] and min(a) <= rate.interval[0]  # in the metric's own values
    metric = bd(RATE_A, a, RATE_T, t, "metric", direction="lower")
    assert metric.value == pytest.approx(-bd(RATE_A, -a, RATE_T, -t, "metric").value, abs=1e-12)
    assert metric.value < 0  # the test's distance is lower at equal rate: better
    with pytest.raises(BDError, match="not monotonic"):
        bd(RATE_A, a, RATE_T, t, "rate")  # read as higher-is-better it is refused, not silently wrong


def test_jpeg_ai_summary_names_what_it_could_not_compute():
    table = lambda rates: pd.DataFrame({"label": ["webp", "avif"], "bd_rate_pct": rates})
    summary = jpeg_ai_summary({"ms_ssim_db": table([-10.0, -30.0]), "psnr_hvs_m": table([-20.0, np.nan])})
    webp, avif = summary.iloc[0], summary.iloc[1]
    assert webp["mean_bd_rate_pct"] == pytest.approx(-15.0) and webp["n_metrics"] == 2
    assert avif["mean_bd_rate_pct"] == pytest.approx(-30.0) and avif["metrics"] == "ms_ssim"
    assert "psnr_hvs_m" in avif["not_computed"] and "vmaf" in webp["not_computed"]
    assert [name for name, _ in JPEG_AI_COLUMNS] == ["ms_ssim", "vif", "fsim", "nlpd", "iw_ssim", "vmaf", "psnr_hvs_m"]


@pytest.mark.skipif(shutil.which("butteraugli_main") is None, reason="butteraugli_main not on PATH "
                    "(Debian: apt-get install libjxl-devtools)")
def test_report_has_a_bd_table_per_metric_and_the_jpeg_ai_line(tmp_path, small_dataset):
    pytest.importorskip("psnr_hvsm")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "rdbench", "run", "--dataset", str(small_dataset), "--codec",
                           "jpeg,webp", "--quality", "20,40,60,80", "--metric", "ms_ssim,psnr_hvs_m,butteraugli",
                           "--anchor", "jpeg", "--out", str(out), "--no-progress"], capture_output=True, text=True,
                          timeout=600, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    report = (out / "report.md").read_text()
    for column in ("psnr_hvs_m", "butteraugli"):
        assert column in REPORT_METRICS
        assert f"metric column `{column}`" in report
        table = pd.read_csv(out / f"bd-{column}.csv")
        assert table["label"].tolist() == ["webp"] and np.isfinite(table["bd_rate_pct"]).all()
    butteraugli = pd.read_csv(out / "bd-butteraugli.csv").iloc[0]
    assert 0 < butteraugli["interval_lo"] < butteraugli["interval_hi"]  # distances, not their negation
    assert "## JPEG AI summary versus jpeg" in report
    from rdbench.analysis.document import md_escape

    assert md_escape("over 2 of 7 (not computed: vif, fsim, nlpd, iw_ssim, vmaf)") in report  # escaped (issue 22)
    summary = pd.read_csv(out / "jpeg-ai-summary.csv").iloc[0]
    ms, hvs = (pd.read_csv(out / f"bd-{c}.csv")["bd_rate_pct"].iloc[0] for c in ("ms_ssim_db", "psnr_hvs_m"))
    assert summary["mean_bd_rate_pct"] == pytest.approx((ms + hvs) / 2, abs=1e-9)
    terminal = subprocess.run([sys.executable, "-m", "rdbench", "bdrate", str(out), "--anchor", "jpeg", "--metric",
                               "butteraugli"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert terminal.returncode == 0, terminal.stderr
    line = next(l for l in terminal.stdout.splitlines() if l.strip().startswith("webp"))
    assert f"BD {butteraugli['bd_metric']:+.3f}  overlap" in line  # in the metric's unit: none, not dB


def test_two_implementations_of_a_metric_are_never_averaged_or_compared(tmp_path, small_dataset):
    # a real run; then its results.csv as if the webp rows came from a machine with another
    # psnr_hvsm (the cell rdbench writes, changed), and as if half of them did
    pytest.importorskip("psnr_hvsm")
    from rdbench.analysis.curves import curves
    from rdbench.analysis.tables import bd_table
    from rdbench.bench.store import read_results

    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "rdbench", "run", "--dataset", str(small_dataset), "--codec",
                           "jpeg,webp", "--quality", "20,40,60,80", "--metric", "psnr_rgb,psnr_hvs_m", "--out",
                           str(out), "--no-progress", "--no-report"], capture_output=True, text=True, timeout=600,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    rows = read_results(out)
    assert rows["metric_versions"].str.contains("psnr_hvs_m=psnr_hvsm ").all()
    table = curves(rows)
    assert (bd_table(table, "jpeg", "psnr_hvs_m")["error"].fillna("") == "").all()  # one implementation: compared

    other = rows.copy()
    webp = other["codec"] == "webp"
    other.loc[webp, "metric_versions"] = other.loc[webp, "metric_versions"].str.replace("psnr_hvsm 0", "psnr_hvsm 9")
    refused = bd_table(curves(other), "jpeg", "psnr_hvs_m")
    assert "does not compare two implementations" in refused["error"].iloc[0]
    assert refused["bd_rate_pct"].isna().all()
    assert (bd_table(curves(other), "jpeg", "psnr_rgb")["error"].fillna("") == "").all()  # the other metric: compared

    mixed = rows.copy()
    half = webp & (mixed["image"] == mixed.loc[webp, "image"].iloc[0])
    mixed.loc[half, "metric_versions"] = mixed.loc[half, "metric_versions"].str.replace("psnr_hvsm 0", "psnr_hvsm 9")
    table = curves(mixed)
    webp_curve = table[table["codec"] == "webp"]
    assert webp_curve["psnr_hvs_m"].isna().all() and webp_curve["psnr_rgb"].notna().all()
    assert webp_curve["metric_versions"].str.contains("psnr_hvs_m=MIXED: psnr_hvsm 0").all()
    assert "several implementations" in bd_table(table, "jpeg", "psnr_hvs_m")["error"].iloc[0]
