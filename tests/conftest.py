"""Shared fixtures, and where the tests find their data.

Kodak, as rdbench finds it (rdbench/data/datasets.py): $RDBENCH_KODAK (a local copy), else
../shared/datasets/kodak beside the repository (this project's machines), else rdbench's cache
($RDBENCH_DATA/kodak, default ~/.cache/rdbench/kodak), downloading what is missing when online.
Every copy is verified against the manifest. $RDBENCH_TEST_KODAK, the older name, still wins.

Training photos (never Kodak): $RDBENCH_TRAIN, a folder of images ($RDBENCH_TEST_TRAIN, the older
name, still wins), else ../shared/datasets/train/div2k-valid-256.

The run ends with one line counting the tests skipped for lack of data, of external binaries or
of Python packages, and saying how to supply each (pytest_unconfigure below).
"""

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# A suite started in the background by a non-interactive shell (`... &` in a script) inherits SIGINT
# ignored, and so would every rdbench it starts: the Ctrl-C tests would then fail (the signal never
# arrives). A terminal's foreground process has SIGINT's default action; give the suite Python's own
# handler, so that its children start with the default action, as a user's rdbench does.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"
# Every skip for lack of data starts with this, so the summary can count them.
NO_DATA = "test data not found:"


def _find_kodak() -> tuple[Path | None, str]:
    """(the Kodak folder, how it was found) or (None, why not)."""
    from rdbench.data.datasets import resolve_dataset
    from rdbench.errors import DatasetError

    explicit = os.environ.get("RDBENCH_TEST_KODAK")
    if explicit:
        folder = Path(explicit).expanduser()
        if (folder / "kodim01.png").is_file():
            return folder, f"$RDBENCH_TEST_KODAK={explicit}"
        return None, f"$RDBENCH_TEST_KODAK={explicit} holds no kodim01.png"
    saved = os.environ.get("RDBENCH_KODAK")
    if not saved and (SHARED / "kodak" / "kodim01.png").is_file():
        os.environ["RDBENCH_KODAK"] = str(SHARED / "kodak")  # verified below, as any local copy
    try:
        dataset = resolve_dataset("kodak", log=lambda line: print(f"tests: Kodak: {line}"))
    except DatasetError as exc:
        return None, str(exc)
    finally:
        if saved is None:
            os.environ.pop("RDBENCH_KODAK", None)
        else:
            os.environ["RDBENCH_KODAK"] = saved
    return dataset.images[0].path.parent, dataset.source


_KODAK: list = []


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    if not _KODAK:
        _KODAK.append(_find_kodak())
    folder, how = _KODAK[0]
    if folder is None:
        pytest.skip(f"{NO_DATA} Kodak ({how})")
    return folder


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


TRAIN = Path(os.environ.get("RDBENCH_TEST_TRAIN") or os.environ.get("RDBENCH_TRAIN") or SHARED / "train" / "div2k-valid-256")

# Every learned configuration the tests code Kodak with: each variant, and k x K for joint.
TINY_CONFIGS = (
    ("factorized", 5, 1), ("hyperprior", 5, 1), ("mean-scale", 5, 1), ("mean-scale", 5, 2), ("context", 5, 1),
    *(("joint", k, K) for k in (3, 5, 7) for K in (1, 2, 3)),
)


@pytest.fixture(scope="session")
def train_dir() -> Path:
    if not TRAIN.is_dir():
        pytest.skip(f"{NO_DATA} training images: no folder {TRAIN}")
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


# -- the closing line: how many tests skipped for lack of what, and how to supply it ------------

HOW_TO_SUPPLY = {
    "data": "RDBENCH_KODAK=<Kodak folder> (or be online: rdbench downloads it into its cache), "
            "RDBENCH_TRAIN=<folder of non-Kodak photos>",
    "binaries": "apt-get install webp libavif-bin libjxl-tools libopenjp2-tools chromium chromium-driver; "
                "bpgenc/bpgdec on PATH or in $RDBENCH_BPG_DIR; Slurm: .ci/start-slurm.sh as root",
    "packages": 'pip install ".[test]"',
}


def skip_kind(reason: str) -> str:
    """'data', 'binaries', 'packages' or 'other': what a skipped test lacked, from its reason."""
    if NO_DATA in reason:
        return "data"
    if "could not import" in reason or "pip install" in reason:
        return "packages"
    lowered = reason.lower()
    if any(word in lowered for word in ("not found", "not installed", "unavailable", "chromium", "slurm", "sinfo",
                                         "on path")):
        return "binaries"
    return "other"


def skip_summary(skipped_reports) -> str | None:
    """One line: how many tests skipped, for lack of what, and how to supply it."""
    counts = {"data": 0, "binaries": 0, "packages": 0, "other": 0}
    for report in skipped_reports:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        counts[skip_kind(reason)] += 1
    if not any(counts.values()):
        return None
    parts = [f"{n} for lack of {kind} ({HOW_TO_SUPPLY[kind]})" for kind, n in counts.items() if n and kind != "other"]
    if counts["other"]:
        parts.append(f"{counts['other']} for other reasons (CUDA, platform: see SKIPPED above)")
    return f"skipped {sum(counts.values())}: " + "; ".join(parts)


def pytest_unconfigure(config):
    # after pytest's own closing line ("N passed, M skipped"), so that this line ends the run
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and (line := skip_summary(reporter.stats.get("skipped", []))):
        reporter.write_line(line)
