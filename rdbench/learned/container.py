"""The container around a CompressAI-contract model's own strings: what bpp counts for the
`compressai:` and `model:` codecs (codecs/models.py).

A model with CompressAI's contract returns `{"strings": [[bytes], [bytes], ...], "shape": ...}`
from `compress`: one group of strings per latent (y, z, ...), one string per image of the batch
(always 1 here), and a shape (usually z's height and width; some models give a list of shapes).
The container keeps exactly that, plus what decoding needs and a checksum:

    offset  size  field
    0       4     magic b"RDBC"
    4       1     container version (VERSION)
    5       8     model id: the first 8 bytes of the SHA-256 of the model's class and weights
    13      4     image height (pixels, before padding), little-endian
    17      4     image width
    21      8     quality knob (float64): a variable-rate model's quantization step, else 0
    29      1     shape depth: 1 (a sequence of ints) or 2 (a sequence of sequences)
    30      -     shape: count (1 byte), then per entry either a uint32 (depth 1) or a count
                  (1 byte) and that many uint32 (depth 2)
    -       1     groups of strings G
    -       -     per group: its number of strings (uint16), then each string's length (uint32)
    -       -     the strings, in order, back to back
    -       4     CRC-32 of everything before it

The overhead is 36 bytes + 4 per shape value (+ 1 per entry of a nested shape) + 2 per group +
4 per string: 56 bytes for a hyperprior model ([[y], [z]], shape (h, w)). bpp counts every byte of it.

`parse` checks, in order and before anything is allocated or decoded: length, magic, version,
the checksum (damage is reported as damage), then every field against the bytes that are there
(counts, lengths, the image at most `max_pixels` pixels, each shape value at most the image's
larger side plus padding, each latent grid at most a quarter of the padded image's positions).
Every failure is a ContainerError that names the problem; nothing else is raised.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from rdbench.errors import CodecError

MAGIC = b"RDBC"
VERSION = 1
_HEAD = struct.Struct("<4sB8sIId")
_CRC = struct.Struct("<I")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
MIN_BYTES = _HEAD.size + 1 + 1 + 1 + _CRC.size
MAX_GROUPS = 255
MAX_STRINGS = 2**16 - 1
PAD_ALLOWANCE = 256  # px a model's padding may add to each side


class ContainerError(CodecError):
    """A container that is truncated, damaged, of another version or malformed; names the problem."""


@dataclass(frozen=True)
class Container:
    model_id: bytes
    height: int
    width: int
    quality: float
    shape: tuple  # tuple of ints, or tuple of tuples of ints
    strings: tuple  # tuple of groups, each a tuple of bytes

    def to_bytes(self) -> bytes:
        parts = [_HEAD.pack(MAGIC, VERSION, self.model_id, self.height, self.width, float(self.quality))]
        parts.append(_pack_shape(self.shape))
        if len(self.strings) > MAX_GROUPS:
            raise ContainerError(f"the model returned {len(self.strings)} groups of strings, more than {MAX_GROUPS}")
        parts.append(bytes([len(self.strings)]))
        for group in self.strings:
            if len(group) > MAX_STRINGS:
                raise ContainerError(f"the model returned {len(group)} strings in one group, more than {MAX_STRINGS}")
            parts.append(_U16.pack(len(group)))
            parts.extend(_U32.pack(len(s)) for s in group)
        parts.extend(s for group in self.strings for s in group)
        body = b"".join(parts)
        return body + _CRC.pack(zlib.crc32(body))


def overhead_bytes(shape, strings) -> int:
    """Bytes the container adds to the model's own strings (see the module docstring)."""
    return len(Container(b"\0" * 8, 1, 1, 0.0, shape, strings).to_bytes()) - sum(len(s) for g in strings for s in g)


def _pack_shape(shape) -> bytes:
    entries = list(shape)
    if len(entries) > 255:
        raise ContainerError(f"the model's shape has {len(entries)} entries, more than 255")
    nested = bool(entries) and not isinstance(entries[0], int)
    out = [bytes([2 if nested else 1, len(entries)])]
    for entry in entries:
        if nested:
            values = [int(v) for v in entry]
            if len(values) > 255:
                raise ContainerError(f"a shape entry of the model has {len(values)} values, more than 255")
            out.append(bytes([len(values)]))
            out.extend(_U32.pack(v) for v in values)
        else:
            out.append(_U32.pack(int(entry)))
    return b"".join(out)


def reseal(data: bytes) -> bytes:
    """`data` with its checksum recomputed (tests and fuzzing reach the checks behind it)."""
    if len(data) < _CRC.size:
        return data
    body = data[: -_CRC.size]
    return body + _CRC.pack(zlib.crc32(body))


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise ContainerError(f"container damaged: {what} runs past its end ({self.end - self.pos} bytes left, {n} needed)")
        chunk = self.data[self.pos: self.pos + n]
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def u32(self, what: str) -> int:
        return _U32.unpack(self.take(4, what))[0]


def _check_shape(shape: list, depth: int, height: int, width: int) -> None:
    """A latent grid is smaller than the image: each value at most the padded side, and each
    grid at most a quarter of the padded image's positions (every CompressAI model downsamples by
    16 or more; this leaves room for a model that downsamples by 2)."""
    side = max(height, width) + PAD_ALLOWANCE
    area = (height + PAD_ALLOWANCE) * (width + PAD_ALLOWANCE) // 4
    grids = [shape] if depth == 1 else shape
    for grid in grids:
        if any(v > side for v in grid) or math.prod(grid) > area:
            raise ContainerError(f"container damaged: latent shape {tuple(grid)} is larger than a {width}x{height} "
                                 "image's latents can be")


def parse(data: bytes, max_pixels: int | None = None) -> Container:
    """The fields of `data`, every one checked (see the module docstring); raises ContainerError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ContainerError(f"container is a {type(data).__name__}, not bytes")
    data = bytes(data)
    if len(data) < MIN_BYTES:
        raise ContainerError(f"container of {len(data)} bytes is shorter than the smallest possible ({MIN_BYTES}; truncated?)")
    magic, version, model_id, height, width, quality = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ContainerError(f"not an rdbench model container (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise ContainerError(f"container version {version}; this rdbench reads version {VERSION} only")
    end = len(data) - _CRC.size
    if zlib.crc32(data[:end]) != _CRC.unpack_from(data, end)[0]:
        raise ContainerError("container corrupted or truncated: its checksum does not match")
    if height == 0 or width == 0:
        raise ContainerError(f"container damaged: its header gives an empty image ({width}x{height})")
    if max_pixels is not None and height * width > max_pixels:
        raise ContainerError(f"container header gives a {width}x{height} image ({height * width:,} pixels), more than the "
                             f"decoder's limit of {max_pixels:,} (codec option max_pixels=N raises it)")
    if not math.isfinite(quality) or quality < 0:
        raise ContainerError(f"container damaged: quality knob {quality!r}")
    reader = _Reader(data, end)
    reader.pos = _HEAD.size
    depth = reader.byte("shape depth")
    if depth not in (1, 2):
        raise ContainerError(f"container damaged: shape depth {depth}, expected 1 or 2")
    count = reader.byte("shape")
    shape = []
    for _ in range(count):
        values = [reader.u32("shape") for _ in range(reader.byte("shape entry") if depth == 2 else 1)]
        shape.append(tuple(values) if depth == 2 else values[0])
    _check_shape(shape, depth, height, width)
    groups = reader.byte("string groups")
    lengths = []
    for g in range(groups):
        n = _U16.unpack(reader.take(2, f"group {g + 1}'s count"))[0]
        lengths.append([reader.u32(f"group {g + 1}'s string lengths") for _ in range(n)])
    total = sum(map(sum, lengths))
    if reader.pos + total != end:
        raise ContainerError(f"container damaged: its strings declare {total} bytes, but {end - reader.pos} follow the lengths")
    strings = tuple(tuple(reader.take(n, "strings") for n in group) for group in lengths)
    return Container(model_id, height, width, quality, tuple(shape), strings)
