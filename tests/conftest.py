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
