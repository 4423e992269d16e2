"""CompressAI JSON both ways (issue 11, item 4): the report writes one CompressAI result file per
curve; rdbench reads it back, and CompressAI's own plot program loads it."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rdbench.analysis.curves import curves
from rdbench.analysis.published import published, read_compressai_json
from rdbench.bench.store import read_results
from rdbench.packaged import reference_folder
from tests.conftest import REPO
from tests.test_identity import crops, measure, rdbench


@pytest.fixture(scope="module")
def exported(tmp_path_factory, kodim):
    base = tmp_path_factory.mktemp("json")
    folder = crops(base / "crops", (1, 7, 23), kodim=kodim)
    out = base / "run"
    measure(folder, out, ["jpeg", "webp"])
    done = rdbench("report", out, "--anchor", "jpeg", "--out", out)
    assert done.returncode == 0, done.stderr
    return out


def test_the_report_writes_one_compressai_file_per_curve(exported):
    folder = exported / "compressai-json"
    assert sorted(p.name for p in folder.iterdir()) == ["jpeg.json", "webp.json"]
    assert not (exported / "curves-compressai.json").exists()
    table = curves(read_results(exported)).set_index("codec")
    for codec in ("jpeg", "webp"):
        data = json.loads((folder / f"{codec}.json").read_text())
        assert data["name"] == codec and codec in data["description"]
        results = data["results"]
        n = len(results["bpp"])
        assert n == 5 and all(len(results[k]) == n for k in ("psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"))
        curve = table.loc[codec].sort_values("bpp")
        assert results["bpp"] == curve["bpp"].tolist() and results["ms-ssim-rgb"] == curve["ms_ssim"].tolist()
        assert results["ms_ssim_db"] == curve["ms_ssim_db"].tolist()
        meta = data["meta"]
        assert meta["dataset"] == "crops" and meta["n_images"] == 3 and meta["image_set"] == curve["image_set"].iloc[0]
        assert meta["codec_version"] == curve["codec_version"].iloc[0]
        assert meta["images"] == ["kodim01_crop.png", "kodim07_crop.png", "kodim23_crop.png"]


def test_rdbench_reads_its_json_back_with_the_same_numbers(exported, tmp_path):
    folder = exported / "compressai-json"
    back = read_compressai_json(folder / "jpeg.json")
    measured = curves(read_results(exported))
    jpeg = measured[measured.codec == "jpeg"]
    assert back["image_set"].iloc[0] == jpeg["image_set"].iloc[0] and back["dataset"].iloc[0] == "crops"
    for column in ("bpp", "psnr_rgb", "ms_ssim", "ms_ssim_db", "ms_ssim_db_of_mean", "psnr_y"):
        assert np.array_equal(back[column].to_numpy(), jpeg[column].to_numpy()), column
    for metric in ("psnr_rgb", "ms_ssim_db"):
        from_files = rdbench("bdrate", folder / "jpeg.json", folder / "webp.json", "--anchor", "jpeg", "--metric", metric,
                             "--csv", tmp_path / "files.csv")
        assert from_files.returncode == 0, from_files.stderr
        from_rows = rdbench("bdrate", exported, "--anchor", "jpeg", "--metric", metric, "--csv", tmp_path / "rows.csv")
        assert from_rows.returncode == 0, from_rows.stderr
        files, rows = pd.read_csv(tmp_path / "files.csv"), pd.read_csv(tmp_path / "rows.csv")
        assert files["bd_rate_pct"].iloc[0] == pytest.approx(rows["bd_rate_pct"].iloc[0], abs=1e-9)
        assert files["metric"].iloc[0] == metric and files["anchor_source"].iloc[0].startswith("file:")


@pytest.mark.slow
def test_compressai_plot_loads_the_files(exported, tmp_path):
    pytest.importorskip("compressai")
    folder = exported / "compressai-json"
    files = [str(folder / "jpeg.json"), str(folder / "webp.json")]
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "compressai.utils.plot", "-f", *files, "-m", "ms-ssim",
                           "-o", str(tmp_path / "rd.png")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # CompressAI's own parser: its MS-SSIM dB is the dB of the mean linear MS-SSIM, our ms_ssim_db_of_mean
    from compressai.utils.plot.__main__ import parse_json_file

    table = curves(read_results(exported))
    jpeg = table[table.codec == "jpeg"].sort_values("bpp")
    psnr = parse_json_file(files[0], "psnr")
    assert psnr["name"] == "jpeg" and list(psnr["xs"]) == jpeg["bpp"].tolist()
    assert list(psnr["ys"]) == jpeg["psnr_rgb"].tolist()
    ms = parse_json_file(files[0], "ms-ssim")
    assert np.allclose(ms["ys"], jpeg["ms_ssim_db_of_mean"], rtol=0, atol=1e-12)


def test_compressai_files_are_read_as_kodak_and_a_dict_of_codecs_is_refused(tmp_path):
    shipped = read_compressai_json(reference_folder() / "jpeg.json")
    assert shipped["image_set"].iloc[0] == published("bpg")["image_set"].iloc[0]
    assert "taken as Kodak's 24 images" in shipped["source"].iloc[0]
    assert shipped["ms_ssim_db"].isna().all() and shipped["ms_ssim_db_of_mean"].notna().all()
    old = tmp_path / "curves-compressai.json"  # what rdbench wrote before: a dict of codecs
    old.write_text(json.dumps({"jpeg": json.loads((reference_folder() / "jpeg.json").read_text())}))
    done = rdbench("bdrate", old, "--anchor", "bpg")
    assert done.returncode == 2 and "not a CompressAI result file" in done.stderr
