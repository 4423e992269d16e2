"""Measuring at target rates and PSNRs (`rdbench run --target-bpp/--target-psnr`, bench/targets.py)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rdbench.bench.targets import Target, parse_target, quality_scale, search, targets_from_options
from rdbench.codecs import load
from rdbench.codecs.pillow import JPEG
from rdbench.metrics import psnr_rgb


def bpp(codec, image, q):
    return 8 * len(codec.encode(image, q)) / (image.shape[0] * image.shape[1])


@pytest.fixture(scope="module")
def crop(kodim):
    return np.ascontiguousarray(kodim(7)[:128, :192])


def test_target_text_round_trips():
    for t in (Target("bpp", 0.25), Target("bpp", 0.075, below=True), Target("psnr_rgb", 32.5)):
        assert parse_target(t.text) == t
    assert Target("bpp", 0.25, below=True).text == "bpp<=0.25"
    with pytest.raises(ValueError, match="expected bpp=V"):
        parse_target("ssim=3")


@pytest.mark.parametrize("bad", [0, -0.5, float("nan"), float("inf"), 60])
def test_bad_target_rates_are_refused(bad):
    with pytest.raises(ValueError, match="--target-bpp"):
        targets_from_options([bad], [])


def test_integer_scale_bisection_finds_the_brute_force_closest(crop):
    # JPEG's quality is an integer 1..100: the search must end where an exhaustive scan ends
    jpeg = load("jpeg")
    assert quality_scale(jpeg) == ("integer", (1, 100))
    every = {q: bpp(jpeg, crop, q) for q in range(1, 101)}
    for value in (every[15] * 0.7 + every[16] * 0.3, every[50] * 0.4 + every[51] * 0.6, 0.5 * (every[85] + every[86])):
        quality, bound, probes = search(jpeg, crop, Target("bpp", value))
        best = min(every, key=lambda q: abs(every[q] - value))
        assert abs(every[quality] - value) == pytest.approx(abs(every[best] - value))
        assert bound == "" and len(probes) <= 10  # a bisection, not a scan
        below, _, _ = search(jpeg, crop, Target("bpp", value, below=True))
        assert every[below] == max(v for v in every.values() if v <= value)


def test_qp_scale_runs_the_other_way(crop):
    # a scale whose rate falls as the number grows (a QP): the same search works reversed
    class Reversed(JPEG):
        def encode(self, image, quality):
            return super().encode(image, 101 - quality)

    codec = Reversed("jpeg")
    quality, bound, _ = search(codec, crop, Target("bpp", 0.8))
    reference, _, _ = search(load("jpeg"), crop, Target("bpp", 0.8))
    assert quality == 101 - reference and bound == ""


def test_discrete_ladder_takes_the_closest_point_or_the_closest_below(crop):
    class Ladder(JPEG):  # a codec with a few models and nothing between them (a learned codec)
        quality_range = None
        qualities = (10, 30, 50, 70, 90)

    codec = Ladder("jpeg")
    assert quality_scale(codec) == ("discrete", (10, 30, 50, 70, 90))
    rates = {q: bpp(codec, crop, q) for q in codec.qualities}
    target = (rates[30] * 0.3 + rates[50] * 0.7)  # nearer 50, above 30
    assert search(codec, crop, Target("bpp", target))[0] == 50
    assert search(codec, crop, Target("bpp", target, below=True))[0] == 30
    quality, bound, _ = search(codec, crop, Target("bpp", rates[10] / 2))
    assert quality == 10 and bound.startswith("below reach") and "quality 10" in bound


def test_continuous_scale_reaches_a_psnr_target_closely(crop):
    j2k = load("jpeg2000")
    assert quality_scale(j2k)[0] == "continuous"
    quality, bound, _ = search(j2k, crop, Target("psnr_rgb", 33.0))
    assert bound == "" and isinstance(quality, float)
    assert abs(psnr_rgb(crop, j2k.decode(j2k.encode(crop, quality))) - 33.0) < 0.1


def test_unreachable_target_names_the_bound(crop):
    quality, bound, _ = search(load("jpeg"), crop, Target("psnr_rgb", 90))
    assert quality == 100 and bound.startswith("above reach") and "quality 100" in bound


def rdbench(*args):
    return subprocess.run([sys.executable, "-m", "rdbench", *args], capture_output=True, text=True)


def test_run_at_targets_stores_target_rows_once(small_dataset, tmp_path):
    out = tmp_path / "out"
    args = ["run", "--dataset", str(small_dataset), "--codec", "jpeg,webp", "--target-bpp", "0.25,0.5",
            "--target-psnr", "80", "--workers", "1", "--no-progress", "--out", str(out)]
    done = rdbench(*args)
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 3 * 2 * 3 and (rows["status"] == "ok").all()
    assert set(rows["target"]) == {"bpp=0.25", "bpp=0.5", "psnr_rgb=80"}
    hit = rows[rows["target"] == "psnr_rgb=80"]
    assert hit["target_bound"].str.startswith("above reach").all() and (hit["quality"] == 100).all()
    met = rows[rows["target"] == "bpp=0.5"]
    assert met["target_bound"].isna().all() and ((met["bpp"] - 0.5).abs() < 0.1).all()
    again = rdbench(*args)
    assert again.returncode == 0 and "0 measured" in again.stderr and "18 already stored" in again.stderr
    report = rdbench("report", str(out), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "## Target searches" in (tmp_path / "report" / "report.md").read_text()
    searched = pd.read_csv(tmp_path / "report" / "searched-targets.csv")
    assert len(searched) == 6 and searched.loc[searched["target"] == "psnr_rgb=80", "bound_hit"].tolist() == [3, 3]


def test_target_rows_are_no_part_of_rd_curves(small_dataset, tmp_path):
    out = tmp_path / "out"
    base = ["run", "--dataset", str(small_dataset), "--codec", "jpeg", "--workers", "1", "--no-progress",
            "--no-report", "--out", str(out)]
    assert rdbench(*base, "--quality", "20,50,80").returncode == 0
    assert rdbench(*base, "--target-bpp", "0.3,0.6").returncode == 0
    from rdbench.commands.inputs import load_inputs

    inputs = load_inputs([str(out)])
    assert sorted(inputs.curves["quality"]) == [20, 50, 80]  # the per-image qualities of targets make no points


@pytest.mark.parametrize("args, message", [
    (["--target-bpp", "0"], "--target-bpp 0"),
    (["--target-bpp", "0.5", "--quality", "50"], "exclude each other"),
    (["--target-below"], "--target-below needs"),
])
def test_bad_target_options_exit_2_before_any_work(small_dataset, tmp_path, args, message):
    done = rdbench("run", "--dataset", str(small_dataset), "--codec", "jpeg", "--out", str(tmp_path / "o"), *args)
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "o" / "results.csv").exists()


# -- the target-rate table and CLIC's corpus budget (analysis/targets.py) ------------------------

import itertools  # noqa: E402
import math  # noqa: E402

from rdbench.analysis.targets import at_target_rates, corpus_budget  # noqa: E402


@pytest.fixture(scope="module")
def jpeg_rows(tmp_path_factory, kodim):
    """JPEG on three real Kodak crops: a ladder, and a target search at 0.5 and 1 bpp."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("crops")
    for n in (2, 13, 21):
        Image.fromarray(np.ascontiguousarray(kodim(n)[:128, :160])).save(folder / f"k{n}.png")
    out = tmp_path_factory.mktemp("out")
    base = ["run", "--dataset", str(folder), "--codec", "jpeg", "--workers", "1", "--no-progress", "--no-report",
            "--out", str(out)]
    assert rdbench(*base, "--quality", "5,10,20,30,40,50,60,70,80,90").returncode == 0
    assert rdbench(*base, "--target-bpp", "0.5,1").returncode == 0
    from rdbench.bench.store import read_results

    return out, read_results(out)


def test_rate_table_interpolates_each_image_and_matches_a_measured_search(jpeg_rows):
    out, rows = jpeg_rows
    ladder = rows[rows["target"].isna()]
    table = at_target_rates(rows, [0.5, 1.0, 0.01])
    assert list(table["target_bpp"]) == [0.01, 0.5, 1.0]
    low = table.iloc[0]
    assert low["outside"] == 3 and math.isnan(low["psnr_rgb"])  # below every image's lowest rate: no mean
    for _, row in table.iloc[1:].iterrows():
        assert row["n_images"] == 3 and row["outside"] == 0
        expected = []  # each image by hand: linear in log(bpp) between the two points around the rate
        for _, image in ladder.groupby("image"):
            image = image.sort_values("bpp")
            above = image[image["bpp"] >= row["target_bpp"]].iloc[0]
            below = image[image["bpp"] <= row["target_bpp"]].iloc[-1]
            if above["bpp"] == below["bpp"]:
                expected.append(above["psnr_rgb"])
                continue
            t = (math.log(row["target_bpp"]) - math.log(below["bpp"])) / (math.log(above["bpp"]) - math.log(below["bpp"]))
            expected.append(below["psnr_rgb"] + t * (above["psnr_rgb"] - below["psnr_rgb"]))
        assert row["psnr_rgb"] == pytest.approx(np.mean(expected), abs=1e-9)
        assert 0 <= row["gap_bpp_mean"] <= row["gap_bpp_max"]
        # the images coded at the quality their search found land close to the interpolated value
        searched = rows[rows["target"] == f"bpp={row['target_bpp']:g}"]
        assert len(searched) == 3
        assert abs(searched["psnr_rgb"].mean() - row["psnr_rgb"]) < 0.5


def test_corpus_budget_fits_and_per_image_allocation_is_near_the_brute_force_optimum(jpeg_rows):
    _, rows = jpeg_rows
    ladder = rows[rows["target"].isna() & rows["quality"].isin([10, 30, 50, 70, 90])]
    pixels = ladder.groupby("image")["width"].first() * ladder.groupby("image")["height"].first()
    total_pixels = pixels.sum()
    budget = 8 * ladder[ladder["quality"] == 50]["bytes"].sum() / total_pixels * 1.1
    table = corpus_budget(ladder, [budget])
    row = table.iloc[0]
    assert row["one_quality"] == 50 and row["one_quality_bpp"] <= budget
    assert row["per_image_bpp"] <= budget + 1e-12 and row["per_image_psnr"] >= row["one_quality_psnr"]
    # brute force over every combination of the 5 qualities on the 3 images
    options = []
    for _, image in ladder.groupby("image"):
        sse = 3 * image["width"] * image["height"] * 255.0 ** 2 * 10 ** (-image["psnr_rgb"] / 10)
        options.append(list(zip(image["bytes"], sse)))
    best = max(10 * math.log10(255.0 ** 2 * 3 * total_pixels / sum(s for _, s in combo))
               for combo in itertools.product(*options) if 8 * sum(b for b, _ in combo) / total_pixels <= budget)
    assert row["per_image_psnr"] <= best + 1e-9 and row["per_image_psnr"] > best - 0.3


def test_targets_command_prints_the_views_and_refuses_bad_rates(jpeg_rows, tmp_path):
    out, _ = jpeg_rows
    done = rdbench("targets", str(out), "--markdown", str(tmp_path / "t.md"), "--csv", str(tmp_path / "t.csv"))
    assert done.returncode == 0, done.stderr
    for heading in ("At target rates", "CLIC corpus budget", "Measured at searched targets"):
        assert heading in done.stdout
    assert "| bpp=0.5 |" in done.stdout.replace("  ", " ")
    assert (tmp_path / "t_budget.csv").is_file() and (tmp_path / "t.md").read_text().startswith("### At target")
    bad = rdbench("targets", str(out), "--rates", "0")
    assert bad.returncode == 2 and "--rates/--budgets 0" in bad.stderr
