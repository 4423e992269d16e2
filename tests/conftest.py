import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
KODAK = Path(os.environ.get("RDBENCH_TEST_KODAK", REPO.parent / "shared" / "datasets" / "kodak"))


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    if not (KODAK / "kodim01.png").is_file():
        pytest.skip(f"Kodak copy not found at {KODAK} (set RDBENCH_TEST_KODAK)")
    return KODAK


@pytest.fixture(scope="session")
def kodim(kodak_dir):
    """kodim(n) -> the decoded Kodak image n as uint8 H x W x 3."""
    cache = {}

    def get(n: int) -> np.ndarray:
        if n not in cache:
            cache[n] = np.asarray(Image.open(kodak_dir / f"kodim{n:02d}.png").convert("RGB"))
        return cache[n]

    return get


@pytest.fixture
def small_dataset(tmp_path, kodim):
    """A folder of three real Kodak crops (256x192) as PNG."""
    folder = tmp_path / "crops"
    folder.mkdir()
    for n in (1, 7, 23):
        Image.fromarray(np.ascontiguousarray(kodim(n)[:192, :256])).save(folder / f"kodim{n:02d}_crop.png")
    return folder


TRAIN = Path(os.environ.get("RDBENCH_TEST_TRAIN", REPO.parent / "shared" / "datasets" / "train" / "div2k-valid-256"))

# Every learned configuration the tests code Kodak with: each variant, and k x K for joint.
TINY_CONFIGS = (
    ("factorized", 5, 1), ("hyperprior", 5, 1), ("mean-scale", 5, 1), ("mean-scale", 5, 2), ("context", 5, 1),
    *(("joint", k, K) for k in (3, 5, 7) for K in (1, 2, 3)),
)


@pytest.fixture(scope="session")
def train_dir() -> Path:
    if not TRAIN.is_dir():
        pytest.skip(f"training images not found at {TRAIN} (set RDBENCH_TEST_TRAIN)")
    return TRAIN


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, train_dir) -> dict:
    """{label: checkpoint path}: N = M = 32 models trained 4 steps on 64x64 crops (real training)."""
    pytest.importorskip("compressai")
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainOptions, train

    folder = tmp_path_factory.mktemp("tiny-models")
    paths = {}
    for variant, k, K in TINY_CONFIGS:
        config = ModelConfig(variant, 32, 32, k, K, (0.0067, 0.0483))
        path = folder / f"{config.label()}.pt"
        train(TrainOptions(config, str(train_dir), str(path), steps=4, batch=2, crop=64, lr=1e-3, log_every=100),
              log=lambda line: None)
        paths[config.label()] = path
    return paths
