"""The learned codecs' bitstream format, in one place.

    offset  size  field
    0       4     magic b"RDBL"
    4       1     format version (FORMAT_VERSION)
    5       4     numeric contract id (contract.CONTRACT_ID: the SHA-256 of everything that decides
                  the coder's probabilities, first 4 bytes)
    9       8     model id: the first 8 bytes of the SHA-256 of the model's configuration and weights
    17      4     image height (pixels, before padding), little-endian
    21      4     image width
    25      1     rate index (0 for single-rate models)
    26      2     symbol range: max |symbol| of y (single Gaussian) or the window half-width
                  (mixture); 0 when y is factorized
    28      4     length of the z part in bytes (0 when the model has no hyperprior)
    32      4     CRC-32 of bytes 0-31 and of everything after the header
    36      -     z bytes, then y bytes (each a whole number of 32-bit range-coder words)

bpp counts every byte, header included. `parse` checks, in this order and before anything is
allocated or decoded: length, magic, version, the checksum (so a damaged header is reported as
damage, not as a foreign model), the contract, the model, then each field's range (the image at
most `max_pixels` pixels: DEFAULT_MAX_PIXELS unless the codec option max_pixels= or
$RDBENCH_MAX_PIXELS says otherwise). coding.py checks the fields against the model (rate index,
symbol range, z part). Every failure is a BitstreamError that names the problem.

Version 1 (rdbench 0.1 before the numeric contract was pinned) had no contract field and a
checksum of the payload only; its streams are refused by version.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

from rdbench.errors import CodecError
from rdbench.learned.contract import CONTRACT_ID, CONTRACT_NAME

MAGIC = b"RDBL"
FORMAT_VERSION = 2
_FIELDS = struct.Struct("<4sB4s8sIIBHI")  # everything the checksum covers, before it
_CRC = struct.Struct("<I")
HEADER_BYTES = _FIELDS.size + _CRC.size
WORD_BYTES = 4
MAX_SYMBOL_RANGE = 2**16 - 1

# The largest image a bitstream may declare, unless raised: 2^28 pixels (16,384 x 16,384). A damaged
# or hostile header could otherwise make the decoder allocate for any size the 32-bit fields can hold.
DEFAULT_MAX_PIXELS = 2**28
from rdbench.conventions import MAX_PIXELS_ENV  # noqa: E402 - one name for both limits


class BitstreamError(CodecError):
    """A bitstream that is truncated, corrupted, of another format version, contract or model."""


def resolve_max_pixels(value: str | int | None = None) -> int:
    """The decoder's pixel limit: `value` (the codec option max_pixels=), else $RDBENCH_MAX_PIXELS,
    else DEFAULT_MAX_PIXELS. Raises ValueError for anything but a positive integer."""
    source = "max_pixels="
    if value in (None, ""):
        value, source = os.environ.get(MAX_PIXELS_ENV, ""), f"${MAX_PIXELS_ENV}"
        if not value:
            return DEFAULT_MAX_PIXELS
    try:
        limit = int(str(value).replace("_", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"{source} {value!r}: expected a positive whole number of pixels")
    return limit


@dataclass(frozen=True)
class Bitstream:
    model_id: bytes
    height: int
    width: int
    rate: int
    symbol_range: int
    z: bytes
    y: bytes

    def to_bytes(self) -> bytes:
        if not 0 <= self.symbol_range <= MAX_SYMBOL_RANGE:
            raise CodecError(f"latent symbols span {self.symbol_range}, more than the format's 16 bits")
        fields = _FIELDS.pack(MAGIC, FORMAT_VERSION, CONTRACT_ID, self.model_id, self.height, self.width,
                              self.rate, self.symbol_range, len(self.z))
        payload = self.z + self.y
        return fields + _CRC.pack(_checksum(fields, payload)) + payload


def _checksum(fields: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(fields))


def reseal(data: bytes) -> bytes:
    """`data` with its checksum recomputed over its (possibly edited) header and payload: for
    tests and fuzzing, which must reach the checks behind the checksum."""
    if len(data) < HEADER_BYTES:
        return data
    fields = data[: _FIELDS.size]
    return fields + _CRC.pack(_checksum(fields, data[HEADER_BYTES:])) + data[HEADER_BYTES:]


def parse(data: bytes, expected_model_id: bytes | None = None, max_pixels: int | None = None) -> Bitstream:
    """The fields of `data`, every one checked (see the module docstring); raises BitstreamError.
    max_pixels: the decoder's limit (LatentCoder passes its own); None checks no size, for callers
    that only read the header."""
    if len(data) < HEADER_BYTES:
        if len(data) >= 5 and data[:4] == MAGIC and data[4] != FORMAT_VERSION:
            _refuse_version(data[4])
        raise BitstreamError(f"bitstream of {len(data)} bytes is shorter than the {HEADER_BYTES}-byte header (truncated?)")
    magic, version, contract, model_id, height, width, rate, symbol_range, z_len = _FIELDS.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError(f"not an rdbench learned-codec bitstream (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        _refuse_version(version)
    (crc,) = _CRC.unpack_from(data, _FIELDS.size)
    payload = data[HEADER_BYTES:]
    if _checksum(data[: _FIELDS.size], payload) != crc:
        raise BitstreamError("bitstream corrupted or truncated: the checksum of its header and payload does not match")
    if contract != CONTRACT_ID:
        raise BitstreamError(
            f"bitstream was coded under numeric contract {contract.hex()}, but this rdbench implements "
            f"{CONTRACT_NAME}: its probabilities would differ, so it cannot be decoded here"
        )
    if expected_model_id is not None and model_id != expected_model_id:
        raise BitstreamError(
            f"bitstream was made by model {model_id.hex()}, but this codec's model is {expected_model_id.hex()}"
        )
    if height == 0 or width == 0:
        raise BitstreamError(f"bitstream damaged: its header gives an empty image ({width}x{height})")
    limit = max_pixels
    if limit is not None and height * width > limit:
        raise BitstreamError(
            f"bitstream header gives a {width}x{height} image ({height * width:,} pixels), more than the "
            f"decoder's limit of {limit:,}: a damaged stream, or a real image that needs the limit raised "
            f"(codec option max_pixels=N, or ${MAX_PIXELS_ENV})"
        )
    if z_len > len(payload):
        raise BitstreamError(f"bitstream damaged: z part of {z_len} bytes, but only {len(payload)} follow the header")
    for name, size in (("z", z_len), ("y", len(payload) - z_len)):
        if size % WORD_BYTES:
            raise BitstreamError(f"bitstream damaged: {name} part of {size} bytes is not a whole number of 32-bit words")
    return Bitstream(model_id, height, width, rate, symbol_range, payload[:z_len], payload[z_len:])


def _refuse_version(version: int):
    note = " (version 1: before the numeric contract was pinned; re-encode the image)" if version == 1 else ""
    raise BitstreamError(f"bitstream format version {version}; this rdbench reads version {FORMAT_VERSION} only{note}")
