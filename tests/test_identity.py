"""Curve identity on real runs: codec versions, image sets, datasets, MS-SSIM conventions, provenance.

Every test measures real Kodak crops with real codecs, then checks that the analysis never
combines what differs (issue 11, items 1, 2, 6 and 8) and says exactly what it compared.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rdbench.analysis.bd import bd
from rdbench.analysis.curves import curves, image_index, image_set_digest, select_versions
from rdbench.analysis.published import kodak_images, published, read_compressai_json, reference_images
from rdbench.analysis.per_image import bd_table_per_image, per_image_bd
from rdbench.analysis.tables import bd_table
from rdbench.bench.columns import RESULT_NAMES
from rdbench.bench.runner import load_codecs, run
from rdbench.bench.store import read_results
from rdbench.data.datasets import folder_dataset
from tests.conftest import REPO

RDBENCH = [sys.executable, "-m", "rdbench"]
QUALITIES = [20, 35, 50, 65, 80]
OLD_VERSION = "Pillow 9.0.0, libjpeg-turbo 2.1.0"


def rdbench(*args, cwd=None, env=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*RDBENCH, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def measure(folder, out, specs, qualities=QUALITIES, name=None, images=None):
    dataset = folder_dataset(Path(folder), name)
    if images is not None:
        dataset.images = dataset.images[:images]
    run(dataset, load_codecs(specs), out, qualities=qualities, workers=2, progress=False)
    return read_results(out)


def crops(folder, numbers, box=(slice(0, 192), slice(0, 256)), kodim=None):
    folder.mkdir()
    for n in numbers:
        Image.fromarray(np.ascontiguousarray(kodim(n)[box])).save(folder / f"kodim{n:02d}_crop.png")
    return folder


def write_rows(rows: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows[list(RESULT_NAMES)].to_csv(folder / "results.csv", index=False)
    return folder


def bd_of(anchor_curve, test_curve, metric="psnr_rgb"):
    return bd(anchor_curve["bpp"], anchor_curve[metric], test_curve["bpp"], test_curve[metric]).value


# -- item 1: versions ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_versions(tmp_path_factory, kodim):
    """jpeg (4:2:0) and webp measured for real; jpeg:subsampling=444 measured for real and then
    relabelled as an older version of `jpeg`, measured earlier: a result set holding two versions
    of one codec whose values really differ."""
    base = tmp_path_factory.mktemp("versions")
    folder = crops(base / "crops", (1, 7, 23), kodim=kodim)
    rows = measure(folder, base / "run", ["jpeg", "jpeg:subsampling=444", "webp"])
    old = rows[rows["codec"] == "jpeg:subsampling=444"].assign(codec="jpeg", codec_version=OLD_VERSION,
                                                              finished_at="2001-01-01T00:00:00+00:00")
    mixed = pd.concat([rows[rows["codec"] != "jpeg:subsampling=444"], old], ignore_index=True)
    return {"rows": rows, "mixed": mixed, "dir": write_rows(mixed, base / "mixed")}


def test_two_versions_are_two_curves_each_equal_to_its_own_run(two_versions):
    rows, mixed = two_versions["rows"], two_versions["mixed"]
    single = curves(rows)
    table = curves(mixed)
    jpeg = table[table["codec"] == "jpeg"]
    assert jpeg["codec_version"].nunique() == 2 and len(jpeg) == 2 * len(QUALITIES)
    assert (jpeg["n_images"] == 3).all() and (jpeg["image_set_size"] == 3).all()
    current = rows.loc[rows.codec == "jpeg", "codec_version"].iloc[0]
    for version, spec in ((OLD_VERSION, "jpeg:subsampling=444"), (current, "jpeg")):
        mine = jpeg[jpeg["codec_version"] == version].set_index("quality")
        alone = single[single["codec"] == spec].set_index("quality")
        for column in ("bpp", "psnr_rgb", "ms_ssim_db", "ms_ssim_db_of_mean"):
            assert np.allclose(mine[column], alone[column], rtol=0, atol=1e-12), (version, column)
        assert mine["label"].str.endswith(f"[{version}]").all()  # the legend names the version
    # the average of both versions (what grouping by codec and quality alone gave) is another curve
    pooled = mixed[mixed.status == "ok"].groupby(["codec", "quality"])[["bpp", "psnr_rgb"]].mean().loc["jpeg"]
    webp = single[single["codec"] == "webp"]
    newest = single[single["codec"] == "jpeg"]
    assert abs(bd_of(webp, pooled.reset_index()) - bd_of(webp, newest)) > 1.0


def test_bdrate_uses_the_newest_version_by_default_and_each_version_on_request(two_versions):
    rows, folder = two_versions["rows"], two_versions["dir"]
    single = curves(rows)
    webp = single[single["codec"] == "webp"]
    expected_new = bd_of(webp, single[single["codec"] == "jpeg"])
    expected_old = bd_of(webp, single[single["codec"] == "jpeg:subsampling=444"])
    assert abs(expected_new - expected_old) > 1.0  # the versions really differ

    done = rdbench("bdrate", folder, "--anchor", "webp", "--csv", folder / "newest.csv")
    assert done.returncode == 0, done.stderr
    assert f"rows of version '{OLD_VERSION}' are left out" in done.stderr and "--versions all" in done.stderr
    newest = pd.read_csv(folder / "newest.csv")
    assert newest["codec"].tolist() == ["jpeg"] and newest["n_images"].tolist() == [3]
    assert newest["bd_rate_pct"].iloc[0] == pytest.approx(expected_new, abs=1e-9)

    done = rdbench("bdrate", folder, "--anchor", "webp", "--versions", "all", "--csv", folder / "all.csv")
    assert done.returncode == 0, done.stderr
    every = pd.read_csv(folder / "all.csv", dtype={"codec_version": str}).set_index("codec_version")
    assert len(every) == 2 and every["label"].str.startswith("jpeg [").all()
    assert every.loc[OLD_VERSION, "bd_rate_pct"] == pytest.approx(expected_old, abs=1e-9)
    assert every.drop(OLD_VERSION)["bd_rate_pct"].iloc[0] == pytest.approx(expected_new, abs=1e-9)
    assert OLD_VERSION in done.stdout  # the printed table names the versions

    # an anchor with two versions is ambiguous: refused with the labels to choose from
    done = rdbench("bdrate", folder, "--anchor", "jpeg", "--versions", "all")
    assert done.returncode == 2 and "several versions" in done.stderr and f"jpeg [{OLD_VERSION}]" in done.stderr
    done = rdbench("bdrate", folder, "--anchor", f"jpeg [{OLD_VERSION}]", "--versions", "all", "--csv", folder / "o.csv")
    assert done.returncode == 0, done.stderr
    vs_old = pd.read_csv(folder / "o.csv", dtype={"codec_version": str}).set_index("codec")
    assert vs_old.loc["webp", "anchor_version"] == OLD_VERSION


def test_select_versions_keeps_the_version_measured_last(two_versions):
    kept, notes = select_versions(two_versions["mixed"])
    assert OLD_VERSION not in set(kept["codec_version"]) and len(notes) == 1
    assert "jpeg on crops" in notes[0] and f"{len(QUALITIES) * 3} rows" in notes[0]
    everything, none = select_versions(two_versions["mixed"], "all")
    assert len(everything) == len(two_versions["mixed"]) and none == []


def test_ablation_cell_retrained_is_the_new_model_alone(two_versions, tmp_path):
    """A cell whose model was retrained (a new version) is summarized from the new model's rows only."""
    from rdbench.ablation.config import parse
    from rdbench.ablation.summary import published_needed, summarize
    from tests.test_ablation import CONFIG

    config = parse(CONFIG.format(data=tmp_path, steps=2, dataset="crops"))
    rows, mixed = two_versions["rows"], two_versions["mixed"]
    # cells: "joint-k5" (the reference) from webp; "mean-scale" from jpeg, with an older model's rows
    cells = mixed[mixed["codec"].isin(["jpeg", "webp"])].copy()
    cells["codec"] = cells["codec"].map({"jpeg": "mean-scale", "webp": "joint-k5"})
    facts = {c.name: {"params": 1, "steps": 2} for c in config.cells}
    doc = summarize(config, cells, facts, {n: published(n) for n in published_needed(config)}, "test")
    table = doc.tables["ablation_psnr_rgb.csv"].set_index("cell")
    single = curves(rows)
    expected = bd_of(single[single.codec == "webp"], single[single.codec == "jpeg"])
    assert table.loc["mean-scale", "BD-rate vs joint-k5 (%)"] == pytest.approx(expected, abs=1e-9)
    assert f"rows of version '{OLD_VERSION}' are left out" in doc.text
    # the crops are not the 24 Kodak images BPG's published curve averages: no BD-rate versus BPG
    assert table.loc[["mean-scale", "joint-k5"], "BD note"].str.contains("image sets differ").all()


# -- item 2: image sets and datasets ---------------------------------------------------------------

@pytest.fixture(scope="module")
def uneven(tmp_path_factory, kodim):
    """jpeg on three crops, webp on the first two of them (one dataset, two image sets)."""
    base = tmp_path_factory.mktemp("uneven")
    folder = crops(base / "crops", (1, 7, 23), kodim=kodim)
    out = base / "run"
    measure(folder, out, ["jpeg"])
    rows = measure(folder, out, ["webp"], images=2)
    return {"rows": rows, "dir": out}


def test_bd_over_different_image_sets_is_refused_unless_common_images(uneven):
    rows = uneven["rows"]
    table = curves(rows)
    jpeg, webp = table[table.codec == "jpeg"], table[table.codec == "webp"]
    assert jpeg["image_set_size"].iloc[0] == 3 and webp["image_set_size"].iloc[0] == 2
    assert jpeg["image_set"].iloc[0] != webp["image_set"].iloc[0]

    refused = bd_table(table, "jpeg", rows=rows, images=image_index(rows)).iloc[0]
    assert np.isnan(refused["bd_rate_pct"])
    for words in ("image sets differ", "crops, 3 images, set " + jpeg["image_set"].iloc[0][:12],
                  "crops, 2 images, set " + webp["image_set"].iloc[0][:12], "1 only in the anchor's (kodim23_crop.png)",
                  "--common-images"):
        assert words in refused["error"], words

    common = bd_table(table, "jpeg", rows=rows, images=image_index(rows), common_images=True).iloc[0]
    # by hand: both curves on the two images webp measured
    two = rows[rows["image"].isin(["kodim01_crop.png", "kodim07_crop.png"]) & (rows.status == "ok")]
    by_hand = two.groupby(["codec", "quality"])[["bpp", "psnr_rgb"]].mean()
    expected = bd_of(by_hand.loc["jpeg"], by_hand.loc["webp"])
    assert common["bd_rate_pct"] == pytest.approx(expected, abs=1e-9) and common["n_images"] == 2
    assert common["images"].startswith("common images: 2") and common["error"] == ""
    # the three-image jpeg curve gives another number: the common images matter
    assert abs(bd_of(jpeg, webp) - expected) > 0.5

    per = bd_table_per_image(rows, "jpeg").iloc[0]
    # BD on each of the two common images (a number, or the error saying why), the third named as dropped
    assert per["n_images"] + per["n_failed"] == 2 and per["n_dropped"] == 1
    assert per["dropped"] == "kodim23_crop.png (not measured by this codec)"


def test_cli_common_images_is_said_in_every_output(uneven, tmp_path):
    done = rdbench("bdrate", uneven["dir"], "--anchor", "jpeg")
    # every row refused: no BD value, so exit 5 (issue 23), with the reason on each row
    assert done.returncode == 6 and "image sets differ" in done.stdout and "refused" in done.stdout
    done = rdbench("bdrate", uneven["dir"], "--anchor", "jpeg", "--common-images")
    assert done.returncode == 0 and "common images: 2" in done.stdout
    done = rdbench("report", uneven["dir"], "--anchor", "jpeg", "--common-images", "--out", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "r" / "report.md").read_text()
    assert "--common-images" in report and "common images: 2" in report
    bd = pd.read_csv(tmp_path / "r" / "bd-psnr_rgb.csv")
    assert bd["images"].str.startswith("common images: 2").all()


def test_published_kodak_curves_carry_the_24_kodak_images(kodak_dir):
    bpg = published("bpg")
    kodak = kodak_images()
    assert len(kodak) == 24 and (bpg["image_set_size"] == 24).all() and (bpg["dataset"] == "kodak").all()
    # the 24 real Kodak files' pixel digests, as a measured curve records them, give the same set
    measured_shas = [image.sha256 for image in folder_dataset(kodak_dir).images]
    assert bpg["image_set"].iloc[0] == image_set_digest(measured_shas)
    assert bpg["image_set"].iloc[0] != image_set_digest(measured_shas[:3])
    assert bpg["ms_ssim_db"].isna().all() and bpg["ms_ssim_db_of_mean"].notna().all()
    assert "dB of the mean" in bpg["conventions"].iloc[0]


def test_a_kodak_subset_against_published_curves_is_refused_unless_asked(tmp_path, kodak_dir):
    out = tmp_path / "sub"
    done = rdbench("run", "--dataset", "kodak", "--max-images", "2", "--codec", "jpeg", "--quality", "20,40,60,80",
                   "--out", out, "--no-progress", "--workers", "2", env={"RDBENCH_KODAK": str(kodak_dir)})
    assert done.returncode == 0, done.stderr
    report = (out / "report.md").read_text()
    bd = pd.read_csv(out / "bd-psnr_rgb.csv")
    assert bd["bd_rate_pct"].isna().all()
    assert bd["error"].str.contains("anchor kodak, 24 images").all() and bd["error"].str.contains("kodak, 2 images").all()
    assert "22 only in the anchor's (kodim03.png" in bd["error"].iloc[0]
    assert bd["source"].eq("measured").all()  # published references are compared only on their own images
    assert "image sets differ" in report

    done = rdbench("report", out, "--allow-mismatched-reference", "--out", tmp_path / "allowed")
    assert done.returncode == 0, done.stderr
    allowed = pd.read_csv(tmp_path / "allowed" / "bd-psnr_rgb.csv")
    jpeg = allowed[allowed["codec"] == "jpeg"].iloc[0]
    assert np.isfinite(jpeg["bd_rate_pct"]) and jpeg["images"].startswith("MISMATCHED")
    assert "--allow-mismatched-reference" in (tmp_path / "allowed" / "report.md").read_text()


def test_a_folder_dataset_is_never_compared_with_published_kodak(uneven, kodim, tmp_path):
    folder = crops(tmp_path / "other", (4, 19), kodim=kodim)
    rows = measure(folder, tmp_path / "o", ["jpeg", "webp"])
    done = rdbench("bdrate", tmp_path / "o", "--anchor", "bpg", "--reference", "mbt2018", "--csv", tmp_path / "bd.csv")
    assert done.returncode == 0, done.stderr
    bd = pd.read_csv(tmp_path / "bd.csv").set_index("codec")
    other = bd[bd["dataset"] == "other"]
    assert set(other.index) == {"jpeg", "webp"}
    assert other["bd_rate_pct"].isna().all() and other["error"].str.contains("--allow-mismatched-reference").all()
    # the published pair itself (both over Kodak's 24 images) is compared, and listed under kodak
    pair = bd[bd["dataset"] == "kodak"]
    assert pair.index.tolist() == ["official mbt2018 (published)"] and np.isfinite(pair["bd_rate_pct"]).all()
    # against a measured anchor, the published Kodak curve gets a row saying why it has no number
    done = rdbench("bdrate", tmp_path / "o", "--anchor", "jpeg", "--reference", "mbt2018", "--csv", tmp_path / "j.csv")
    assert done.returncode == 0, done.stderr
    mbt = pd.read_csv(tmp_path / "j.csv").set_index("codec").loc["official mbt2018 (published)"]
    assert mbt["dataset"] == "other" and np.isnan(mbt["bd_rate_pct"])
    assert "anchor other, 2 images" in mbt["error"] and "test kodak, 24 images" in mbt["error"]
    # asked for: a number, labelled
    table = curves(rows)
    allowed = bd_table(table, "bpg", published_anchor=published("bpg"), allow_mismatched_reference=True)
    assert allowed["bd_rate_pct"].notna().all() and allowed["images"].str.startswith("MISMATCHED").all()


def test_two_datasets_get_a_table_each_never_one_pooled_curve(uneven, kodim, tmp_path):
    a = crops(tmp_path / "a", (2, 11), kodim=kodim)
    b = crops(tmp_path / "b", (5, 20), box=(slice(100, 292), slice(200, 456)), kodim=kodim)
    rows_a = measure(a, tmp_path / "ra", ["jpeg", "webp"])
    rows_b = measure(b, tmp_path / "rb", ["jpeg", "webp"])
    done = rdbench("bdrate", tmp_path / "ra", tmp_path / "rb", "--anchor", "jpeg", "--csv", tmp_path / "bd.csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("BD versus jpeg") == 2 and "not monotonic" not in done.stdout
    bd = pd.read_csv(tmp_path / "bd.csv").set_index("dataset")
    for name, rows in (("a", rows_a), ("b", rows_b)):
        alone = bd_table(curves(rows), "jpeg").iloc[0]
        assert bd.loc[name, "bd_rate_pct"] == pytest.approx(alone["bd_rate_pct"], abs=1e-9)
        assert bd.loc[name, "n_images"] == 2
    done = rdbench("report", tmp_path / "ra", tmp_path / "rb", "--anchor", "jpeg", "--out", tmp_path / "r")
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## a: BD versus jpeg (measured)" in report and "## b: BD versus jpeg (measured)" in report
    assert (tmp_path / "r" / "bd-psnr_rgb-a.csv").is_file() and (tmp_path / "r" / "rd-psnr_rgb-b.png").is_file()


# -- item 6: MS-SSIM dB conventions ----------------------------------------------------------------

def test_ms_ssim_db_both_ways_and_matched_against_a_published_style_curve(uneven, tmp_path):
    rows = uneven["rows"]
    table = curves(rows)
    jpeg = table[table.codec == "jpeg"].set_index("quality")
    ok = rows[(rows.codec == "jpeg") & (rows.status == "ok")]
    by_hand = ok.groupby("quality")["ms_ssim"].mean()
    assert np.allclose(jpeg["ms_ssim_db_of_mean"], -10 * np.log10(1 - by_hand), atol=1e-12)
    assert np.allclose(jpeg["ms_ssim_db"], ok.groupby("quality")["ms_ssim_db"].mean(), atol=1e-12)
    assert (jpeg["ms_ssim_db"] - jpeg["ms_ssim_db_of_mean"]).abs().max() > 0.01  # they differ

    # the jpeg curve written as a published CompressAI file: mean linear MS-SSIM only
    from rdbench.analysis.curves import to_compressai_json

    data = to_compressai_json(table[table.codec == "jpeg"], "jpeg (as published)")
    data["results"] = {k: data["results"][k] for k in ("bpp", "psnr-rgb", "ms-ssim-rgb")}
    (tmp_path / "pub.json").write_text(json.dumps(data))
    pub = read_compressai_json(tmp_path / "pub.json")
    assert pub["ms_ssim_db"].isna().all() and pub["image_set"].iloc[0] == jpeg["image_set"].iloc[0]

    matched = bd_table(table[table.codec == "jpeg"], "jpeg (as published)", "ms_ssim_db", published_anchor=pub).iloc[0]
    assert matched["metric"] == "ms_ssim_db_of_mean" and "dB of the mean" in matched["convention"]
    assert matched["bd_rate_pct"] == pytest.approx(0.0, abs=1e-9)
    mismatched = bd(pub["bpp"], pub["ms_ssim_db_of_mean"], jpeg["bpp"], jpeg["ms_ssim_db"]).value
    assert abs(mismatched) > 0.3  # what comparing mean-of-dB with dB-of-mean gave


def test_every_bd_table_names_its_convention(uneven):
    rows = uneven["rows"]
    table = curves(rows)
    both = bd_table(table, "jpeg", "ms_ssim_db", rows=rows, common_images=True).iloc[0]
    assert both["metric"] == "ms_ssim_db" and both["convention"] == "mean of per-image MS-SSIM dB"
    of_mean = bd_table(table, "jpeg", "ms_ssim_db_of_mean", rows=rows, common_images=True).iloc[0]
    assert of_mean["convention"] == "dB of the mean MS-SSIM"
    assert of_mean["bd_rate_pct"] != pytest.approx(both["bd_rate_pct"], abs=1e-6)
    per = bd_table_per_image(rows, "jpeg", "ms_ssim_db_of_mean").iloc[0]
    assert per["metric"] == "ms_ssim_db" and "per image" in per["convention"]
    assert len(per_image_bd(rows, "jpeg", "ms_ssim_db")) == 3


def test_reference_images_name_the_kodak_files():
    ref = reference_images()
    assert len(ref) == 24 and ref["image_set"].nunique() == 1 and ref["image"].iloc[0] == "kodim01.png"


# -- item 8: provenance ----------------------------------------------------------------------------

def test_report_lists_every_run_without_machine_paths(tmp_path, kodim):
    folder = crops(tmp_path / "imgs", (3, 15), kodim=kodim)
    out = tmp_path / "res"
    first = rdbench("run", "--dataset", folder, "--codec", "jpeg", "--quality", "20,40,60,80", "--out", out,
                    "--no-progress", "--no-report", "--workers", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = rdbench("run", "--dataset", folder, "--codec", "webp", "--quality", "20,40,60,80", "--out", out,
                     "--no-progress", "--workers", "2", "--anchor", "jpeg", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    report = (out / "report.md").read_text()
    assert str(tmp_path) not in report  # no absolute machine path anywhere on the page
    runs = report.split("## Runs that made these results")[1].split("\n## ")[0]
    assert "`rdbench run --dataset imgs --codec jpeg" in runs and "`rdbench run --dataset imgs --codec webp" in runs
    assert "--out res" in runs
    versions = read_results(out).groupby("codec")["codec_version"].first()
    assert f"jpeg: {versions['jpeg']}" in runs and f"webp: {versions['webp']}" in runs
    lines = [line for line in runs.splitlines() if "rdbench run" in line]
    assert len(lines) == 2 and all("| 8 |" in line for line in lines)  # each measured 2 images x 4 qualities
    assert report.startswith("# rdbench report\n\nMade ") and "with `rdbench run --dataset imgs" in report


def test_a_curve_without_the_metric_says_so_instead_of_nan():
    """Published mbt2018 has PSNR only: its MS-SSIM row must name the missing values, not BD's NaN check."""
    from rdbench.analysis.published import published
    from rdbench.analysis.tables import bd_table

    anchor, test = published("bpg"), published("mbt2018")
    table = pd.concat([anchor, test], ignore_index=True)
    ms = bd_table(table, anchor="bpg", metric="ms_ssim_db", published_anchor=anchor)
    row = ms[ms["label"].str.contains("mbt2018")].iloc[0]
    assert np.isnan(row["bd_rate_pct"]) and row["error"] == "no ms_ssim_db_of_mean values in the test curve"
    psnr = bd_table(table, anchor="bpg", metric="psnr_rgb", published_anchor=anchor)
    assert psnr.loc[psnr["label"].str.contains("mbt2018"), "bd_rate_pct"].notna().all()


# --- identity in columns, never in joined strings (issue 20) ------------------------------------

def _seed_rows(seeds=(0, 1, 2), old_seed=None):
    """Rows of one ablation cell, one model (codec version) per seed; `old_seed` also has an older model."""
    rows = []
    for seed in seeds:
        versions = [(f"model-seed{seed}", "2026-01-02")]
        if seed == old_seed:
            versions.append((f"model-seed{seed}-old", "2026-01-01"))
        for version, when in versions:
            for q in range(4):
                rows.append({"dataset": "kodak", "codec": "joint", "codec_version": version, "seed": seed,
                             "quality": q, "finished_at": when, "bpp": 0.1 * (q + 1), "psnr_rgb": 30.0 + q})
    return pd.DataFrame(rows)


def test_newest_model_per_seed_keeps_every_seed_and_drops_only_older_models():
    """pandas 3.0.6 grouped strings that differ only after a NUL as one: the old "codec\\x00seed N"
    tag merged three seeds into one and kept one seed's rows. Seeds are now a grouping column."""
    from rdbench.ablation.summary import newest_per_run

    rows = _seed_rows(old_seed=1)
    kept, notes = newest_per_run(rows)
    assert sorted(kept["seed"].unique()) == [0, 1, 2]
    assert set(kept["codec_version"]) == {"model-seed0", "model-seed1", "model-seed2"}
    assert len(kept) == 12 and (kept["codec"] == "joint").all()
    assert len(notes) == 1 and "seed 1" in notes[0] and "model-seed1-old" in notes[0] and "4 rows" in notes[0]


def test_select_versions_by_extra_column_and_relabel_keep_curves_apart_with_control_characters():
    """Labels stay unique per curve identity even for specs that differ only after a control
    character (the old NUL-joined identity made them one string in pandas 3.0.6)."""
    from rdbench.analysis.curves import relabel

    rows = _seed_rows()
    kept, notes = select_versions(rows, "newest", by=("seed",))
    assert len(kept) == len(rows) and notes == []
    table = pd.DataFrame({"dataset": ["d"] * 3, "image_set": ["s"] * 3,
                          "codec": ["a\x00x", "a\x00y", "a\x00y"], "codec_version": ["1", "1", "2"],
                          "source": ["measured"] * 3, "image_set_size": [3] * 3})
    labels = relabel(table)["label"]
    assert len(set(labels)) == 3  # Python's set: pandas 2.1's nunique() itself counts these three as one


def test_no_identity_is_joined_with_control_characters():
    """Curve and seed identity live in columns: no rdbench module builds keys with a NUL separator."""
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "rdbench").rglob("*.py")
                 if "\\x00" in p.read_text(encoding="utf-8") or "\x00" in p.read_text(encoding="utf-8")]
    assert offenders == []
