"""Learned codecs: exact round trips of real bitstreams, errors, checkpoints, the codec adapters."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("compressai")
pytest.importorskip("constriction")

import torch  # noqa: E402

from rdbench.errors import CodecError  # noqa: E402
from rdbench.learned import bitstream, checkpoint, schedule  # noqa: E402
from rdbench.learned.coding import LatentCoder  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.local_http import LocalServer  # noqa: E402


def coder_for(path) -> LatentCoder:
    loaded = checkpoint.load(path)
    return LatentCoder(loaded.model, loaded.model_id)


@pytest.fixture(scope="module")
def untrained_checkpoints(tmp_path_factory) -> dict:
    """{label: checkpoint path}: N = M = 32 variable-rate models as initialised (seeded), no
    training: what the coder needs (weights, CDF tables) in a fraction of a second, for the tests
    of coding and bitstream errors in the fast loop (`-m "not slow"`)."""
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.models import LatentModel

    folder = tmp_path_factory.mktemp("untrained-models")
    paths = {}
    for variant, k, K in (("factorized", 5, 1), ("mean-scale", 5, 1), ("joint", 5, 1), ("joint", 5, 2), ("joint", 3, 3)):
        config = ModelConfig(variant, 32, 32, k, K, (0.0067, 0.0483))
        torch.manual_seed(0)
        path = folder / f"{config.label()}.pt"
        checkpoint.save(path, LatentModel(config), {"steps": 0})
        paths[config.label()] = path
    return paths


# -- the context schedule --------------------------------------------------------------------
@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_wavefronts_cover_every_position_once_and_only_read_earlier_ones(k):
    h, w = 9, 13
    fronts = schedule.wavefronts(h, w, k)
    when = torch.full((h, w), -1)
    for t, (rows, cols) in enumerate(fronts):
        assert (when[rows, cols] == -1).all()
        when[rows, cols] = t
    assert (when >= 0).all()
    p = k // 2
    for i in range(h):
        for j in range(w):
            taps = [(i - a, j + b) for a in range(1, p + 1) for b in range(-p, p + 1)] + [(i, j - b) for b in range(1, p + 1)]
            for r, c in taps:
                if 0 <= r < h and 0 <= c < w:
                    assert when[r, c] < when[i, j], (k, i, j, r, c)
    assert len(fronts) == (p + 1) * (h - 1) + w  # far fewer steps than h * w positions


# -- exactness: every variant, every Kodak image, 2 threads encode / 1 thread decode -----------
@pytest.mark.slow
def test_every_variant_decodes_every_kodak_image_exactly_across_thread_counts(tiny_checkpoints, kodak_dir, tmp_path):
    ckpts = [str(p) for p in tiny_checkpoints.values()]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    worker = [sys.executable, str(REPO / "tests" / "roundtrip_worker.py")]
    for mode, threads in (("encode", "2"), ("decode", "1")):
        done = subprocess.run([*worker, mode, threads, str(kodak_dir), str(tmp_path), *ckpts], env=env,
                              capture_output=True, text=True, timeout=1500)
        assert done.returncode == 0, done.stderr[-3000:]
    encoded = json.loads((tmp_path / "encode-2.json").read_text())
    decoded = json.loads((tmp_path / "decode-1.json").read_text())
    assert len(encoded) == 24 * len(ckpts)
    mismatched = sorted(k for k in encoded if decoded.get(k) != encoded[k])
    assert not mismatched, f"decoder's ŷ differs from the encoder's for {mismatched}"


@pytest.mark.parametrize("label", ["joint-k5-N32M32", "joint-k3-K3-N32M32", "mean-scale-N32M32", "factorized-N32M32"])
def test_sizes_that_are_not_multiples_of_64_round_trip(untrained_checkpoints, kodim, label):
    coder = coder_for(untrained_checkpoints[label])
    image = np.ascontiguousarray(kodim(5)[3:100, 7:138])  # 97 x 131
    data, y_hat = coder.encode_with_latent(image, 1)
    decoded, header = coder.decode_latent(data)
    assert torch.equal(decoded, y_hat)
    assert (header.height, header.width, header.rate) == (97, 131, 1)
    out = coder.decode(data)
    assert out.shape == image.shape and out.dtype == np.uint8


@pytest.mark.slow
def test_mixture_coding_is_not_a_waste_of_bits(tiny_checkpoints, kodim):
    """Real bitstream sizes stay near the model's own estimate (same image, same model)."""
    coder = coder_for(tiny_checkpoints["joint-k5-K2-N32M32"])
    image = kodim(3)
    real = 8 * len(coder.encode(image, 1))
    estimate = coder.estimated_bits(image, 1)
    assert real < 1.10 * estimate + 8 * 64, (real, estimate)


# -- bad bitstreams ------------------------------------------------------------------------------
def test_truncated_corrupted_and_foreign_bitstreams_raise_clear_errors(untrained_checkpoints, kodim):
    coder = coder_for(untrained_checkpoints["joint-k5-N32M32"])
    image = np.ascontiguousarray(kodim(1)[:128, :192])
    data = coder.encode(image, 0)
    for cut in (0, 10, bitstream.HEADER_BYTES - 1, bitstream.HEADER_BYTES, len(data) // 2, len(data) - 1):
        with pytest.raises(bitstream.BitstreamError, match="truncated|shorter|checksum"):
            coder.decode(data[:cut])
    for position in (bitstream.HEADER_BYTES + 1, len(data) // 2, len(data) - 1):
        corrupted = bytearray(data)
        corrupted[position] ^= 0x5A
        with pytest.raises(bitstream.BitstreamError, match="corrupted"):
            coder.decode(bytes(corrupted))
    with pytest.raises(bitstream.BitstreamError, match="not an rdbench"):
        coder.decode(b"\xff\xd8\xff" + data[3:])
    with pytest.raises(bitstream.BitstreamError, match="format version"):
        coder.decode(data[:4] + bytes([99]) + data[5:])
    other = coder_for(untrained_checkpoints["joint-k5-K2-N32M32"])
    with pytest.raises(bitstream.BitstreamError, match="made by model"):
        other.decode(data)


def _edited(data: bytes, offset: int, fmt: str, value: int, reseal: bool = True) -> bytes:
    import struct

    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bitstream.reseal(bytes(out)) if reseal else bytes(out)


def test_the_checksum_covers_the_header_and_old_versions_are_refused_by_version(untrained_checkpoints, kodim):
    coder = coder_for(untrained_checkpoints["mean-scale-N32M32"])
    data = coder.encode(np.ascontiguousarray(kodim(1)[:128, :128]), 1)
    assert len(data) > bitstream.HEADER_BYTES == 36
    for offset, fmt, value in ((17, "<I", 129), (21, "<I", 64), (25, "<B", 0), (26, "<H", 7), (28, "<I", 4), (9, "<B", 0)):
        with pytest.raises(bitstream.BitstreamError, match="corrupted or truncated: the checksum of its header"):
            coder.decode(_edited(data, offset, fmt, value, reseal=False))
    v1 = data[:4] + bytes([1]) + data[5:]
    with pytest.raises(bitstream.BitstreamError, match="format version 1; this rdbench reads version 2 only"):
        coder.decode(v1)
    with pytest.raises(bitstream.BitstreamError, match="format version 1; this rdbench reads version 2"):
        coder.decode(v1[:20])  # shorter than a header, and still named by its version


def test_every_header_field_is_checked_against_the_model_before_decoding(untrained_checkpoints, kodim):
    joint = coder_for(untrained_checkpoints["joint-k5-N32M32"])
    image = np.ascontiguousarray(kodim(2)[:64, :96])
    data = joint.encode(image, 1)
    cases = [
        ((25, "<B", 2), "rate index 2, but this model has 2 rate"),
        ((26, "<H", 0), "symbol range 0 outside 1..65535"),
        ((17, "<I", 0), "empty image"),
        ((28, "<I", 0), "z part of 0 bytes, but this model has a hyperprior"),
        ((28, "<I", 2), "z part of 2 bytes is not a whole number of 32-bit words"),
        ((28, "<I", 10**6), "z part of 1000000 bytes, but only"),
    ]
    for (offset, fmt, value), message in cases:
        with pytest.raises(bitstream.BitstreamError, match=message):
            joint.decode(_edited(data, offset, fmt, value))
    mixture = coder_for(untrained_checkpoints["joint-k3-K3-N32M32"])
    with pytest.raises(bitstream.BitstreamError, match="symbol range 5000 outside 1..4096"):
        mixture.decode(_edited(mixture.encode(image, 0), 26, "<H", 5000))
    factorized = coder_for(untrained_checkpoints["factorized-N32M32"])
    f_data = factorized.encode(image, 0)
    with pytest.raises(bitstream.BitstreamError, match="symbol range 3, but this model's y is factorized"):
        factorized.decode(_edited(f_data, 26, "<H", 3))
    with pytest.raises(bitstream.BitstreamError, match="z part of 4 bytes, but this model has no hyperprior"):
        factorized.decode(_edited(f_data, 28, "<I", 4))


def test_a_crafted_size_with_the_checksum_recomputed_decodes_or_is_refused_never_crashes(untrained_checkpoints, kodim):
    """The SIGSEGV of issue 13: a changed height or width in a factorized or mean-scale header
    made CompressAI's rANS decoder read past the end of its string. Those parts are now decoded
    by constriction, which cannot read out of bounds."""
    image = np.ascontiguousarray(kodim(3)[:64, :64])
    for label in ("factorized-N32M32", "mean-scale-N32M32"):
        coder = coder_for(untrained_checkpoints[label])
        data = coder.encode(image, 0)
        for offset, value in ((17, 1000), (21, 1999), (17, 65), (21, 4096)):
            try:
                out = coder.decode(_edited(data, offset, "<I", value))
            except bitstream.BitstreamError as exc:
                assert "damaged" in str(exc)
            else:
                assert out.shape[:2] == ((value, 64) if offset == 17 else (64, value))


def test_the_pixel_limit_is_clear_and_can_be_raised(untrained_checkpoints, kodim, monkeypatch, tmp_path):
    from rdbench.codecs import load

    monkeypatch.delenv(bitstream.MAX_PIXELS_ENV, raising=False)
    path = untrained_checkpoints["mean-scale-N32M32"]
    image = np.ascontiguousarray(kodim(4)[:64, :80])
    data = load(f"learned:checkpoint={path}").encode(image, 1)
    huge = _edited(_edited(data, 17, "<I", 2**16), 21, "<I", 2**16)
    with pytest.raises(bitstream.BitstreamError, match=r"a 65536x65536 image \(4,294,967,296 pixels\), more than the "
                                                        r"decoder's limit of 268,435,456: .*max_pixels=N.*RDBENCH_MAX_PIXELS"):
        load(f"learned:checkpoint={path}").decode(huge)
    assert bitstream.DEFAULT_MAX_PIXELS == 2**28
    with pytest.raises(bitstream.BitstreamError, match="limit of 5,000"):
        load(f"learned:checkpoint={path},max_pixels=5000").decode(data)  # 64 x 80 = 5,120 pixels
    assert load(f"learned:checkpoint={path},max_pixels=5120").decode(data).shape == image.shape
    monkeypatch.setenv(bitstream.MAX_PIXELS_ENV, "4096")
    with pytest.raises(bitstream.BitstreamError, match="limit of 4,096"):
        load(f"learned:checkpoint={path}").decode(data)
    assert load(f"learned:checkpoint={path},max_pixels=6000").decode(data).shape == image.shape  # the option wins
    monkeypatch.setenv(bitstream.MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=r"\$RDBENCH_MAX_PIXELS 'lots': expected a positive whole number"):
        load(f"learned:checkpoint={path}").decode(data)
    with pytest.raises(ValueError, match=r"codec spec .*max_pixels=0.*: max_pixels= '0': expected a positive"):
        load(f"learned:checkpoint={path},max_pixels=0")


def test_failures_inside_constriction_and_the_exact_networks_become_bitstream_errors(untrained_checkpoints, kodim):
    import torch

    coder = coder_for(untrained_checkpoints["mean-scale-N32M32"])
    image = np.ascontiguousarray(kodim(5)[:64, :64])
    bs = bitstream.parse(coder.encode(image, 0))
    z = torch.full((1, 32, 1, 1), 3e5)  # far beyond anything g_a gives: h_s's exactness guard trips on it
    z_bytes, _ = coder.factorized.encode(z)
    crafted = bitstream.Bitstream(bs.model_id, bs.height, bs.width, bs.rate, bs.symbol_range, z_bytes, bs.y).to_bytes()
    with pytest.raises(bitstream.BitstreamError, match=r"bitstream damaged: its latents are outside anything .*h_s.0: partial sums"):
        coder.decode(crafted)
    garbage = bitstream.Bitstream(bs.model_id, bs.height, bs.width, bs.rate, bs.symbol_range, bs.z, b"\xff" * 64).to_bytes()
    try:
        coder.decode(garbage)
    except bitstream.BitstreamError as exc:
        assert "bitstream damaged: y does not decode (AssertionError" in str(exc)
    from rdbench.learned.symbols import decoding

    def panics():
        import constriction

        constriction.stream.model.QuantizedGaussian(0, 0)  # pyo3's PanicException: a BaseException
    with pytest.raises(bitstream.BitstreamError, match="PanicException"):
        decoding("y", panics)


def test_factorized_escapes_round_trip(untrained_checkpoints):
    """Values beyond the entropy bottleneck's table are escaped (bit length, then raw bits)."""
    import torch

    from rdbench.learned.symbols import FactorizedCoder

    loaded = checkpoint.load(untrained_checkpoints["factorized-N32M32"])
    coder = FactorizedCoder(loaded.model.entropy_bottleneck)
    latent = torch.zeros(1, 32, 3, 5)
    latent[0, :, 0, 0] = torch.tensor([2.0**k for k in range(29)] + [-(2.0**29), -1e3, 5e8])
    latent[0, 3, 2, 4] = -77.4
    data, y_hat = coder.encode(latent)
    assert torch.equal(coder.decode(data, (3, 5)), y_hat)
    medians = loaded.model.entropy_bottleneck.quantiles[:, 0, 1].detach().view(-1, 1, 1).double()
    assert torch.equal(y_hat[0] - medians, torch.round(latent[0].double() - medians))
    with pytest.raises(CodecError, match="beyond 2\\^30"):
        coder.encode(torch.full((1, 32, 1, 1), 2.0**31))


def test_exactness_guard_refuses_weights_too_large_for_exact_arithmetic(untrained_checkpoints, kodim):
    from rdbench.learned.exact import ExactnessError

    loaded = checkpoint.load(untrained_checkpoints["mean-scale-N32M32"])
    with torch.no_grad():
        loaded.model.h_s[4].weight.mul_(1e7)
    with pytest.raises(ExactnessError, match="h_s.4"):
        LatentCoder(loaded.model, b"x" * 8).encode(np.ascontiguousarray(kodim(2)[:64, :64]))


# -- checkpoints -------------------------------------------------------------------------------
@pytest.mark.slow
def test_checkpoint_carries_its_configuration_and_training_record(tiny_checkpoints, train_dir):
    loaded = checkpoint.load(tiny_checkpoints["joint-k7-K3-N32M32"])
    cfg = loaded.model.config
    assert (cfg.variant, cfg.N, cfg.M, cfg.k, cfg.K, cfg.rates) == ("joint", 32, 32, 7, 3, (0.0067, 0.0483))
    t = loaded.training
    assert t["steps"] == 4 and t["lambdas"] == [0.0067, 0.0483] and t["data"] == str(train_dir)
    assert t["rdbench_version"] and t["metric"] == "mse" and t["crop"] == 64


@pytest.mark.parametrize("arch", ["JointAutoregressiveHierarchicalPriors", "MeanScaleHyperprior", "ScaleHyperprior", "FactorizedPrior"])
def test_compressai_checkpoints_load_as_their_variant_and_code_exactly(arch, tmp_path, kodim):
    import compressai.models as cm

    torch.manual_seed(0)
    net = getattr(cm, arch)(32, 48).eval()
    net.update(force=True)
    path = tmp_path / "net.pth.tar"
    torch.save({"epoch": 3, "state_dict": net.state_dict()}, path)
    loaded = checkpoint.load(path)
    expected = {"JointAutoregressiveHierarchicalPriors": "joint", "MeanScaleHyperprior": "mean-scale",
                "ScaleHyperprior": "hyperprior", "FactorizedPrior": "factorized"}[arch]
    assert (loaded.model.config.variant, loaded.model.config.N, loaded.model.config.M) == (expected, 32, 48)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x)["x_hat"], loaded.model(x)["x_hat"], atol=1e-6)
    coder = LatentCoder(loaded.model, loaded.model_id)
    image = np.ascontiguousarray(kodim(4)[:128, :128])
    data, y_hat = coder.encode_with_latent(image)
    assert torch.equal(coder.decode_latent(data)[0], y_hat)


@pytest.mark.parametrize("label, arch", [("joint-k5-N32M32", "JointAutoregressiveHierarchicalPriors"),
                                         ("hyperprior-N32M32", "ScaleHyperprior")])
@pytest.mark.slow
def test_export_folds_one_rate_into_a_model_compressai_loads(label, arch, tiny_checkpoints, tmp_path, kodim):
    import compressai.models as cm

    src = tiny_checkpoints[label]
    variable = checkpoint.load(src).model.eval()
    assert not torch.allclose(variable.gain[0], variable.gain[1])  # the two rates really differ
    out = tmp_path / "rate2.pt"
    done = subprocess.run([sys.executable, "-m", "rdbench", "export", str(src), "--rate", "2", "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    net = getattr(cm, arch)(32, 32).eval()
    net.load_state_dict(torch.load(out, weights_only=True)["state_dict"])
    x = torch.from_numpy(np.ascontiguousarray(kodim(4)[:128, :128])).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        theirs, ours = net(x), variable(x, 1)
    assert torch.allclose(theirs["x_hat"], ours["x_hat"], atol=1e-4)
    bits = {name: sum(float(-torch.log2(v).sum()) for v in out_["likelihoods"].values()) for name, out_ in
            (("theirs", theirs), ("ours", ours))}
    assert bits["theirs"] == pytest.approx(bits["ours"], rel=1e-4)
    refused = subprocess.run([sys.executable, "-m", "rdbench", "export", str(src), "--rate", "3", "--out", str(out)],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert refused.returncode != 0 and "no rate point 3; it has 2 (1..2)" in refused.stderr


@pytest.mark.parametrize("variant, k, K, rates", [("factorized", 5, 1, 1), ("hyperprior", 5, 1, 2), ("mean-scale", 5, 1, 1),
                                                   ("mean-scale", 5, 3, 1), ("context", 3, 1, 2), ("context", 7, 2, 1),
                                                   ("joint", 5, 1, 3), ("joint", 3, 2, 1)])
def test_state_dict_shapes_give_back_the_configuration(variant, k, K, rates):
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.models import LatentModel

    config = ModelConfig(variant, 8, 12, k, K, tuple(0.001 * (r + 1) for r in range(rates)))
    inferred = checkpoint.infer_config(LatentModel(config).state_dict())
    assert (inferred.variant, inferred.N, inferred.M, inferred.k, inferred.K) == (variant, 8, 12, k, K)
    assert len(inferred.rates) == rates
    bad = LatentModel(ModelConfig("mean-scale", 8, 12)).state_dict()
    bad["h_s.4.weight"] = torch.zeros(30, *bad["h_s.4.weight"].shape[1:])
    with pytest.raises(checkpoint.CheckpointError, match="30 channels, which fits no K for M=12"):
        checkpoint.infer_config(bad, "bad.pt")


def test_not_a_checkpoint_is_refused_with_the_file_named(tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not torch")
    with pytest.raises(checkpoint.CheckpointError, match="weights.pt"):
        checkpoint.load(bad)
    other = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, other)
    with pytest.raises(checkpoint.CheckpointError, match="not a model of the Minnen"):
        checkpoint.load(other)


# -- pretrained download, against a local HTTP server ------------------------------------------
@pytest.fixture
def weights_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with LocalServer(root) as server:
        yield root, server.url


def test_zoo_weights_download_verify_and_code(weights_server, tmp_path, monkeypatch, kodim):
    import hashlib

    import compressai.models as cm

    from rdbench.codecs import load
    from rdbench.codecs.base import CodecError
    from rdbench.codecs import zoo

    root, url = weights_server
    torch.manual_seed(1)
    net = cm.MeanScaleHyperprior(32, 32)
    tmp = root / "tmp.pth"
    torch.save(net.state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    good = root / f"tiny-mean-1-{digest}.pth.tar"
    tmp.rename(good)
    (root / "tiny-mean-2-00000000.pth.tar").write_bytes(good.read_bytes())  # wrong hash in its name
    monkeypatch.setitem(zoo.EXTRA_MODELS, "tiny-mean", {"mse": {1: f"{url}/{good.name}", 2: f"{url}/tiny-mean-2-00000000.pth.tar",
                                                                 3: "http://127.0.0.1:9/tiny-mean-3-12345678.pth.tar"}})
    monkeypatch.setenv("RDBENCH_WEIGHTS", str(tmp_path / "cache"))
    from rdbench.codecs.learned import zoo_codec
    from rdbench.codecs.base import parse_spec

    codec = zoo_codec(parse_spec("tiny-mean"))
    image = np.ascontiguousarray(kodim(9)[:128, :128])
    data = codec.encode(image, 1)
    assert (tmp_path / "cache" / good.name).is_file()
    assert codec.decode(data).shape == image.shape
    with pytest.raises(CodecError, match="does not start with 00000000"):
        codec.encode(image, 2)
    assert not list((tmp_path / "cache").glob("tiny-mean-2*"))  # refused file is not kept
    with pytest.raises(CodecError, match="cannot download"):
        codec.encode(image, 3)
    # the real zoo names go through the same path: a mirror without the file is a clear error
    monkeypatch.setenv("RDBENCH_WEIGHTS_URL", url)
    with pytest.raises(CodecError, match="mbt2018-1-"):
        load("mbt2018").encode(image, 1)


# -- the codec in runs, and the commands ------------------------------------------------------
def run_cli(*args, timeout=900, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rdbench", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


@pytest.mark.slow
def test_rdbench_run_with_a_learned_codec_records_real_and_estimated_bpp(tiny_checkpoints, small_dataset, tmp_path):
    import pandas as pd

    spec = f"learned:checkpoint={tiny_checkpoints['joint-k5-K2-N32M32']}"
    done = run_cli("run", "--dataset", str(small_dataset), "--codec", spec, "--out", str(tmp_path / "r"), "--no-report", "--no-progress")
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(tmp_path / "r" / "results.csv")
    assert len(rows) == 3 * 2 and (rows["status"] == "ok").all()
    assert rows["quality"].astype(int).tolist().count(1) == 3
    assert (rows["bpp_estimated"] > 0).all()
    assert (rows["bpp"] >= 8 * bitstream.HEADER_BYTES / (256 * 192)).all()
    assert rows["codec_version"].str.startswith("rdbench-learned bitstream v2, rdbench numeric contract 2").all()


def test_learned_spec_errors_name_the_problem(tmp_path):
    from rdbench.codecs import load

    with pytest.raises(ValueError, match="exactly one of"):
        load("learned")
    with pytest.raises(ValueError, match="no such checkpoint file"):
        load(f"learned:checkpoint={tmp_path / 'missing.pt'}")
    with pytest.raises(ValueError, match="no checkpoint files"):
        load(f"learned:checkpoints={tmp_path}")


@pytest.mark.slow
def test_checkpoints_folder_orders_rate_points_by_lambda(tmp_path, train_dir, kodim):
    from rdbench.codecs import load
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainOptions, train

    for name, lam in (("a-high.pt", 0.05), ("b-low.pt", 0.002)):
        train(TrainOptions(ModelConfig("mean-scale", 16, 16, rates=(lam,)), str(train_dir), str(tmp_path / name),
                           steps=2, batch=2, crop=64), log=lambda line: None)
    codec = load(f"learned:checkpoints={tmp_path}")
    assert codec.qualities == (1, 2)
    assert [m.model.config.rates[0] for m, _ in codec._models] == [0.002, 0.05]
    image = np.ascontiguousarray(kodim(6)[:64, :64])
    assert codec.decode(codec.encode(image, 2)).shape == image.shape


@pytest.mark.slow
def test_train_command_checkpoints_and_resumes(tmp_path, train_dir):
    out = tmp_path / "m.pt"
    common = ["train", "--variant", "context", "--N", "16", "--M", "16", "--context-size", "3", "--lambda-index", "1",
              "--lambda-index", "5",
              "--data", str(train_dir), "--out", str(out), "--batch", "2", "--crop", "64", "--log-every", "1"]
    first = run_cli(*common, "--steps", "3")
    assert first.returncode == 0, first.stderr
    assert "step 3/3" in first.stderr and "bpp" in first.stderr and "psnr" in first.stderr
    again = run_cli(*common, "--steps", "5")
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = run_cli(*common, "--steps", "5", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming at step 3/5" in resumed.stderr and "step 4/5" in resumed.stderr
    loaded = checkpoint.load(out)
    assert loaded.training["steps"] == 5 and loaded.model.config.rates == (0.0018, 0.025)


def test_ms_ssim_training_refuses_crops_too_small_for_five_scales(tmp_path, train_dir):
    from rdbench.conventions import MS_SSIM_MIN_SIDE
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainingError, TrainOptions, train

    cfg = ModelConfig("hyperprior", 8, 8, rates=(8.73,))
    for crop in (64, MS_SSIM_MIN_SIDE - 1):
        with pytest.raises(TrainingError, match="larger than 160"):
            train(TrainOptions(cfg, str(train_dir), str(tmp_path / "a.pt"), steps=1, batch=1, crop=crop, metric="ms-ssim"))
    assert not (tmp_path / "a.pt").exists()


@pytest.mark.slow
def test_ms_ssim_training_runs(tmp_path, train_dir):
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainOptions, train

    cfg = ModelConfig("hyperprior", 8, 8, rates=(8.73,))
    path = train(TrainOptions(cfg, str(train_dir), str(tmp_path / "b.pt"), steps=2, batch=1, crop=192, metric="ms-ssim"),
                 log=lambda line: None)
    assert checkpoint.load(path).training["metric"] == "ms-ssim"
