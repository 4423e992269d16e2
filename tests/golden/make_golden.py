"""Regenerate the golden conformance vectors of the learned codecs: run this deliberately, after a
change of the bitstream format or of the numeric contract, and commit what it writes.
tests/test_golden.py fails whenever the encoder's output or the decoder's result changes, and
points here.

    python tests/golden/make_golden.py              # re-encode the committed images with the committed checkpoints
    python tests/golden/make_golden.py --retrain    # first retrain the checkpoints
    python tests/golden/make_golden.py --images     # first re-crop the two test images from Kodak

The checkpoints (checkpoints/*.pt, ~47 KB each): every variant, K = 1 and K = 2, k = 3 and 5,
N = M = 4, two rates (0.0067, 0.0483), trained 20 steps on 64 x 64 crops of the training photos
($RDBENCH_TRAIN, default ../shared/datasets/train/div2k-valid-256; never Kodak), saved
without optimizer state. The images (images/*.png): a 64 x 48 and a 40 x 72 crop of Kodak
(kodim23, kodim15) as test inputs only, neither a multiple of the 64-pixel padding in every side.
vectors.json: for each (checkpoint, image; rate = image index mod 2), the stream in streams/, and
the SHA-256 of the stream, of ŷ (float64, little-endian, C order, shape (1, M, h, w)) and of the
decoded image (uint8, H x W x 3, C order).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

CONFIGS = (  # (variant, k, K)
    ("factorized", 5, 1), ("hyperprior", 5, 1), ("mean-scale", 5, 1), ("mean-scale", 5, 2),
    ("context", 3, 1), ("context", 5, 2), ("joint", 5, 1), ("joint", 3, 2),
)
SIZE, RATES, STEPS = 4, (0.0067, 0.0483), 20
IMAGES = {"kodim23-64x48.png": (23, 100, 300, 48, 64), "kodim15-40x72.png": (15, 200, 500, 72, 40)}  # n, top, left, h, w


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def latent_sha256(y_hat) -> str:
    return sha256(np.ascontiguousarray(y_hat.numpy(), dtype="<f8").tobytes())


def load_image(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def crop_images(kodak: Path) -> None:
    (HERE / "images").mkdir(exist_ok=True)
    for name, (n, top, left, h, w) in IMAGES.items():
        pixels = load_image(kodak / f"kodim{n:02d}.png")[top : top + h, left : left + w]
        Image.fromarray(np.ascontiguousarray(pixels)).save(HERE / "images" / name)


def retrain(train_dir: Path) -> None:
    from rdbench.learned import checkpoint
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.train import TrainOptions, train

    (HERE / "checkpoints").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for variant, k, K in CONFIGS:
            config = ModelConfig(variant, SIZE, SIZE, k, K, RATES)
            trained = Path(tmp) / f"{config.label()}.pt"
            train(TrainOptions(config, str(train_dir), str(trained), steps=STEPS, batch=2, crop=64, lr=1e-3,
                               log_every=STEPS, checkpoint_every=STEPS), log=lambda line: None)
            loaded = checkpoint.load(trained)
            record = {key: loaded.training[key] for key in ("steps", "lambdas", "metric", "crop", "seed") if key in loaded.training}
            checkpoint.save(HERE / "checkpoints" / f"{config.label(with_size=False)}.pt", loaded.model,
                            {**record, "data": train_dir.name, "purpose": "golden conformance vectors"})


def encode_all() -> dict:
    import torch

    from rdbench.learned import checkpoint
    from rdbench.learned.coding import LatentCoder
    from rdbench.learned.contract import CONTRACT_ID
    from rdbench.learned.bitstream import FORMAT_VERSION

    torch.set_num_threads(1)
    (HERE / "streams").mkdir(exist_ok=True)
    vectors = []
    for ckpt in sorted((HERE / "checkpoints").glob("*.pt")):
        loaded = checkpoint.load(ckpt)
        coder = LatentCoder(loaded.model, loaded.model_id)
        for i, name in enumerate(IMAGES):
            rate = i % len(loaded.model.config.rates)
            data, y_hat = coder.encode_with_latent(load_image(HERE / "images" / name), rate)
            decoded, y_dec = coder.decode_with_latent(data)
            assert torch.equal(y_dec, y_hat), (ckpt.name, name)
            stream = f"{ckpt.stem}--{Path(name).stem}.rdbl"
            (HERE / "streams" / stream).write_bytes(data)
            vectors.append({"checkpoint": f"checkpoints/{ckpt.name}", "model_id": loaded.model_id.hex(),
                            "image": f"images/{name}", "rate": rate, "stream": f"streams/{stream}",
                            "stream_sha256": sha256(data), "y_hat_shape": list(y_hat.shape),
                            "y_hat_sha256": latent_sha256(y_hat),
                            "decoded_sha256": sha256(np.ascontiguousarray(decoded).tobytes())})
    return {"format_version": FORMAT_VERSION, "contract_id": CONTRACT_ID.hex(),
            "regenerate": "python tests/golden/make_golden.py", "vectors": vectors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--retrain", action="store_true", help="retrain the checkpoints first")
    ap.add_argument("--images", action="store_true", help="re-crop the test images from Kodak first")
    # the same data the tests use: $RDBENCH_TRAIN / $RDBENCH_KODAK (the older $RDBENCH_TEST_* still win)
    env = os.environ.get
    ap.add_argument("--train", default=env("RDBENCH_TEST_TRAIN") or env("RDBENCH_TRAIN")
                    or str(REPO.parent / "shared" / "datasets" / "train" / "div2k-valid-256"))
    ap.add_argument("--kodak", default=env("RDBENCH_TEST_KODAK") or env("RDBENCH_KODAK")
                    or str(REPO.parent / "shared" / "datasets" / "kodak"))
    args = ap.parse_args()
    if args.images:
        crop_images(Path(args.kodak))
    if args.retrain:
        retrain(Path(args.train))
    for old in (HERE / "streams").glob("*.rdbl"):
        old.unlink()
    manifest = encode_all()
    (HERE / "vectors.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file())
    print(f"{len(manifest['vectors'])} vectors, contract {manifest['contract_id']}; tests/golden holds {total:,} bytes")


if __name__ == "__main__":
    main()
