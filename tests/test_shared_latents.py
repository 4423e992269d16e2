"""The shared-latents ablation design (rdbench/ablation/shared.py, latents.py, design.py): a tiny
base trained by rdbench and a 2-cell x 2-seed grid of entropy models on its latents, end to end,
killed once and resumed; the transforms bit-identical across cells; cached latents equal to
freshly computed ones; the summary naming the design."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("compressai")

import torch  # noqa: E402

from rdbench.ablation.config import AblationConfigError, parse  # noqa: E402
from tests.test_ablation import ablate, kill_once_written, kodak_crops  # noqa: E402

CONFIG = """
name = "tiny-shared"
[model]
N = 16
M = 16
[[cells]]
variant = "joint"
k = 5
K = [1, 2]
[rates]
lambdas = [0.001, 0.01, 0.05, 0.2]
[training]
data = "{data}"
crop = 64
batch = 2
steps = 40
checkpoint_every = 2
seeds = [3, 7]
keep_fractions = [0.5]
holdout = 2
[evaluation]
dataset = "{dataset}"
reference = "joint-k5"
[design]
kind = "shared-latents"
crops = 12
[design.base]
variant = "mean-scale"
N = 16
M = 16
steps = 6
"""


@pytest.fixture
def few_training_images(tmp_path, train_dir):
    """Eight of the training photos (loading all of them costs more than this test's training)."""
    folder = tmp_path / "train"
    folder.mkdir()
    for path in sorted(p for p in train_dir.rglob("*") if p.suffix.lower() in (".png", ".jpg"))[:8]:
        shutil.copy(path, folder / path.name)
    return folder


def test_design_config_errors_name_the_file_and_the_problem(tmp_path):
    good = CONFIG.format(data=tmp_path, dataset="kodak")
    source = str(tmp_path / "grid.toml")
    cfg = parse(good, source)
    assert cfg.design_kind == "shared-latents" and cfg.design.crops == 12 and cfg.design.base.variant == "mean-scale"
    assert parse(good.split("[design]")[0], source).design is None  # no [design]: full retraining
    assert parse(good.replace('"shared-latents"', '"shared latents"'), source).design_kind == "shared-latents"
    cases = {
        'kind = "shared-latents"': ('kind = "shared"', "kind 'shared'"),
        "crops = 12": ("crops = 0", "crops 0"),
        'variant = "mean-scale"\nN = 16': ('variant = "mean-scale"\nN = 32', "every cell needs the same N and M"),
        "steps = 6": ('checkpoint = "nowhere.pt"\nsteps = 6', "not both"),
    }
    for old, (new, message) in cases.items():
        with pytest.raises(AblationConfigError, match=message) as info:
            parse(good.replace(old, new), source)
        assert "grid.toml" in str(info.value)
    base_only = good.split("[design.base]")[0] + '[design.base]\ncheckpoint = "nowhere.pt"\n'
    with pytest.raises(AblationConfigError, match="no such file .*nowhere.pt"):
        parse(base_only, source)
    (tmp_path / "base.pt").write_bytes(b"")
    short = good.split("[design.base]")[0].replace("crops = 12", 'crops = 12\nbase = "base.pt"')
    assert parse(short, source).design.base.checkpoints == (str((tmp_path / "base.pt").resolve()),)
    with pytest.raises(AblationConfigError, match="needs a base model"):
        parse(good.split("[design.base]")[0], source)


@pytest.mark.slow
def test_shared_latents_grid_end_to_end_killed_once_and_resumed(tmp_path, few_training_images, kodim):
    from rdbench.ablation import config as ablation_config
    from rdbench.ablation.latents import CHUNK, cache_paths, crop_sampler, training_crops
    from rdbench.ablation.shared import frozen
    from rdbench.learned.checkpoint import load

    crops = kodak_crops(tmp_path, kodim, (4, 19), top=100, left=200)
    config_path = tmp_path / "grid.toml"
    out = tmp_path / "out"
    config_path.write_text(CONFIG.format(data=few_training_images, dataset=crops))
    first = out / "cells" / "joint-k5" / "seed-3" / "model.pt"
    kill_once_written(config_path, out, first)  # SIGKILL once the first cell checkpoint exists

    done = ablate(str(config_path), "--out", str(out), "--jobs", "2", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming at step" in (first.parent / "train.log").read_text()

    base = load(out / "base" / "model.pt")
    assert base.training["steps"] == 6 and base.model.config.variant == "mean-scale"
    runs = {(cell, seed): load(out / "cells" / cell / f"seed-{seed}" / "model.pt")
            for cell in ("joint-k5", "joint-k5-K2") for seed in (3, 7)}
    base_state = base.model.state_dict()
    for (cell, seed), run in runs.items():
        state = run.model.state_dict()
        assert run.training["steps"] == 40 and run.training["design"] == "shared-latents"
        transforms = [k for k in state if frozen(k)]
        assert any(k.startswith("g_a.") for k in transforms) and any(k.startswith("g_s.") for k in transforms)
        assert "gain" in transforms and "inverse_gain" in transforms
        for k in transforms:  # bit-identical to the base's, in every cell and seed
            assert torch.equal(state[k], base_state[k]), (cell, seed, k)
    # ... while the entropy models were trained, and differ between seeds and between cells
    h_a = {key: run.model.state_dict()["h_a.0.weight"] for key, run in runs.items()}
    assert not torch.equal(h_a[("joint-k5", 3)], h_a[("joint-k5", 7)])
    assert not torch.equal(h_a[("joint-k5", 3)], h_a[("joint-k5-K2", 3)])

    # the cache holds what g_a computes now, from the same crops
    config = ablation_config.load(config_path)
    data_path, meta_path = cache_paths(out, base.model_id)
    cached = np.load(data_path)
    assert cached.shape == (12, 16, 4, 4) and json.loads(meta_path.read_text())["crops"] == 12
    sampler = crop_sampler(config, config.training.crop)
    x = torch.cat(list(training_crops(sampler, 12)))
    with torch.no_grad():
        fresh = np.concatenate([base.model.g_a(x[i : i + CHUNK]).numpy() for i in range(0, 12, CHUNK)])
        one_by_one = np.concatenate([base.model.g_a(x[i : i + 1]).numpy() for i in range(12)])
    assert np.array_equal(cached, fresh)
    np.testing.assert_allclose(cached, one_by_one, rtol=1e-4, atol=1e-5)  # and crop by crop, up to float32 sums

    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 2 * 2 * 4 * 2 and (rows["status"] == "ok").all()
    page = (out / "ablation.md").read_text()
    first_lines = "\n".join(page.splitlines()[:4])
    assert "Design: **shared latents**" in first_lines and "does not answer what the transforms" in first_lines
    assert (out / "ablation_seeds.csv").is_file() and (out / "cells" / "joint-k5" / "complexity.json").is_file()
    assert sorted(pd.read_csv(out / "cells" / "joint-k5-K2" / "seed-7" / "learning.csv")["step"].unique()) == [20, 40]

    again = ablate(str(config_path), "--out", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 measured, 0 failed, 32 already stored" in again.stderr and "train " not in again.stderr


def test_a_compressai_checkpoint_is_a_base_whose_transforms_every_cell_keeps(tmp_path):
    """CompressAI's mbt2018-mean (single-rate, no gain units) as the base of a per-lambda grid:
    each cell's model holds its g_a and g_s bit for bit, frozen, and trains its own entropy model;
    the rate objective's gradient reaches the entropy model only."""
    import compressai.models as cm

    from rdbench.ablation.config import Cell
    from rdbench.ablation.shared import cell_model, check_base, frozen, rate_loss
    from rdbench.learned.checkpoint import load

    torch.manual_seed(0)
    net = cm.MeanScaleHyperprior(16, 16)
    torch.save({"state_dict": net.state_dict()}, tmp_path / "mbt2018-mean.pth.tar")
    base = load(tmp_path / "mbt2018-mean.pth.tar")
    text = CONFIG.format(data=tmp_path, dataset="kodak").replace('mode = "gain-units"', "")
    text = text.replace("[rates]", '[rates]\nmode = "per-lambda"').split("[design.base]")[0]
    text += "[design.base]\ncheckpoint = [" + ", ".join(['"mbt2018-mean.pth.tar"'] * 4) + "]\n"
    (tmp_path / "grid.toml").write_text(text)
    config = parse(text, str(tmp_path / "grid.toml"))
    check_base(config, base.model, tmp_path / "mbt2018-mean.pth.tar", (0.01,))
    with pytest.raises(ValueError, match="1 rate"):
        check_base(config, base.model, tmp_path / "mbt2018-mean.pth.tar", (0.01, 0.05))
    cells = [cell_model(config, Cell("joint", 16, 16, k, K), (0.01,), seed, base.model)
             for k, K, seed in ((5, 1, 0), (3, 2, 1))]
    reference = net.state_dict()
    for model in cells:
        state = model.state_dict()
        kept = [k for k in state if frozen(k)]
        assert kept and all(torch.equal(state[k], reference[k]) for k in kept)
        assert all(p.requires_grad == (not frozen(n)) for n, p in model.named_parameters())
        model.train()
        y = net.g_a(torch.rand(2, 3, 64, 64)).detach()
        rate_loss(model, y, 0, 2 * 64 * 64).backward()
        assert all(p.grad is None for n, p in model.named_parameters() if frozen(n))
        assert model.entropy_parameters[0].weight.grad.abs().sum() > 0
    assert not torch.equal(cells[0].h_s[0].weight, cells[1].h_s[0].weight)  # own, seeded entropy models


@pytest.mark.slow
def test_shared_latents_base_and_cells_train_as_dask_jobs(tmp_path, few_training_images):
    """The design on Dask, as the full one runs there: the base and its latents as one job, then
    each cell as a job, on two worker processes."""
    pytest.importorskip("distributed")
    from rdbench.ablation.latents import cache_paths
    from rdbench.ablation.train import train_all
    from rdbench.bench.dask_executor import DaskExecutor
    from rdbench.learned.checkpoint import load
    from tests.test_dask import Cluster

    text = CONFIG.format(data=few_training_images, dataset="kodak")
    text = text.replace("steps = 40", "steps = 4").replace("seeds = [3, 7]", "seeds = [3]")
    text = text.replace("keep_fractions = [0.5]\n", "").replace("holdout = 2", "holdout = 0").replace("steps = 6", "steps = 4")
    (tmp_path / "grid.toml").write_text(text)
    config = parse(text, str(tmp_path / "grid.toml"))
    out = tmp_path / "out"
    cluster = Cluster(tmp_path)
    try:
        cluster.start_worker("w1")
        cluster.start_worker("w2")
        with DaskExecutor(str(cluster.file), wait_for_workers=2) as executor:
            trained = train_all(config, out, executor=executor, log=lambda line: None)
    finally:
        cluster.close()
    assert len(trained) == 2
    base = load(out / "base" / "model.pt")
    assert base.training["steps"] == 4 and cache_paths(out, base.model_id)[0].is_file()
    for cell in ("joint-k5", "joint-k5-K2"):
        run = load(out / "cells" / cell / "seed-3" / "model.pt")
        assert run.training["steps"] == 4 and run.training["base_model_id"] == base.model_id.hex()
        assert torch.equal(run.model.state_dict()["g_s.0.weight"], base.model.state_dict()["g_s.0.weight"])
