"""rdbench.learned.complexity: MAC counts against hand computations, the decode-time split, and
the timer's promise that timing a decode changes no bit (the golden vectors)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")
pytest.importorskip("constriction")

from PIL import Image  # noqa: E402

from rdbench.learned import complexity  # noqa: E402
from rdbench.learned.config import ModelConfig  # noqa: E402
from rdbench.learned.models import LatentModel, parameter_count  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"
VECTORS = json.loads((GOLDEN / "vectors.json").read_text())["vectors"]


def model(variant="joint", N=16, M=24, k=5, K=1, rates=(0.0130,)) -> LatentModel:
    torch.manual_seed(0)
    return LatentModel(ModelConfig(variant, N, M, k, K, rates))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- MACs ---------------------------------------------------------------------------------------
def test_first_conv_of_g_a_is_3_N_25_macs_per_output_position():
    m = model(N=16, M=24)
    result = complexity.box_macs(m.g_a[:1], (1, 3, 128, 192))
    assert result["macs"] == 3 * 16 * 25 * 64 * 96
    assert result["shape"] == (1, 16, 64, 96)


@pytest.mark.parametrize("size", [(128, 192), (100, 150)])  # 100 x 150 pads to 128 x 192
def test_every_box_matches_a_hand_count(size):
    N, M, k = 16, 24, 5
    m = model("joint", N, M, k)
    H, W = 128, 192  # padded
    px = size[0] * size[1]
    out = complexity.macs(m, *size)
    assert (out["padded_height"], out["padded_width"]) == (H, W)
    h, w = H // 16, W // 16
    # g_a: four 5x5 stride-2 convolutions (MACs at their output positions) and three GDNs (N^2 per position)
    g_a_convs = 3 * N * 25 * (H // 2) * (W // 2) + N * N * 25 * ((H // 4) * (W // 4) + (H // 8) * (W // 8)) + N * M * 25 * h * w
    gdn = N * N * ((H // 2) * (W // 2) + (H // 4) * (W // 4) + (H // 8) * (W // 8))
    assert out["g_a_kmac_px"] * 1e3 * px == pytest.approx(g_a_convs + gdn, rel=1e-12)
    assert out["g_a_gdn_kmac_px"] * 1e3 * px == pytest.approx(gdn, rel=1e-12)
    # g_s: transposed convolutions, MACs at their input positions; inverse GDNs at N channels
    g_s = M * N * 25 * h * w + N * N * 25 * (4 * h * w + 16 * h * w) + N * 3 * 25 * 64 * h * w
    g_s_gdn = N * N * (4 + 16 + 64) * h * w
    assert out["g_s_kmac_px"] * 1e3 * px == pytest.approx(g_s + g_s_gdn, rel=1e-12)
    # h_a: 3x3 stride-1 conv at (h, w), then two 5x5 stride-2 (to h/2, h/4)
    h_a = M * N * 9 * h * w + N * N * 25 * (h * w // 4 + h * w // 16)
    assert out["h_a_kmac_px"] * 1e3 * px == pytest.approx(h_a, rel=1e-12)
    # h_s (mbt2018): deconv N -> M at z positions, M -> 3M/2 at h/2, 3x3 conv 3M/2 -> 2M at h
    h_s = N * M * 25 * h * w // 16 + M * (3 * M // 2) * 25 * h * w // 4 + (3 * M // 2) * 2 * M * 9 * h * w
    assert out["h_s_kmac_px"] * 1e3 * px == pytest.approx(h_s, rel=1e-12)
    # context_prediction: M -> 2M, causal taps only in the total; dense k^2 reported too
    assert out["context_prediction_taps"] == k * k // 2
    assert out["context_prediction_kmac_px"] * 1e3 * px == pytest.approx(M * 2 * M * (k * k // 2) * h * w, rel=1e-12)
    assert out["context_prediction_dense_kmac_px"] * 1e3 * px == pytest.approx(M * 2 * M * k * k * h * w, rel=1e-12)
    # entropy_parameters: 1x1, 4M -> 10M/3 -> 8M/3 -> 2M
    ep = (4 * M * (M * 10 // 3) + (M * 10 // 3) * (M * 8 // 3) + (M * 8 // 3) * 2 * M) * h * w
    assert out["entropy_parameters_kmac_px"] * 1e3 * px == pytest.approx(ep, rel=1e-12)
    parts = {p: out[f"{p}_kmac_px"] for p in complexity.PARTS}
    assert out["enc_kmac_px"] == pytest.approx(sum(parts[p] for p in complexity.ENCODER_PARTS))
    assert out["dec_kmac_px"] == pytest.approx(sum(parts[p] for p in complexity.DECODER_PARTS))
    assert out["params"] == parameter_count(m)
    assert out["params"] >= sum(out[f"{p}_params"] for p in complexity.PARTS)


def test_joint_decoder_costs_mean_scale_plus_exactly_context_and_entropy_parameters():
    joint, mean_scale = complexity.macs(model("joint")), complexity.macs(model("mean-scale"))
    assert "context_prediction_kmac_px" not in mean_scale and "entropy_parameters_kmac_px" not in mean_scale
    extra = joint["context_prediction_kmac_px"] + joint["entropy_parameters_kmac_px"]
    assert joint["dec_kmac_px"] - mean_scale["dec_kmac_px"] == pytest.approx(extra, rel=1e-12)
    assert joint["enc_kmac_px"] - mean_scale["enc_kmac_px"] == pytest.approx(extra, rel=1e-12)


def test_factorized_has_only_the_transforms():
    out = complexity.macs(model("factorized"))
    assert out["enc_kmac_px"] == out["g_a_kmac_px"] and out["dec_kmac_px"] == out["g_s_kmac_px"]
    assert not any(key.startswith(("h_a", "h_s", "context", "entropy")) for key in out)


def test_context_macs_go_as_the_causal_taps():
    k7, k3 = complexity.macs(model(k=7)), complexity.macs(model(k=3))
    assert (k7["context_prediction_taps"], k3["context_prediction_taps"]) == (24, 4)
    assert k7["context_prediction_kmac_px"] / k3["context_prediction_kmac_px"] == pytest.approx(24 / 4, rel=1e-12)
    assert k7["context_prediction_dense_kmac_px"] / k3["context_prediction_dense_kmac_px"] == pytest.approx(49 / 9, rel=1e-12)
    assert k7["entropy_parameters_kmac_px"] == k3["entropy_parameters_kmac_px"]


def test_macs_scale_linearly_with_pixels():
    m = model()
    small, large = complexity.macs(m, 256, 384), complexity.macs(m, 1024, 1536)  # multiples of 64: no padding
    for key in ("enc_kmac_px", "dec_kmac_px", "g_a_kmac_px", "context_prediction_kmac_px"):
        assert large[key] == pytest.approx(small[key], rel=1e-12)  # per pixel: the same, so 16x the MACs
    padded = complexity.macs(m, 250, 380)  # pads to 256 x 384: same work, fewer pixels
    assert padded["dec_kmac_px"] == pytest.approx(small["dec_kmac_px"] * 256 * 384 / (250 * 380), rel=1e-12)


def test_macs_do_not_touch_the_model():
    m = model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    complexity.macs(m)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert next(m.parameters()).device.type == "cpu"


# -- decode time --------------------------------------------------------------------------------
def golden_coder(checkpoint: str):
    from rdbench.learned.checkpoint import load
    from rdbench.learned.coding import LatentCoder

    loaded = load(GOLDEN / checkpoint)
    return LatentCoder(loaded.model, loaded.model_id)


def test_decode_split_of_a_joint_model():
    vector = next(v for v in VECTORS if v["checkpoint"] == "checkpoints/joint-k5.pt")
    coder = golden_coder(vector["checkpoint"])
    data = (GOLDEN / vector["stream"]).read_bytes()
    split = complexity.decode_time_split(coder, data, repeats=2)
    assert set(split) == {"transforms_s", "entropy_parameters_s", "entropy_coding_s", "other_s", "total_s"}
    parts = split["transforms_s"] + split["entropy_parameters_s"] + split["entropy_coding_s"]
    assert all(split[f"{p}_s"] > 0 for p in complexity.TIME_PARTS)
    assert parts <= split["total_s"]
    assert split["other_s"] == pytest.approx(split["total_s"] - parts)
    assert coder.timings is None  # put back


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: Path(v["stream"]).stem)
def test_timing_a_decode_changes_no_bit(vector):
    coder = golden_coder(vector["checkpoint"])
    data = (GOLDEN / vector["stream"]).read_bytes()
    plain, y_plain = coder.decode_with_latent(data)
    coder.timings = {}
    timed, y_timed = coder.decode_with_latent(data)
    assert set(coder.timings) <= set(complexity.TIME_PARTS) and coder.timings["entropy_coding"] > 0
    assert sha256(np.ascontiguousarray(timed).tobytes()) == sha256(np.ascontiguousarray(plain).tobytes()) == vector["decoded_sha256"]
    assert sha256(np.ascontiguousarray(y_timed.numpy(), dtype="<f8").tobytes()) == vector["y_hat_sha256"]
    assert torch.equal(y_timed, y_plain)
    image = np.asarray(Image.open(GOLDEN / vector["image"]).convert("RGB"))
    assert coder.encode(image, vector["rate"]) == data  # timings set: the encoder writes the same stream


def test_profile_checkpoint():
    vector = next(v for v in VECTORS if v["checkpoint"] == "checkpoints/joint-k5.pt")
    image = np.asarray(Image.open(GOLDEN / vector["image"]).convert("RGB"))
    out = complexity.profile_checkpoint(GOLDEN / vector["checkpoint"], [image, image[:32, :40]])
    json.dumps(out)  # JSON-able
    h, w = image.shape[:2]
    assert (out["height"], out["width"]) == (round((h + 32) / 2), round((w + 40) / 2))  # the images' mean size
    assert out["variant"] == "joint" and out["images"] == 2 and out["bpp"] > 0
    assert out["decode_total_s"] >= out["decode_transforms_s"] + out["decode_entropy_coding_s"]
    assert out["rate"] == len(out["rates"]) // 2
    without = complexity.profile_checkpoint(GOLDEN / vector["checkpoint"], [])
    assert (without["height"], without["width"]) == complexity.DEFAULT_SIZE and "decode_total_s" not in without
