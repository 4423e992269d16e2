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
from rdbench.metrics import Reference, registry
from rdbench.metrics.measuring import merge_versions
from rdbench.bench.store import quality_key
from rdbench.conventions import utc_now, write_atomic


@dataclass(frozen=True)
class Item:
    dataset: str
    image: ImageRef
    codec: str  # spec text
    codec_version: str
    quality: int | float
    # an item already stored that lacks some of the chosen metrics: their names, and the stored
    # row (column, text) whose other values are kept as they are
    add_metrics: tuple[str, ...] = ()
    stored: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Settings:
    timeout_s: float | None = None  # per external call; None: each codec's own (a spec's `timeout`)
    keep_dir: str | None = None  # write bitstreams and reconstructions here
    check_decode: bool = False  # decode learned streams again elsewhere (bench/decode_check.py)
    metrics: tuple[str, ...] | None = None  # names in the metrics registry; None: the default set
    results_dir: str | None = None  # where kept reconstructions of stored items are looked for

    def chosen_metrics(self) -> tuple[registry.Metric, ...]:
        return registry.DEFAULT if self.metrics is None else tuple(registry.get(n) for n in self.metrics)


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
_references: OrderedDict[tuple, Reference] = OrderedDict()  # by (pixel digest, metric names)
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


def _reference(image: ImageRef, metrics: tuple[registry.Metric, ...] = registry.DEFAULT) -> Reference:
    key = (image.sha256, tuple(m.name for m in metrics))
    ref = _references.get(key)
    if ref is None:
        # one original in memory at a time per image: another metric set reuses its pixels
        same = next((r for k, r in _references.items() if k[0] == image.sha256), None)
        for old in [k for k in _references if k[0] == image.sha256]:
            del _references[old]
        ref = Reference(same.pixels if same else load_rgb(image.path).pixels, metrics)
        _references[key] = ref
        if len(_references) > _REFERENCE_CACHE:
            _references.popitem(last=False)
    else:
        _references.move_to_end(key)
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
        for key in [k for k in _references if k[0] == image.sha256]:
            del _references[key]
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
        "quality": quality_key(item.quality) if item.quality is not None else "",  # None: a target's, not found
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
    if item.add_metrics:
        return add_metrics(item, settings)
    row = base_row(item)
    try:
        reference = _reference(item.image, settings.chosen_metrics())
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
        row["metric_versions"] = reference.versions()
        row.update(codec.extra_measurements(original, item.quality, data))
        if settings.check_decode and codec.learned:
            row["decode_check"] = _decode_checker().check(codec, data, decoded)
        row["note"] = "; ".join(filter(None, [row["note"], *reference.reasons, *reference.failures]))
        if settings.keep_dir:
            _keep(Path(settings.keep_dir), item, codec.extension, data, decoded)
        row["status"] = "ok"
    except Exception as exc:  # a codec's failure is data, not a crash of the run
        row.update(status="error", error=f"{type(exc).__name__}: {exc}")
    row["finished_at"] = utc_now()
    return row


def add_metrics(item: Item, settings: Settings) -> dict:
    """The stored row of `item` with the metrics `item.add_metrics` measured and added; its other
    values (bytes, times, the other metrics) are kept as stored. The reconstruction is the one kept
    by `--keep` when there is one (read back losslessly), else the item is coded again and used only
    if the bitstream has the stored length (a deterministic codec); the row's note says which. Never
    raises: when the metrics cannot be added, the stored row comes back unchanged, with the reason
    in its note (its status stays 'ok')."""
    row = dict(item.stored)
    names = ", ".join(item.add_metrics)
    try:
        metrics = tuple(registry.get(n) for n in item.add_metrics)
        reference = _reference(item.image, metrics)
        original = reference.pixels
        kept = _kept_path(Path(settings.results_dir), item, "reconstructions", "png") if settings.results_dir else None
        if kept is not None and kept.is_file():
            decoded = load_rgb(kept).pixels
            how = f"{names} measured on the kept reconstruction"
        else:
            codec, _ = _ready_codec(item, settings, original)
            data = codec.encode(original, item.quality)
            if str(len(data)) != str(row.get("bytes")):
                raise ValueError(f"coded again it gave {len(data)} bytes, the stored item has {row.get('bytes')} (the "
                                 "codec is not deterministic: run with --keep to measure new metrics on kept files)")
            decoded = codec.decode(data)
            how = f"{names} measured by coding again (same {len(data)} bytes)"
        if decoded.shape != original.shape:
            raise ValueError(f"reconstruction is {decoded.shape}, original {original.shape}")
        row.update(reference.measure(decoded))
        row["metric_versions"] = merge_versions(row.get("metric_versions", ""), reference.versions())
        row["note"] = "; ".join(filter(None, [row.get("note", ""), how, *reference.reasons, *reference.failures]))
    except Exception as exc:  # the stored values are kept, never replaced by an error row
        row["note"] = "; ".join(filter(None, [row.get("note", ""), f"{names} not added: {type(exc).__name__}: {exc}"]))
    row["finished_at"] = utc_now()
    return row


def kept_path(root: Path, image_name: str, codec: str, quality, kind: str, extension: str) -> Path:
    """Where `--keep` writes the bitstream (kind 'bitstreams') or reconstruction of an item; the
    image's whole file name, so that a.png and a.jpg of one folder keep their files apart."""
    stem = f"{_slug(Path(image_name).name)}.q{quality_key(quality)}"
    return root / kind / _slug(codec) / f"{stem}.{extension}"


def _kept_path(root: Path, item: Item, kind: str, extension: str) -> Path:
    return kept_path(root, item.image.name, item.codec, item.quality, kind, extension)


def _keep(root: Path, item: Item, extension: str, data: bytes, decoded: np.ndarray) -> None:
    for path, payload in (
        (_kept_path(root, item, "bitstreams", extension), data),
        (_kept_path(root, item, "reconstructions", "png"), encode_png(decoded, compress_level=6)),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, payload)
