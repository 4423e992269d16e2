"""Measuring one item (image x codec x quality) into one result row; runs in worker processes.

Timing: `enc_s` and `dec_s` are wall-clock seconds of the codec's own `encode` / `decode` call,
read with time.perf_counter() (monotonic, sub-microsecond), with `codec.synchronize()` before
each clock read (a codec on a GPU has finished its kernels). Image loading, metric computation and
writing kept files are outside the timed spans. For external binaries the span includes writing
the input file to /dev/shm, the process start and reading its output.

One-time costs are never timed as coding: the first time a worker meets a codec, and each further
warm-up family of it (`Codec.warm_up_family`: a learned codec's models), it loads the codec and
calls `Codec.warm_up` with the item's image at the item's quality (the codec codes a small crop
of it, or all of it), untimed; the seconds that took are the row's `setup_s` (empty on every
other row), so the cost is recorded, not hidden.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdbench import __version__
from rdbench.codecs import Codec, load
from rdbench.data.datasets import ImageRef
from rdbench.data.images import encode_png, load_rgb, pixels_sha256
from rdbench.metrics import Reference
from rdbench.bench.store import quality_key
from rdbench.conventions import utc_now


@dataclass(frozen=True)
class Item:
    dataset: str
    image: ImageRef
    codec: str  # spec text
    codec_version: str
    quality: int | float


@dataclass(frozen=True)
class Settings:
    timeout_s: float = 600.0
    keep_dir: str | None = None  # write bitstreams and reconstructions here
    check_decode: bool = False  # decode learned streams again elsewhere (bench/decode_check.py)


# What this worker process has set up: codecs by spec text, and the warm-up families done.
_codecs: dict[str, Codec] = {}
_load_s: dict[str, float] = {}  # seconds each codec took to load, until a warm-up row records them


def _loaded(spec: str) -> Codec:
    """This worker's instance of the codec `spec` (loaded on first use; the load time kept for setup_s)."""
    codec = _codecs.get(spec)
    if codec is None:
        started = time.perf_counter()
        codec = _codecs[spec] = load(spec)
        _load_s[spec] = time.perf_counter() - started
    return codec
_warmed: set[tuple[str, object]] = set()
_references: OrderedDict[str, Reference] = OrderedDict()
_REFERENCE_CACHE = 4


def _ready_codec(item: Item, settings: Settings, image: np.ndarray) -> tuple[Codec, float | None]:
    """The item's codec, loaded and warmed up for the item's quality; and the seconds this call
    spent doing so (None when the worker had done it already)."""
    codec = _loaded(item.codec)
    # timed from here: a codec may defer its heavy start-up (a learned model's torch import and
    # checkpoint read) to the first configure or warm_up_family call
    started = time.perf_counter()
    codec.configure(timeout_s=settings.timeout_s)
    family = (item.codec, codec.warm_up_family(item.quality))
    if family in _warmed:
        return codec, None
    codec.warm_up(item.quality, image)
    _warmed.add(family)
    # the load counts once, on the first warm-up, whoever loaded it (check_codec_version may have)
    return codec, time.perf_counter() - started + _load_s.pop(item.codec, 0.0)


_checker = None


def _decode_checker():
    """This worker's decode-check helper (one process, started on first use)."""
    global _checker
    if _checker is None:
        from rdbench.bench.decode_check import DecodeChecker

        _checker = DecodeChecker()
    return _checker


def _reference(image: ImageRef) -> Reference:
    ref = _references.get(image.sha256)
    if ref is None:
        ref = Reference(load_rgb(image.path).pixels)
        _references[image.sha256] = ref
        if len(_references) > _REFERENCE_CACHE:
            _references.popitem(last=False)
    else:
        _references.move_to_end(image.sha256)
    return ref


_verified: set[tuple[str, str | None]] = set()  # (path, digest) pairs this process has checked


def check_image(image: ImageRef) -> str | None:
    """None when the file at `image.path` decodes to the pixels the client planned (`image.sha256`),
    else why not. For workers on other machines, which read images from shared storage: the check
    is made once per process and image, and leaves the pixels cached for the `measure` calls that
    follow, so an image is read once, not once per item."""
    if (str(image.path), image.sha256) in _verified:
        return None
    try:
        pixels = _reference(image).pixels
    except Exception as exc:
        return f"cannot read {image.path} on this worker: {type(exc).__name__}: {exc}"
    found = pixels_sha256(pixels)
    if image.sha256 and found != image.sha256:
        _references.pop(image.sha256, None)
        return (f"{image.path} on this worker has pixel digest {found[:12]}..., the client planned "
                f"{image.sha256[:12]}... (shared storage out of sync?)")
    _verified.add((str(image.path), image.sha256))
    return None


def check_codec_version(item: Item) -> str | None:
    """None when this process's build of the item's codec is the version the client planned (rows
    are keyed by it), else why not; a codec that cannot load here is left to `measure`, whose
    row says why. For workers on other machines, whose binaries may differ from the client's."""
    try:
        codec = _loaded(item.codec)
    except Exception:
        return None
    if codec.version != item.codec_version:
        return (f"this worker has {codec.version!r} of {item.codec}, the client planned {item.codec_version!r} "
                "(results are keyed by version: install the same build on every worker)")
    return None


def base_row(item: Item) -> dict:
    img = item.image
    return {
        "dataset": item.dataset,
        "image": img.name,
        "image_sha256": img.sha256 or "",
        "width": img.width,
        "height": img.height,
        "codec": item.codec,
        "codec_version": item.codec_version,
        "quality": quality_key(item.quality),
        "note": "; ".join(img.notes),
        "rdbench_version": __version__,
    }


def error_row(item: Item, message: str) -> dict:
    row = base_row(item)
    row.update(status="error", error=message, finished_at=utc_now())
    return row


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text)


def measure(item: Item, settings: Settings) -> dict:
    """Encode, decode and measure one item. Never raises: failures become error rows."""
    row = base_row(item)
    try:
        reference = _reference(item.image)
        original = reference.pixels
        codec, row["setup_s"] = _ready_codec(item, settings, original)
        codec.synchronize()
        t0 = time.perf_counter()
        data = codec.encode(original, item.quality)
        codec.synchronize()
        t1 = time.perf_counter()
        row.update(bytes=len(data), bpp=8.0 * len(data) / (original.shape[0] * original.shape[1]), enc_s=t1 - t0)
        decoded = codec.decode(data)
        codec.synchronize()
        row["dec_s"] = time.perf_counter() - t1
        if not isinstance(decoded, np.ndarray) or decoded.shape != original.shape or decoded.dtype != np.uint8:
            got = getattr(decoded, "shape", type(decoded).__name__)
            raise ValueError(f"decoder returned {got} {getattr(decoded, 'dtype', '')}, expected uint8 {original.shape}")
        row.update(reference.measure(decoded))
        row.update(codec.extra_measurements(original, item.quality, data))
        if settings.check_decode and codec.learned:
            row["decode_check"] = _decode_checker().check(codec, data, decoded)
        if reference.ms_ssim_reason:
            row["note"] = "; ".join(filter(None, [row["note"], reference.ms_ssim_reason]))
        if settings.keep_dir:
            _keep(Path(settings.keep_dir), item, codec.extension, data, decoded)
        row["status"] = "ok"
    except Exception as exc:  # a codec's failure is data, not a crash of the run
        row.update(status="error", error=f"{type(exc).__name__}: {exc}")
    row["finished_at"] = utc_now()
    return row


def _keep(root: Path, item: Item, extension: str, data: bytes, decoded: np.ndarray) -> None:
    stem = f"{Path(item.image.name).stem}.q{quality_key(item.quality)}"
    for kind, name, payload in (
        ("bitstreams", f"{stem}.{extension}", data),
        ("reconstructions", f"{stem}.png", encode_png(decoded, compress_level=6)),
    ):
        folder = root / kind / _slug(item.codec)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(payload)
