"""Training options of issue 15: bf16 autocast, channels_last, kept learning-curve checkpoints,
DataLoader worker processes, the held-out set and its RD evaluation (real images, real training)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

from rdbench.learned.checkpoint import load  # noqa: E402
from rdbench.learned.config import ModelConfig  # noqa: E402
from rdbench.learned.models import LatentModel  # noqa: E402
from rdbench.learned.train import (CropSampler, TrainingError, TrainOptions, autocast, heldout_rd,  # noqa: E402
                                   kept_path, rd_loss, split_holdout, train)

LAMBDAS = (0.0067, 0.0483)


def options(train_dir, out, **kw) -> TrainOptions:
    config = kw.pop("config", ModelConfig("joint", 16, 16, 5, 1, LAMBDAS))
    return TrainOptions(config, str(train_dir), str(out), **{"steps": 4, "batch": 2, "crop": 64, "lr": 1e-3,
                                                              "log_every": 100, "checkpoint_every": 100, **kw})


def state(path):
    return load(path).model.state_dict()


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("variant,K", [("joint", 1), ("joint", 2), ("hyperprior", 1), ("factorized", 1)])
def test_entropy_models_stay_float32_under_bf16_autocast(variant, K):
    torch.manual_seed(0)
    model = LatentModel(ModelConfig(variant, 16, 16, 5, K, LAMBDAS)).train()
    x = torch.rand(2, 3, 64, 64)
    with autocast("bf16", "cpu"):
        out = model(x, 1)
        loss, stats = rd_loss(model, x, 1, "mse")
    assert all(lik.dtype == torch.float32 for lik in out["likelihoods"].values())
    assert out["x_hat"].dtype == torch.bfloat16  # the transforms did run in bf16
    assert loss.dtype == torch.float32 and np.isfinite(stats["loss"])


def test_bf16_channels_last_training_keeps_float32_weights_and_learning_curve_checkpoints(train_dir, tmp_path):
    out = tmp_path / "model.pt"
    train(options(train_dir, out, steps=6, precision="bf16", channels_last=True, keep_at=(2, 4)), log=lambda _: None)
    final = load(out)
    assert final.training["steps"] == 6 and final.training["precision"] == "bf16"
    assert all(v.dtype == torch.float32 for v in final.model.state_dict().values() if v.is_floating_point())
    for step in (2, 4):
        kept = load(kept_path(out, step))
        assert kept.training["steps"] == step
        assert not same_weights(kept.model.state_dict(), final.model.state_dict())
    assert not kept_path(out, 6).exists()  # the last step is the model itself


def test_bf16_changes_the_arithmetic_not_the_recipe(train_dir, tmp_path):
    """Same seed and batches: fp32 and bf16 start from the same weights, and end close but not equal."""
    a, b = tmp_path / "fp32.pt", tmp_path / "bf16.pt"
    train(options(train_dir, a, steps=3), log=lambda _: None)
    train(options(train_dir, b, steps=3, precision="bf16"), log=lambda _: None)
    wa, wb = state(a), state(b)
    assert not same_weights(wa, wb)
    diff = max(float((wa[k] - wb[k]).abs().max()) for k in wa if wa[k].is_floating_point() and wa[k].numel())
    assert diff < 0.05  # three Adam steps of lr 1e-3 move each weight by at most ~3e-3


def test_unknown_precision_is_refused(train_dir, tmp_path):
    with pytest.raises(TrainingError, match="precision 'fp16'"):
        train(options(train_dir, tmp_path / "m.pt", precision="fp16"), log=lambda _: None)


def test_loader_workers_give_the_same_batches_on_any_number_of_workers_and_on_resume(train_dir, tmp_path):
    """Batch i comes from its own (seed, i) generator: 1 or 2 DataLoader processes train exactly the
    same model, and a run resumed at step s is given the batches s, s+1, ... of the whole run."""
    from rdbench.learned.train import _batches

    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    train(options(train_dir, one, loader_workers=1), log=lambda _: None)
    train(options(train_dir, two, loader_workers=2), log=lambda _: None)
    assert same_weights(state(one), state(two))
    sampler = CropSampler(str(train_dir), 64, 1)
    opts = options(train_dir, tmp_path / "unused.pt", loader_workers=2, steps=6)
    whole = list(_batches(opts, sampler, np.random.default_rng(0), 0))
    resumed = list(_batches(opts, sampler, np.random.default_rng(0), 3))
    assert len(whole) == 6 and len(resumed) == 3
    assert all(torch.equal(a, b) for a, b in zip(whole[3:], resumed))
    assert not torch.equal(whole[0], whole[1])
    # and the batches differ from the in-process sampler's (which shares the rate generator)
    inline = tmp_path / "inline.pt"
    train(options(train_dir, inline), log=lambda _: None)
    assert not same_weights(state(one), state(inline))


def test_holdout_is_spread_deterministic_and_never_trained_on(train_dir):
    held = split_holdout(str(train_dir), 6)
    assert held == split_holdout(str(train_dir), 6) and len(set(held)) == 6
    everything = CropSampler(str(train_dir), 64, 2)
    without = CropSampler(str(train_dir), 64, 2, exclude=tuple(p.name for p in held))
    assert len(without.images) == len(everything.images) - 6
    with pytest.raises(TrainingError, match="leaves nothing to train on"):
        split_holdout(str(train_dir), 10**6)


def test_heldout_rd_is_the_training_loss_in_eval_mode(train_dir, tmp_path):
    from rdbench.data.images import rgb_pixels

    out = tmp_path / "model.pt"
    train(options(train_dir, out, steps=3), log=lambda _: None)
    model = load(out).model
    images = [rgb_pixels(p) for p in split_holdout(str(train_dir), 2)]
    points = heldout_rd(model, images)
    assert [p["lambda"] for p in points] == list(LAMBDAS)
    # by hand: image 0 centre-cropped to a multiple of 64, eval-mode loss at rate 1
    pixels = images[0]
    h, w = pixels.shape[0] // 64 * 64, pixels.shape[1] // 64 * 64
    top, left = (pixels.shape[0] - h) // 2, (pixels.shape[1] - w) // 2
    x = torch.from_numpy(np.ascontiguousarray(pixels[top:top + h, left:left + w])).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        _, first = rd_loss(model.eval(), x, 1, "mse")
        x2 = images[1]
        h2, w2 = x2.shape[0] // 64 * 64, x2.shape[1] // 64 * 64
        t2, l2 = (x2.shape[0] - h2) // 2, (x2.shape[1] - w2) // 2
        y = torch.from_numpy(np.ascontiguousarray(x2[t2:t2 + h2, l2:l2 + w2])).permute(2, 0, 1)[None].float() / 255
        _, second = rd_loss(model, y, 1, "mse")
    assert points[1]["loss"] == pytest.approx((first["loss"] + second["loss"]) / 2, rel=1e-6)
    assert points[1]["bpp"] == pytest.approx((first["bpp"] + second["bpp"]) / 2, rel=1e-6)


@pytest.mark.parametrize("variant", ["mean-scale"])
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(train_dir, tmp_path, variant):
    """Issue 22: 2 steps, then --resume to 4, gives the very weights of 4 steps in one go. (The aux
    step's gradient used to stay on the bottleneck's quantiles and enter the next step's gradient
    clipping, which a resumed run starts without: hyperprior and mean-scale drifted by ~1e-8.)"""
    config = ModelConfig(variant, 16, 16, 5, 1, LAMBDAS)
    whole, part = tmp_path / "whole.pt", tmp_path / "part.pt"
    train(options(train_dir, whole, config=config, steps=4), log=lambda _: None)
    train(options(train_dir, part, config=config, steps=2), log=lambda _: None)
    train(options(train_dir, part, config=config, steps=4, resume=True), log=lambda _: None)
    a, b = state(whole), state(part)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    resumed, uninterrupted = torch.load(part, weights_only=True), torch.load(whole, weights_only=True)
    for o in ("optimizer", "aux_optimizer"):
        for i, s in uninterrupted[o]["state"].items():
            assert all(torch.equal(v, resumed[o]["state"][i][k]) for k, v in s.items())
