"""Encode or decode Kodak with every tiny checkpoint, in a process with a given torch thread count.

    python tests/roundtrip_worker.py encode THREADS KODAK_DIR OUT_DIR CKPT...
    python tests/roundtrip_worker.py decode THREADS KODAK_DIR OUT_DIR CKPT...

`encode` writes OUT_DIR/<model>/<image>.rdbl and the SHA-256 of the encoder's ŷ; `decode` reads
the bitstreams back and writes the SHA-256 of the decoder's ŷ. The test compares the two.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rdbench.learned.checkpoint import load
from rdbench.learned.coding import LatentCoder


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def main() -> None:
    mode, threads, kodak, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    torch.set_num_threads(threads)
    images = sorted(kodak.glob("kodim*.png"))
    report = {}
    for ckpt in map(Path, sys.argv[5:]):
        loaded = load(ckpt)
        coder = LatentCoder(loaded.model, loaded.model_id)
        folder = out / ckpt.stem
        folder.mkdir(parents=True, exist_ok=True)
        for i, image_path in enumerate(images):
            rate = i % len(loaded.model.config.rates)
            key = f"{ckpt.stem}/{image_path.stem}"
            if mode == "encode":
                pixels = np.asarray(Image.open(image_path).convert("RGB"))
                data, y_hat = coder.encode_with_latent(pixels, rate)
                (folder / f"{image_path.stem}.rdbl").write_bytes(data)
            else:
                data = (folder / f"{image_path.stem}.rdbl").read_bytes()
                x_hat, y_hat = coder.decode_with_latent(data)
                assert x_hat.shape[:2] == Image.open(image_path).size[::-1], key
            report[key] = digest(y_hat)
    (out / f"{mode}-{threads}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
