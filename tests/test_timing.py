"""Timing: one-time set-up is paid in an untimed warm-up, recorded as setup_s, never counted as enc_s."""

import csv
import struct
import time

import numpy as np
import pytest
from PIL import Image

from rdbench.bench import measure as measure_module
from rdbench.bench.measure import Item, Settings, measure
from rdbench.bench.runner import load_codecs, run
from rdbench.bench.store import COLUMNS, RESULTS_FILE, ResultStore
from rdbench.codecs import base
from rdbench.codecs.base import Codec
from rdbench.data.datasets import folder_dataset

START_UP_S = 0.3  # what the test codecs pay on their first call


class _Recording(Codec):
    """Stores the image unchanged; records every call; pays START_UP_S on its first call."""

    qualities = (1, 2)
    calls: list = []

    def __init__(self, spec=None):
        super().__init__(spec)
        self.started: set = set()

    @property
    def version(self) -> str:
        return "test 1"

    def _start(self, key) -> None:
        if key not in self.started:  # a lazily built table, a library imported on first use
            time.sleep(START_UP_S)
            self.started.add(key)

    def encode(self, image, quality) -> bytes:
        self._start(self.warm_up_family(quality))
        self.calls.append(("encode", quality, image.shape[:2]))
        return struct.pack("<HH", *image.shape[:2]) + np.ascontiguousarray(image).tobytes()

    def decode(self, data: bytes):
        self.calls.append(("decode",))
        h, w = struct.unpack("<HH", data[:4])
        return np.frombuffer(data[4:], dtype=np.uint8).reshape(h, w, 3)

    def synchronize(self) -> None:
        self.calls.append(("synchronize",))


class LazyStart(_Recording):
    """One set-up for every quality (the Codec default)."""

    name = "test-lazy"


class PerQualityStart(_Recording):
    """One set-up per quality, as a learned codec with one model per rate point."""

    name = "test-per-quality"

    def warm_up_family(self, quality):
        return quality


@pytest.fixture
def fresh_worker(monkeypatch):
    """measure() as in a new worker process: nothing loaded or warmed up yet; the test codecs
    registered for this test only."""
    for cls in (LazyStart, PerQualityStart):
        monkeypatch.setitem(base.REGISTERED, cls.name, cls)
    monkeypatch.setattr(measure_module, "_codecs", {})
    monkeypatch.setattr(measure_module, "_warmed", set())
    monkeypatch.setattr(_Recording, "calls", [])


@pytest.fixture
def crops(small_dataset):
    return folder_dataset(small_dataset)


def items(dataset, spec, qualities):
    return [Item(dataset.name, image, spec, "test 1", q) for image in dataset.images for q in qualities]


def test_first_call_cost_is_setup_not_encoding(fresh_worker, crops):
    rows = [measure(item, Settings()) for item in items(crops, "test-lazy", [1, 2])]
    assert [r["status"] for r in rows] == ["ok"] * 6
    first, rest = rows[0], rows[1:]
    assert first["setup_s"] >= START_UP_S
    assert first["enc_s"] < START_UP_S / 3 and first["dec_s"] < START_UP_S / 3
    assert all(r["setup_s"] is None for r in rest)
    assert max(r["enc_s"] for r in rows) < START_UP_S / 3


def test_each_warm_up_family_is_set_up_once(fresh_worker, crops):
    rows = [measure(item, Settings()) for item in items(crops, "test-per-quality", [1, 2])]
    with_setup = [(r["image"], r["quality"]) for r in rows if r["setup_s"] is not None]
    first_image = crops.images[0].name
    assert with_setup == [(first_image, "1"), (first_image, "2")]  # each family on its first item only
    assert all(r["setup_s"] >= START_UP_S for r in rows if r["setup_s"] is not None)
    assert max(r["enc_s"] for r in rows) < START_UP_S / 3


def test_warm_up_codes_the_item_quality_before_the_timed_calls(fresh_worker, crops):
    measure(items(crops, "test-lazy", [2])[0], Settings())
    calls = _Recording.calls
    # warm-up at the item's quality on a 64 x 64 crop, then the item (192 x 256) with a
    # synchronize before and after each timed call
    assert calls == [("encode", 2, (64, 64)), ("decode",), ("synchronize",), ("encode", 2, (192, 256)),
                     ("synchronize",), ("decode",), ("synchronize",)]


def test_warm_up_codes_a_crop_and_learned_codecs_the_whole_image(fresh_worker, kodim, tmp_path):
    from rdbench.codecs.learned import LearnedCodec

    codec = LazyStart("test-lazy")
    codec.warm_up(1, kodim(1))
    codec.warm_up(1)  # no image: the built-in test pattern
    codec.warm_up_side = None
    codec.warm_up(1, kodim(1))
    assert [c for c in _Recording.calls if c[0] == "encode"] == [("encode", 1, (64, 64))] * 2 + [("encode", 1, (512, 768))]
    (tmp_path / "m.pt").write_bytes(b"")
    assert LearnedCodec(f"learned:checkpoint={tmp_path / 'm.pt'}").warm_up_side is None


def test_learned_codec_on_cuda_synchronizes(monkeypatch, tmp_path):
    torch = pytest.importorskip("torch")
    from rdbench.codecs.learned import LearnedCodec

    (tmp_path / "m.pt").write_bytes(b"")  # the constructor only checks that the file exists
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: synced.append(a))
    LearnedCodec(f"learned:checkpoint={tmp_path / 'm.pt'},device=cpu").synchronize()
    assert synced == []
    LearnedCodec(f"learned:checkpoint={tmp_path / 'm.pt'},device=cuda").synchronize()
    assert synced == [()]


def stored(out):
    with open(out / RESULTS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def test_setup_s_is_on_each_workers_first_item_only(crops, tmp_path):
    from rdbench.codecs import load

    if load("cwebp", check_available=False).availability():
        pytest.skip("cwebp (an external binary) is not installed")
    out = tmp_path / "out"
    summary = run(crops, load_codecs(["jpeg", "cwebp"]), out, qualities=[30, 60, 90], workers=2, progress=False)
    assert (summary.ok, summary.failed) == (18, 0)
    for codec in ("jpeg", "cwebp"):
        rows = [r for r in stored(out) if r["codec"] == codec]
        setups = [float(r["setup_s"]) for r in rows if r["setup_s"]]
        assert 1 <= len(setups) <= 2, "one set-up per worker that met the codec"
        assert all(s > 0 for s in setups)


def test_results_without_the_new_columns_migrate(fresh_worker, crops, tmp_path):
    out = tmp_path / "out"
    run(crops, load_codecs(["jpeg"]), out, qualities=[50], workers=1, progress=False)
    rows = stored(out)
    assert rows[0]["setup_s"] and all(r["psnr_ycbcr"] for r in rows)
    older = [c for c in COLUMNS if c not in ("setup_s", "psnr_ycbcr")]  # the header of rdbench before them
    with open(out / RESULTS_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, older, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with ResultStore(out) as store:
        assert len(store.done_keys()) == 3
    migrated = stored(out)
    assert list(migrated[0]) == list(COLUMNS)
    assert all(r["setup_s"] == "" and r["psnr_ycbcr"] == "" for r in migrated)
    assert [r["psnr_rgb"] for r in migrated] == [r["psnr_rgb"] for r in rows]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, train_dir):
    """An N = M = 32 mean-scale model with two rates, trained 2 steps on real crops."""
    pytest.importorskip("compressai")
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainOptions, train

    path = tmp_path_factory.mktemp("timing-model") / "model.pt"
    config = ModelConfig("mean-scale", 32, 32, 5, 1, (0.0067, 0.0483))
    train(TrainOptions(config, str(train_dir), str(path), steps=2, batch=2, crop=64, lr=1e-3, log_every=100),
          log=lambda line: None)
    return path


@pytest.mark.slow
def test_learned_codec_start_up_is_not_encode_time(tiny_model, small_dataset, tmp_path):
    """Real worker processes: each imports torch and CompressAI and loads the model (seconds) before
    its first item, which once showed in that item's enc_s."""
    out = tmp_path / "out"
    spec = f"learned:checkpoint={tiny_model}"
    summary = run(folder_dataset(small_dataset), load_codecs([spec]), out, workers=2, progress=False)
    assert (summary.ok, summary.failed) == (6, 0)
    rows = stored(out)
    first = [r for r in rows if r["setup_s"]]
    assert 1 <= len(first) <= 2  # one model: one set-up per worker
    for r in first:
        assert float(r["setup_s"]) > 0.5  # importing torch and CompressAI alone takes longer
        assert float(r["enc_s"]) < float(r["setup_s"]) / 4
    steady = max(float(r["enc_s"]) for r in rows if not r["setup_s"])
    assert max(float(r["enc_s"]) for r in first) < 3 * steady + 0.05


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.slow
@pytest.mark.skipif(not _has_cuda(), reason="no CUDA device")
def test_learned_codec_on_a_gpu_is_timed_after_synchronizing(tiny_model, small_dataset, tmp_path):
    out = tmp_path / "out"
    spec = f"learned:checkpoint={tiny_model},device=cuda"
    summary = run(folder_dataset(small_dataset), load_codecs([spec]), out, workers=1, progress=False)
    assert (summary.ok, summary.failed) == (6, 0)
    rows = stored(out)
    assert rows[0]["setup_s"] and not any(r["setup_s"] for r in rows[1:])
    assert max(float(r["enc_s"]) for r in rows) < float(rows[0]["setup_s"])
