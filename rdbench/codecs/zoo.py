"""CompressAI's pretrained models ("the zoo"): where their weights live, and fetching them.

Weights are cached in $RDBENCH_WEIGHTS (default ~/.cache/rdbench/weights). They are downloaded
from CompressAI's published URLs, or from $RDBENCH_WEIGHTS_URL (a mirror holding the same file
names). Each file name ends in the first 8 hex digits of the file's SHA-256, which is checked;
a file that does not match is deleted and refused.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rdbench.errors import CodecUnavailable
from rdbench.data.datasets import DatasetError, download, sha256_file

# rdbench variant of each CompressAI zoo architecture
ARCHITECTURES = {
    "bmshj2018-factorized": "factorized",
    "bmshj2018-hyperprior": "hyperprior",
    "mbt2018-mean": "mean-scale",
    "mbt2018": "joint",
}
DOWNLOAD_TIMEOUT_S = 60.0
# More models in CompressAI's layout: {name: {metric: {quality: url}}}, consulted first.
EXTRA_MODELS: dict[str, dict[str, dict[int, str]]] = {}


def weights_dir() -> Path:
    return Path(os.environ.get("RDBENCH_WEIGHTS") or Path.home() / ".cache" / "rdbench" / "weights")


def _urls() -> dict:
    from compressai.zoo.image import model_urls
    from compressai.zoo.image_vbr import model_urls as vbr_urls

    # a -vbr model has one file for every rate: {metric: url}, whatever the quality
    return {**model_urls, **vbr_urls, **EXTRA_MODELS}


def zoo_qualities(architecture: str, metric: str) -> tuple[int, ...]:
    """The qualities CompressAI's zoo has weights for (1 for a -vbr model's one file; () if none)."""
    entry = _urls().get(architecture, {}).get(metric)
    if entry is None:
        return ()
    return (1,) if isinstance(entry, str) else tuple(sorted(entry))


def weights_url(architecture: str, metric: str, quality: int) -> str:
    try:
        url = _urls()[architecture][metric]
        url = url if isinstance(url, str) else url[quality]
    except KeyError as exc:
        raise ValueError(f"CompressAI has no {architecture} model for metric {metric}, quality {quality}") from exc
    mirror = os.environ.get("RDBENCH_WEIGHTS_URL")
    if mirror:
        url = mirror.rstrip("/") + "/" + url.rsplit("/", 1)[1]
    return url


def _expected_prefix(name: str) -> str | None:
    m = re.search(r"-([0-9a-f]{8})\.pth(\.tar)?$", name)
    return m.group(1) if m else None


def fetch_weights(architecture: str, metric: str, quality: int) -> Path:
    """The cached weights file, downloading it first if needed."""
    url = weights_url(architecture, metric, quality)
    name = url.rsplit("/", 1)[1]
    dest = weights_dir() / name
    prefix = _expected_prefix(name)
    if dest.is_file() and (prefix is None or sha256_file(dest).startswith(prefix)):
        return dest
    tmp = dest.with_name(f"{name}.{os.getpid()}.download")
    try:
        download(url, tmp, DOWNLOAD_TIMEOUT_S)
    except DatasetError as exc:
        raise CodecUnavailable(
            f"{architecture} ({metric}, quality {quality}): cannot download ({exc}); "
            f"put the file in {dest.parent} or set RDBENCH_WEIGHTS_URL to a mirror"
        ) from exc
    if prefix is not None and not sha256_file(tmp).startswith(prefix):
        tmp.unlink(missing_ok=True)
        raise CodecUnavailable(f"{url}: downloaded file's SHA-256 does not start with {prefix}; refused")
    os.replace(tmp, dest)
    return dest
