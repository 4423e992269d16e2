"""`rdbench ablate` on a tiny grid: training, interruption and resume, evaluation, summary."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("compressai")

from rdbench.ablation.config import AblationConfigError, parse  # noqa: E402
from rdbench.analysis.bd import BDError, bd_rate  # noqa: E402
from tests.conftest import REPO  # noqa: E402

CONFIG = """
name = "tiny"
[model]
N = 16
M = 16
[[cells]]
variant = "mean-scale"
[[cells]]
variant = "joint"
k = [3, 5]
K = [1, 2]
[rates]
lambdas = [0.001, 0.01, 0.05, 0.2]
[training]
data = "{data}"
crop = 64
batch = 2
steps = {steps}
checkpoint_every = 2
[evaluation]
dataset = "{dataset}"
reference = "joint-k5"
"""


def ablate(*args, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rdbench", "ablate", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)



def kill_once_written(config, out, checkpoint) -> None:
    """Start `rdbench ablate CONFIG --train-only` and SIGKILL its process group once `checkpoint` exists."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "rdbench", "ablate", str(config), "--out", str(out), "--train-only"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.01)  # short: the grids' tiny trainings pass from one checkpoint to the end in well under a second
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "no checkpoint was written before the deadline"


def kodak_crops(tmp_path, kodim, numbers, top: int, left: int, size: int = 128):
    """A folder of size x size crops of the given Kodak images (an evaluation set small enough for tests)."""
    crops = tmp_path / "crops"
    crops.mkdir()
    for n in numbers:
        crop = kodim(n)[top : top + size, left : left + size]
        Image.fromarray(np.ascontiguousarray(crop)).save(crops / f"kodim{n:02d}.png")
    return crops

def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(AblationConfigError, match="at least 4"):
        parse(CONFIG.format(data=tmp_path, steps=2, dataset="kodak").replace("0.001, 0.01, ", ""))
    with pytest.raises(AblationConfigError, match="reference cell 'joint-k9'"):
        parse(CONFIG.format(data=tmp_path, steps=2, dataset="kodak").replace('"joint-k5"', '"joint-k9"'))
    with pytest.raises(AblationConfigError, match="must be odd"):
        parse(CONFIG.format(data=tmp_path, steps=2, dataset="kodak").replace("[3, 5]", "[4]"))
    cfg = parse(CONFIG.format(data=tmp_path, steps=2, dataset="kodak"))
    assert [c.name for c in cfg.cells] == ["mean-scale", "joint-k3", "joint-k5", "joint-k3-K2", "joint-k5-K2"]


@pytest.mark.slow
def test_ablate_trains_resumes_after_a_kill_evaluates_once_and_summarizes(tmp_path, train_dir, kodim):
    crops = kodak_crops(tmp_path, kodim, (4, 19), top=100, left=200)
    config = tmp_path / "grid.toml"
    out = tmp_path / "out"
    config.write_text(CONFIG.format(data=train_dir, steps=40, dataset=crops))

    # interrupt training for real: SIGKILL once the first checkpoint exists
    kill_once_written(config, out, out / "cells" / "mean-scale" / "model.pt")

    done = ablate(str(config), "--out", str(out), "--jobs", "2", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    log = (out / "cells" / "mean-scale" / "train.log").read_text()
    assert "resuming at step" in log and "step 40/40" in log
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 5 * 4 * 2 and (rows["status"] == "ok").all()
    assert rows["bpp_estimated"].notna().all()
    # gain units start at sqrt(lambda) spacing: every cell's rate points are distinct and ordered
    mean_bpp = rows.groupby(["codec", "quality"])["bpp"].mean().unstack()
    assert (mean_bpp.diff(axis=1).iloc[:, 1:] > 0).all().all(), mean_bpp
    table = pd.read_csv(out / "ablation_psnr_rgb.csv")
    assert table["cell"].tolist() == ["mean-scale", "joint-k3", "joint-k5", "joint-k3-K2", "joint-k5-K2"]
    assert table["params"].gt(0).all() and table["dec s/image"].gt(0).all()
    for name in ("ablation.md", "ablation_ms_ssim_db.csv", "rd_psnr_rgb.png", "bd_psnr_rgb.png"):
        assert (out / name).is_file(), name
    assert "40 steps of batch 2" in (out / "ablation.md").read_text()
    check_paper_questions(out, rows)

    again = ablate(str(config), "--out", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 measured, 0 failed, 40 already stored" in again.stderr
    assert "train " not in again.stderr  # nothing left to train


def check_paper_questions(out, rows):
    """ablation_questions.csv: our BD-rates from the stored rows, the published ones from the JSON files."""
    questions = pd.read_csv(out / "ablation_questions.csv").set_index("question")
    assert questions.loc["context on top of the mean-scale hyperprior", ["test", "anchor"]].tolist() == ["joint-k5", "mean-scale"]
    assert questions.loc["2-Gaussian mixture vs one Gaussian (k = 3)", ["test", "anchor"]].tolist() == ["joint-k3-K2", "joint-k3"]
    assert questions.loc["context size k = 3 vs the reference", ["test", "anchor"]].tolist() == ["joint-k3", "joint-k5"]
    assert "hyperprior vs factorized prior" not in questions.index  # no factorized cell in this grid

    def mean_curve(cell):
        mine = rows[rows["codec"].str.contains(f"/cells/{cell}/")]
        points = mine.groupby("quality")[["bpp", "psnr_rgb"]].mean().sort_values("bpp")
        keep, best = [], -np.inf  # the operational curve: drop points no better than a cheaper one
        for psnr in points["psnr_rgb"]:
            keep.append(psnr > best)
            best = max(best, psnr)
        return points[keep]

    row = questions.loc["context on top of the mean-scale hyperprior"]
    ours, anchor = mean_curve("joint-k5"), mean_curve("mean-scale")
    try:
        expected = bd_rate(anchor["bpp"], anchor["psnr_rgb"], ours["bpp"], ours["psnr_rgb"])
        assert row["psnr_rgb ours (%)"] == pytest.approx(expected, abs=1e-9)
    except BDError as exc:
        # the refusal, then (issue 23) which rate points were dominated and what to change, if any were
        assert np.isnan(row["psnr_rgb ours (%)"]) and row["psnr_rgb note"].startswith(str(exc))

    def paper(name):
        data = json.loads((REPO / "rdbench" / "reference" / f"paper-{name}.json").read_text())["results"]
        return data["bpp"], data["psnr-rgb"]

    assert row["psnr_rgb paper (%)"] == pytest.approx(bd_rate(*paper("mbt2018-mean"), *paper("mbt2018")), abs=1e-9)
    assert row["psnr_rgb paper (%)"] < 0  # the paper's joint model beats its mean-scale model
    assert np.isnan(row["ms_ssim_db paper (%)"])  # the papers publish PSNR only
    assert row["ms_ssim_db CompressAI zoo (%)"] < 0


def test_dominated_rate_points_are_left_out_of_bd_and_counted():
    from rdbench.ablation.summary import operational, operational_table

    curve = pd.DataFrame({"codec": "c", "complete": True, "bpp": [0.4, 0.1, 0.2, 0.3, 0.5],
                          "psnr_rgb": [27.0, 25.0, 26.0, 27.2, 27.1]})
    kept = operational(curve, "psnr_rgb")
    assert kept["bpp"].tolist() == [0.1, 0.2, 0.3]  # 0.4 (27.0 < 27.2 at 0.3) and 0.5 are dominated
    other = curve.assign(codec="d", psnr_rgb=[28.0, 25.0, 26.0, 27.0, 29.0])
    table, dropped = operational_table(pd.concat([curve, other]), "psnr_rgb")
    assert dropped == {"c": 2, "d": 0} and len(table) == 8


PER_LAMBDA = """
name = "tiny-per-lambda"
[model]
N = 16
M = 16
[[cells]]
variant = ["hyperprior", "mean-scale"]
[rates]
lambdas = [0.2, 0.001, 0.05, 0.01]
mode = "per-lambda"
[training]
data = "{data}"
crop = 64
batch = 2
steps = 3
[evaluation]
dataset = "{dataset}"
reference = "mean-scale"
"""


@pytest.mark.slow
def test_per_lambda_mode_trains_one_single_rate_model_per_lambda(tmp_path, train_dir, kodim):
    from rdbench.codecs.learned import LearnedCodec
    from rdbench.learned.bitstream import parse as parse_bitstream
    from rdbench.learned.checkpoint import load

    crops = kodak_crops(tmp_path, kodim, (2, 11), top=200, left=300)
    config = tmp_path / "grid.toml"
    out = tmp_path / "out"
    config.write_text(PER_LAMBDA.format(data=train_dir, dataset=crops))
    lambdas = sorted(parse(config.read_text()).lambdas)

    done = ablate(str(config), "--out", str(out), "--workers", "2", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    for cell in ("hyperprior", "mean-scale"):
        folder = out / "cells" / cell
        # one checkpoint per lambda, no variable-rate model.pt
        assert sorted(p.name for p in folder.glob("*.pt")) == sorted(f"lambda-{lam:g}.pt" for lam in lambdas)
        for lam in lambdas:
            loaded = load(folder / f"lambda-{lam:g}.pt")
            assert loaded.model.config.rates == (lam,) and not loaded.model.config.variable_rate
            assert loaded.model.config.variant == cell and (loaded.model.config.N, loaded.model.config.M) == (16, 16)
            assert not [k for k in loaded.model.state_dict() if "gain" in k]  # single-rate: no gain units
            assert loaded.training["steps"] == 3 and loaded.training["lambdas"] == [lam]
        # quality i is coded by the model of the i-th smallest lambda
        codec = LearnedCodec(f"learned:checkpoints={folder}")
        assert codec.qualities == (1, 2, 3, 4)
        image = np.ascontiguousarray(kodim(2)[:64, :64])
        ids = [parse_bitstream(codec.encode(image, q)).model_id for q in codec.qualities]
        assert ids == [load(folder / f"lambda-{lam:g}.pt").model_id for lam in lambdas]

    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 2 * 4 * 2 and (rows["status"] == "ok").all()
    assert set(rows["codec"]) == {f"learned:checkpoints={out / 'cells' / c}" for c in ("hyperprior", "mean-scale")}
    assert sorted(set(rows["quality"])) == [1, 2, 3, 4] and rows["bpp_estimated"].notna().all()
    assert (rows.groupby(["codec", "quality"])["image"].nunique() == 2).all()

    table = pd.read_csv(out / "ablation_psnr_rgb.csv").set_index("cell")
    assert table.index.tolist() == ["hyperprior", "mean-scale"]
    assert table["params"].gt(0).all() and table["dec s/image"].gt(0).all()
    assert table.loc["mean-scale", "BD-rate vs mean-scale (%)"] == 0.0
    other = table.loc["hyperprior"]  # a BD-rate, or the reason there is none (3 steps of training)
    assert np.isfinite(other["BD-rate vs mean-scale (%)"]) or "vs mean-scale" in str(other["BD note"])
    report = (out / "ablation.md").read_text()
    assert "lambdas 0.2, 0.001, 0.05, 0.01 (one model per lambda)." in report and "3 steps of batch 2" in report
    questions = pd.read_csv(out / "ablation_questions.csv")
    assert questions["question"].tolist() == ["predicted mean on top of the scale hyperprior"]

    again = ablate(str(config), "--out", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 measured, 0 failed, 16 already stored" in again.stderr and "train " not in again.stderr


@pytest.mark.slow  # ~20 s; CI's learned phase also regenerates it (.ci/check_ablation_summary.py)
def test_shipped_summary_regenerates_from_its_rows_and_logs_without_checkpoints(tmp_path):
    """results/ablation ships rows, logs and config but no checkpoints: --summary-only must still
    give every cell its parameter count (from the configuration) and its steps (from train.log)."""
    import shutil

    shipped = REPO / "results" / "ablation"
    out = tmp_path / "ablation"
    shutil.copytree(shipped, out, ignore=shutil.ignore_patterns("*.pt", "*.png"))
    assert not list(out.rglob("*.pt"))
    done = subprocess.run([sys.executable, "-m", "rdbench", "ablate", str(out / "config.toml"), "--out", str(out),
                           "--summary-only", "--data", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out / "ablation_psnr_rgb.csv")
    assert len(table) == 7 and table["params"].notna().all()
    # the parameter counts the run printed when it had its checkpoints (shipped ablation.md)
    shipped_table = pd.read_csv(shipped / "ablation_psnr_rgb.csv")
    assert table.set_index("cell")["params"].to_dict() == shipped_table.set_index("cell")["params"].to_dict()
    assert (out / "ablation.md").read_text().count("2000 steps") >= 1
    assert (out / "results.csv").read_bytes() == (shipped / "results.csv").read_bytes()  # nothing re-measured
    # the intervals, learning curves and complexity come back from rows, learning.csv and complexity.json alone
    for name in ("ablation_seeds.csv", "ablation_learning.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / name), pd.read_csv(shipped / name))
    assert table["dec kMAC/px"].gt(0).all() and table.loc[table["cell"] != "joint-k5", "n_seeds"].eq(3).all()


SEEDS_CONFIG = """
name = "tiny-seeds"
[model]
N = 16
M = 16
[[cells]]
variant = "mean-scale"
[[cells]]
variant = "joint"
k = 5
[rates]
lambdas = [0.001, 0.01, 0.05, 0.2]
[training]
data = "{data}"
crop = 64
batch = 2
steps = 40
checkpoint_every = 2
seeds = [3, 7]
precision = "bf16"
channels_last = true
keep_fractions = [0.5]
holdout = 4
[evaluation]
dataset = "{dataset}"
reference = "joint-k5"
"""


@pytest.mark.slow
def test_seeds_grid_trains_per_seed_resumes_and_reports_intervals(tmp_path, train_dir, kodim):
    """2 cells x 2 seeds end to end: a killed training resumes, every seed is evaluated, and the
    summary carries intervals, learning curves and complexity."""
    crops = kodak_crops(tmp_path, kodim, (4, 19), top=100, left=200)
    config = tmp_path / "grid.toml"
    out = tmp_path / "out"
    config.write_text(SEEDS_CONFIG.format(data=train_dir, dataset=crops))
    kill_once_written(config, out, out / "cells" / "mean-scale" / "seed-3" / "model.pt")

    done = ablate(str(config), "--out", str(out), "--jobs", "2", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming at step" in (out / "cells" / "mean-scale" / "seed-3" / "train.log").read_text()
    for cell in ("mean-scale", "joint-k5"):
        for seed in (3, 7):
            run = out / "cells" / cell / f"seed-{seed}"
            assert (run / "model-step20.pt").is_file()  # the 50% learning-curve checkpoint
            learning = pd.read_csv(run / "learning.csv")
            assert sorted(learning["step"].unique()) == [20, 40] and len(learning) == 2 * 4
            assert learning["bpp"].gt(0).all() and learning["psnr"].gt(0).all()
        profile = json.loads((out / "cells" / cell / "complexity.json").read_text())
        assert profile["dec_kmac_px"] > 0 and profile["decode_total_s"] > 0
    # seeds trained differently: their models (codec versions) and so their rows differ
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 2 * 2 * 4 * 2 and (rows["status"] == "ok").all()
    assert rows["codec"].nunique() == 4 and rows["codec_version"].nunique() == 4
    by_seed = rows[rows["codec"].str.contains("/mean-scale/")].groupby("codec")["bytes"].sum()
    assert by_seed.nunique() == 2

    table = pd.read_csv(out / "ablation_psnr_rgb.csv").set_index("cell")
    for column in ("bd_rate_mean", "bd_rate_ci_low", "bd_rate_ci_high", "n_seeds", "resolved"):
        assert column in table.columns, column
    seeds = pd.read_csv(out / "ablation_seeds.csv")
    assert {"bd_rate_mean", "bd_rate_ci_low", "bd_rate_ci_high", "n_seeds", "resolved"} <= set(seeds.columns)
    question = seeds[(seeds["test"] == "joint-k5") & (seeds["anchor"] == "mean-scale") & (seeds["metric"] == "psnr_rgb")]
    assert len(question) == 1
    q = question.iloc[0]
    if pd.isna(q["bd_rate_mean"]):  # 40 steps of a 16-channel model: BD may legitimately fail; it must say why
        assert isinstance(q["error"], str) and q["error"]
    else:
        assert q["n_seeds"] == 2 and q["bd_rate_ci_low"] <= q["bd_rate_mean"] <= q["bd_rate_ci_high"]
        assert bool(q["resolved"]) == (q["bd_rate_ci_low"] > 0 or q["bd_rate_ci_high"] < 0)
    for name in ("learning_curves.png", "tradeoff_psnr_rgb.png", "ablation_learning.csv", "bd_psnr_rgb.png"):
        assert (out / name).is_file(), name
    page = (out / "ablation.md").read_text()
    assert "seeds 3, 7" in page and "What is resolved" in page and "bf16" in page

    again = ablate(str(config), "--out", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 measured, 0 failed, 32 already stored" in again.stderr and "train " not in again.stderr
