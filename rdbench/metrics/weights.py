"""Network weights of learned metrics (LPIPS): a local folder, or fetched once with a checksum.

Files live in $RDBENCH_METRIC_WEIGHTS (default ~/.cache/rdbench/metric-weights). A file that is
missing is downloaded from its published URL, or from $RDBENCH_METRIC_WEIGHTS_URL (a mirror
holding the same file names, e.g. a local folder served over HTTP), to a temporary name, its
SHA-256 checked against the published digest (torchvision publishes the first 8 hex digits in
the file name), then renamed into place: a half or wrong file is never used. `rdbench run`
fetches before any work; offline without the file, the metric is unavailable with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

from rdbench.data.datasets import DatasetError, download, sha256_file
from rdbench.metrics.registry import WeightFile

DIR_ENV = "RDBENCH_METRIC_WEIGHTS"
URL_ENV = "RDBENCH_METRIC_WEIGHTS_URL"
DOWNLOAD_TIMEOUT_S = 60.0


class WeightsUnavailable(ValueError):
    """A weights file is neither in the folder nor downloadable (or fails its checksum); the message says which."""


def weights_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or Path.home() / ".cache" / "rdbench" / "metric-weights")


def source_url(file: WeightFile) -> str:
    mirror = os.environ.get(URL_ENV)
    return mirror.rstrip("/") + "/" + file.name if mirror else file.url


def cached(file: WeightFile) -> Path | None:
    """The file in the weights folder when it is there and passes its checksum, else None."""
    path = weights_dir() / file.name
    return path if path.is_file() and sha256_file(path).startswith(file.sha256) else None


def fetch(file: WeightFile) -> Path:
    """The checked file in the weights folder, downloading it first when it is not there."""
    found = cached(file)
    if found:
        return found
    dest = weights_dir() / file.name
    url = source_url(file)
    tmp = dest.with_name(f"{file.name}.{os.getpid()}.download")
    try:
        download(url, tmp, DOWNLOAD_TIMEOUT_S)
    except DatasetError as exc:
        raise WeightsUnavailable(f"weights {file.name} are not in {dest.parent} and cannot be downloaded ({exc}); put "
                                 f"the file there (${DIR_ENV}) or set ${URL_ENV} to a mirror") from None
    digest = sha256_file(tmp)
    if not digest.startswith(file.sha256):
        tmp.unlink(missing_ok=True)
        raise WeightsUnavailable(f"{url}: the downloaded file's SHA-256 {digest[:16]}... does not start with the "
                                 f"published {file.sha256}; refused")
    os.replace(tmp, dest)
    return dest
