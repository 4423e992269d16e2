"""The learned codecs' bitstream format, in one place.

    offset  size  field
    0       4     magic b"RDBL"
    4       1     format version (FORMAT_VERSION)
    5       8     model id: the first 8 bytes of the SHA-256 of the model's configuration and weights
    13      4     image height (pixels, before padding), little-endian
    17      4     image width
    21      1     rate index (0 for single-rate models)
    22      2     symbol range: max |symbol| of y (single Gaussian) or the window half-width (mixture)
    24      4     length of the z part in bytes (0 when the model has no hyperprior)
    28      4     CRC-32 of everything after the header
    32      -     z bytes, then y bytes

bpp counts every byte, header included. Any inconsistency raises BitstreamError, which names the
problem; decoding never starts on a stream whose checksum does not match.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from rdbench.errors import CodecError

MAGIC = b"RDBL"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<4sB8sIIBHII")
HEADER_BYTES = _HEADER.size


class BitstreamError(CodecError):
    """A bitstream that is truncated, corrupted, of another format version or of another model."""


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
        if not 0 <= self.symbol_range < 2**16:
            raise CodecError(f"latent symbols span {self.symbol_range}, more than the format's 16 bits")
        payload = self.z + self.y
        header = _HEADER.pack(
            MAGIC, FORMAT_VERSION, self.model_id, self.height, self.width, self.rate,
            self.symbol_range, len(self.z), zlib.crc32(payload),
        )
        return header + payload


def parse(data: bytes, expected_model_id: bytes | None = None) -> Bitstream:
    if len(data) < HEADER_BYTES:
        raise BitstreamError(f"bitstream of {len(data)} bytes is shorter than the {HEADER_BYTES}-byte header (truncated?)")
    magic, version, model_id, height, width, rate, symbol_range, z_len, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise BitstreamError(f"not an rdbench learned-codec bitstream (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"bitstream format version {version}; this rdbench reads version {FORMAT_VERSION}")
    if expected_model_id is not None and model_id != expected_model_id:
        raise BitstreamError(
            f"bitstream was made by model {model_id.hex()}, but this codec's model is {expected_model_id.hex()}"
        )
    if height == 0 or width == 0:
        raise BitstreamError(f"bitstream header gives an empty image ({width}x{height})")
    payload = data[HEADER_BYTES:]
    if z_len > len(payload):
        raise BitstreamError(f"bitstream truncated: z part is {z_len} bytes but only {len(payload)} follow the header")
    if zlib.crc32(payload) != crc:
        raise BitstreamError("bitstream corrupted or truncated: payload checksum does not match")
    return Bitstream(model_id, height, width, rate, symbol_range, payload[:z_len], payload[z_len:])
