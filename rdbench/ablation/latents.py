"""The shared-latents design's cache: the base model's latents of a fixed set of training crops.

Every cell and seed of a shared-latents grid trains its entropy model on y = g_a(x) of the same
base, so y is computed once: `crops` random crops ([training] crop, downscale, the images
[training] trains on, Kodak and the held-out images excluded) drawn by a generator seeded with
CROP_SEED, each flipped at random as training flips them, and g_a of them in float32, eval mode,
CHUNK crops per call, stored as one float32 array:

    OUT/latents/<base model id>.npy    (crops, M, crop / 16, crop / 16): g_a(x), before any gain
    OUT/latents/<base model id>.json   what it was computed from (base, crops, crop, data, ...)

The gain of a variable-rate base is applied when a cell reads y (shared.py), exactly as
LatentModel.analyse applies it (g_a(x) * gain[rate]), so one cache serves every rate. The file is
named by the base's model id (a hash of its weights): a changed base never reads a stale cache,
and a cache whose description differs from the config is rebuilt. Both files are written to a
temporary name and renamed, so a killed run leaves no torn cache.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

CROP_SEED = 2026  # the cached crops' generator: the same crops for every cell, seed and rerun
CHUNK = 16  # crops per g_a call (float32 results may depend on the batch shape: it is fixed)


def cache_paths(out: Path, model_id: bytes) -> tuple[Path, Path]:
    stem = Path(out) / "latents" / model_id.hex()
    return stem.with_suffix(".npy"), stem.with_suffix(".json")


def crop_sampler(config, crop: int):
    """The training images of the grid, as CropSampler holds them (Kodak and held-out images excluded)."""
    from rdbench.ablation.layout import training_exclude
    from rdbench.data.images import rgb_pixels
    from rdbench.learned.train import CropSampler

    t = config.training
    return CropSampler(t.data, crop, t.downscale, training_exclude(config), load_image=rgb_pixels)


def training_crops(sampler, count: int):
    """The cached crops, CHUNK at a time: float32 tensors (n, 3, crop, crop) in [0, 1], the same
    crops whatever the chunking (the generator draws crop after crop)."""
    rng = np.random.default_rng(CROP_SEED)
    for start in range(0, count, CHUNK):
        yield sampler.batch(rng, min(CHUNK, count - start))


def analyse_crops(g_a, crops) -> np.ndarray:
    """g_a of each chunk of crops (no gain), float32 numpy (n, M, h, w)."""
    import torch

    parts = []
    with torch.no_grad():
        for x in crops:
            parts.append(g_a(x).float().numpy())
    return np.concatenate(parts)


def description(config, base_id: bytes, base_source: str) -> dict:
    t = config.training
    return {"base_model_id": base_id.hex(), "base": base_source, "crops": config.design.crops, "crop": t.crop,
            "downscale": t.downscale, "data": t.data, "holdout": t.holdout, "crop_seed": CROP_SEED, "chunk": CHUNK}


def cached_latents(config, out: Path, base, base_id: bytes, base_source: str, log=None) -> np.ndarray:
    """The base's latents of the training crops (float32 (crops, M, h, w)), computed on first use
    and read from OUT/latents/ after that (memory-mapped: every cell process shares the pages)."""
    data_path, meta_path = cache_paths(out, base_id)
    wanted = description(config, base_id, base_source)
    if data_path.is_file() and meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()) == wanted:
                return np.load(data_path, mmap_mode="r")
        except (OSError, ValueError):
            pass  # unreadable: computed again below
    if log:
        log(f"caching the base's latents of {config.design.crops} training crops in {data_path}")
    base = base.eval()
    y = analyse_crops(base.g_a, training_crops(crop_sampler(config, config.training.crop), config.design.crops))
    data_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = data_path.with_name(f"{data_path.stem}.{os.getpid()}.tmp.npy")  # cell processes may race: same content
    np.save(tmp, y)
    os.replace(tmp, data_path)
    tmp_meta = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.tmp")
    tmp_meta.write_text(json.dumps(wanted, indent=1))
    os.replace(tmp_meta, meta_path)
    return np.load(data_path, mmap_mode="r")
