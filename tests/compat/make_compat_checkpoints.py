"""Write this CompressAI's checkpoint fixture for tests/test_checkpoint_compat.py: run it once
under each supported CompressAI (1.2.6 names the entropy bottleneck's parameters `_matrix0`,
1.2.7 and later `matrices.0`) and commit what it writes.

    python tests/compat/make_compat_checkpoints.py    # writes tests/compat/hyperprior-compressai-<version>.pt

The checkpoint: hyperprior, N = M = 4, one rate (0.0130), trained 4 steps on 64 x 64 crops of the
training photos ($RDBENCH_TEST_TRAIN or $RDBENCH_TRAIN, default
../shared/datasets/train/div2k-valid-256; never Kodak), saved by rdbench without optimizer state.
Its "training" record holds what the saving environment computed: the CompressAI version, the
model id, and the SHA-256 of the stream it writes of tests/golden/images/kodim23-64x48.png and of
that stream decoded. Any supported CompressAI must load it to the same id, stream and pixels.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
IMAGE = REPO / "tests" / "golden" / "images" / "kodim23-64x48.png"


def coded_digests(loaded) -> dict:
    """What this environment makes of IMAGE with `loaded` (rdbench.learned.checkpoint.LoadedModel)."""
    import torch

    from rdbench.learned.coding import LatentCoder

    torch.set_num_threads(1)
    coder = LatentCoder(loaded.model, loaded.model_id)
    data = coder.encode(np.asarray(Image.open(IMAGE).convert("RGB")), 0)
    decoded = coder.decode(data)
    return {"model_id": loaded.model_id.hex(), "stream_sha256": hashlib.sha256(data).hexdigest(),
            "decoded_sha256": hashlib.sha256(np.ascontiguousarray(decoded).tobytes()).hexdigest()}


def main() -> None:
    from rdbench.learned import checkpoint
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainOptions, train

    default = REPO.parent / "shared" / "datasets" / "train" / "div2k-valid-256"
    train_dir = Path(os.environ.get("RDBENCH_TRAIN") or os.environ.get("RDBENCH_TEST_TRAIN") or default)
    config = ModelConfig("hyperprior", 4, 4, 5, 1, (0.0130,))
    with tempfile.TemporaryDirectory() as tmp:
        trained = Path(tmp) / "m.pt"
        train(TrainOptions(config, str(train_dir), str(trained), steps=4, batch=2, crop=64, lr=1e-3,
                           log_every=4, checkpoint_every=4), log=lambda line: None)
        loaded = checkpoint.load(trained)
    cai = version("compressai")
    record = {"steps": 4, "data": train_dir.name, "purpose": "checkpoint compatibility across CompressAI versions",
              "compressai": cai, **coded_digests(loaded)}
    out = HERE / f"hyperprior-compressai-{cai}.pt"
    checkpoint.save(out, loaded.model, record)
    print(f"{out} ({out.stat().st_size} bytes): {record}")


if __name__ == "__main__":
    main()
