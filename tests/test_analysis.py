import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rdbench.analysis.per_image import bd_table_per_image, bootstrap_ci
from rdbench.analysis.tables import bd_table
from rdbench.analysis.curves import curves, to_compressai_json
from rdbench.analysis.published import published, read_compressai_json
from rdbench.data.datasets import folder_dataset
from rdbench.bench.runner import load_codecs, run
from rdbench.bench.store import read_results

RDBENCH = [sys.executable, "-m", "rdbench"]


def fake_rows():
    """Two images of different sizes, two qualities: values chosen to check the arithmetic by hand."""
    base = dict(dataset="d", codec="c", codec_version="v", status="ok", psnr_y=0.0, enc_s=1.0, dec_s=1.0)
    return pd.DataFrame([
        {**base, "image_sha256": "a", "width": 100, "height": 100, "quality": 1, "bytes": 1000, "bpp": 0.8,
         "psnr_rgb": 30.0, "ms_ssim": 0.9, "ms_ssim_db": 10.0},
        {**base, "image_sha256": "b", "width": 300, "height": 100, "quality": 1, "bytes": 6000, "bpp": 1.6,
         "psnr_rgb": 34.0, "ms_ssim": 0.99, "ms_ssim_db": 20.0},
        {**base, "image_sha256": "a", "width": 100, "height": 100, "quality": 2, "bytes": 2000, "bpp": 1.6,
         "psnr_rgb": 36.0, "ms_ssim": 0.99, "ms_ssim_db": 20.0},
        {**base, "image_sha256": "b", "width": 300, "height": 100, "quality": 2, "status": "error", "bytes": np.nan,
         "bpp": np.nan, "psnr_rgb": np.nan, "ms_ssim": np.nan, "ms_ssim_db": np.nan},
    ])


def test_mean_and_pixel_weighted_curves_by_hand():
    mean = curves(fake_rows(), "mean").set_index("quality")
    assert mean.loc[1, "bpp"] == pytest.approx(1.2) and mean.loc[1, "psnr_rgb"] == pytest.approx(32.0)
    assert mean.loc[1, "ms_ssim_db"] == pytest.approx(15.0) and mean.loc[1, "n_images"] == 2
    # quality 2 has one image only: kept, but marked incomplete (left out of BD)
    assert mean.loc[2, "n_images"] == 1 and not mean.loc[2, "complete"] and mean.loc[1, "complete"]
    pix = curves(fake_rows(), "pixels").set_index("quality")
    assert pix.loc[1, "bpp"] == pytest.approx(8 * 7000 / 40000)  # 1.4, not 1.2
    assert pix.loc[1, "psnr_rgb"] == pytest.approx((30 * 1 + 34 * 3) / 4)
    assert (pix["weighting"] == "pixels").all()


def test_compressai_json_roundtrip(tmp_path):
    bpg = published("bpg")
    assert bpg["codec"].iloc[0].endswith("(published)") and len(bpg) == 8
    path = tmp_path / "x.json"
    path.write_text(json.dumps(to_compressai_json(bpg, "bpg again")))
    back = read_compressai_json(path)
    assert np.allclose(back["bpp"], bpg["bpp"]) and np.allclose(back["psnr_rgb"], bpg["psnr_rgb"])
    assert back["codec"].iloc[0] == "bpg again"


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    import inspect

    from scipy import stats

    from rdbench.analysis.per_image import BOOTSTRAP_RESAMPLES

    # skewed per-image BD-rates (24 images): the percentile interval is asymmetric here, so the
    # basic (-0.07) or BCa (-0.08) interval, or a 90% level (+0.2), would be told apart
    values = -np.random.default_rng(1).lognormal(2.0, 0.6, size=24)

    # scipy < 1.15 names the generator random_state, later ones rng
    rng_name = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"

    def scipy_ci(resamples, seed):
        ci = stats.bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=0.95, method="percentile",
                             **{rng_name: np.random.default_rng(seed)}).confidence_interval
        return ci.low, ci.high

    # the default call (95%, BOOTSTRAP_RESAMPLES, seed 0): scipy draws its resample indices from
    # the generator as rdbench does, so the same seed gives the same resamples; only the order of
    # summation in the means differs
    assert bootstrap_ci(values) == pytest.approx(scipy_ci(BOOTSTRAP_RESAMPLES, 0), abs=1e-9)
    # independent random streams, 200 000 resamples each: the Monte Carlo standard deviation of
    # each bound is about 0.004 percentage points; 0.02 is 5 of them
    assert bootstrap_ci(values, seed=3, resamples=200_000) == pytest.approx(scipy_ci(200_000, 11), abs=0.02)


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, kodak_dir):
    from PIL import Image

    folder = tmp_path_factory.mktemp("imgs")
    for n in (3, 15, 21):
        im = np.asarray(Image.open(kodak_dir / f"kodim{n:02d}.png").convert("RGB"))[:256, :320]
        Image.fromarray(np.ascontiguousarray(im)).save(folder / f"k{n}.png")
    out = tmp_path_factory.mktemp("run")
    run(folder_dataset(folder, "crops"), load_codecs(["jpeg", "webp", "jpeg2000"]), out,
        qualities=[20, 30, 40, 50, 60], workers=2, progress=False)
    return out


def test_bd_tables_from_a_real_run(real_run):
    rows = read_results(real_run)
    table = curves(rows)
    bd = bd_table(table, anchor="jpeg", metric="psnr_rgb")
    assert set(bd["codec"]) == {"webp", "jpeg2000"} and (bd["anchor_source"] == "measured").all()
    assert bd["bd_rate_pct"].notna().all() and (bd["overlap"] > 0).all()
    per = bd_table_per_image(rows, "jpeg", "psnr_rgb")
    # every image is accounted for: a BD value, or an error that says why (jpeg2000's target-PSNR
    # ladder 20..60 dB saturates on a small crop, so its curve can stop rising)
    assert ((per["n_images"] + per["n_failed"]) == 3).all() and (per["ci95_lo"] <= per["ci95_hi"]).all()
    assert (per.loc[per.n_failed > 0, "error"].str.len() > 0).all()
    # a published anchor is used, and labelled, when the anchor was not measured
    vs_bpg = bd_table(table, anchor="bpg", published_anchor=published("bpg"))
    assert vs_bpg["anchor_source"].str.startswith("published").all()


def test_cli_bdrate_plot_report(real_run, tmp_path):
    done = subprocess.run(RDBENCH + ["bdrate", str(real_run), "--anchor", "jpeg", "--per-image", "--csv", str(tmp_path / "bd.csv"),
                                     "--markdown", str(tmp_path / "bd.md")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "webp" in done.stdout and "95% [" in done.stdout  # the compact view: mean ± std, 95% interval
    bd = pd.read_csv(tmp_path / "bd.csv")
    assert (bd["n_images"] + bd["n_failed"]).eq(3).all()
    assert (tmp_path / "bd.md").read_text().startswith("| codec |")
    done = subprocess.run(RDBENCH + ["plot", str(real_run), "--reference", "jpeg", "--out", str(tmp_path / "p"), "--format", "png,pdf"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "p" / "rd-psnr_rgb.pdf").stat().st_size > 1000
    assert (tmp_path / "p" / "rd-ms_ssim_db.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = subprocess.run(RDBENCH + ["report", str(real_run), "--out", str(tmp_path / "r"), "--anchor", "jpeg"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "r" / "report.md").read_text()
    assert "BD versus jpeg (measured)" in report and "How these numbers were computed" in report
    for name in ("rd-psnr_rgb.png", "rd-ms_ssim_db.svg", "bd-psnr_rgb.png", "bd-per-image-psnr_rgb.png", "curves.csv"):
        assert (tmp_path / "r" / name).stat().st_size > 0


def test_bdrate_with_too_few_points_says_why(tmp_path, small_dataset):
    out = tmp_path / "o"
    run(folder_dataset(small_dataset), load_codecs(["jpeg", "webp"]), out, qualities=[30, 60], workers=1, progress=False)
    done = subprocess.run(RDBENCH + ["bdrate", str(out), "--anchor", "jpeg"], capture_output=True, text=True)
    assert done.returncode == 6  # no BD value could be computed (issue 23): not a success
    assert "BD needs at least 4 rate points" in done.stdout
