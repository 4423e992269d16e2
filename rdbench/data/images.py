"""Reading images as the 8-bit RGB arrays that every codec and metric in rdbench works on.

Only conversions that lose nothing are made, and each one is reported as a note that ends up in
the result rows; anything else is refused with an error that names the file.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from rdbench.conventions import MAX_PIXELS_ENV, max_image_pixels
from rdbench.errors import ImageError

# Modes whose conversion to 8-bit RGB is exact.
_LOSSLESS_TO_RGB = {
    "L": "8-bit grayscale converted to RGB (R=G=B)",
    "1": "1-bit bilevel converted to RGB",
    "P": "palette image converted to RGB",
}


@dataclass
class RGBImage:
    pixels: np.ndarray  # uint8, H x W x 3, C-contiguous
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]


def pixels_sha256(pixels: np.ndarray) -> str:
    """SHA-256 of an RGB uint8 array in row-major (H, W, 3) order (as in Kodak's PIXELS.sha256)."""
    return hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()).hexdigest()


def _png_bit_depth(head: bytes) -> int | None:
    if len(head) > 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


def load_rgb(path: str | Path) -> RGBImage:
    """Decode an image file into 8-bit RGB, refusing what cannot be converted exactly."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    return decode_rgb(data, name=str(path))


def decode_rgb(data: bytes, name: str = "<bytes>") -> RGBImage:
    depth = _png_bit_depth(data[:32])
    if depth == 16:
        raise ImageError(
            f"{name}: 16-bit PNG; rdbench compares 8-bit RGB images and will not drop bits "
            "silently. Convert it to 8 bits first (e.g. `convert in.png -depth 8 out.png`)."
        )
    import warnings

    try:
        with warnings.catch_warnings():
            # over Pillow's own limit it only warns and goes on allocating: refused below instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))  # reads the header only
            width, height = im.size
            limit = max_image_pixels()
            if width * height > limit:
                raise ImageError(
                    f"{name}: declares {width} x {height} pixels ({width * height / 1e6:.0f} Mpx), more than the "
                    f"limit of {limit:,} pixels (a damaged file or a decompression bomb? set ${MAX_PIXELS_ENV} "
                    "to a larger number of pixels to measure larger images)")
            im.load()
    except ImageError:
        raise
    except Exception as exc:  # Pillow raises many types for broken files
        raise ImageError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from exc
    notes: list[str] = []
    mode = im.mode
    if mode == "RGB":
        pass
    elif mode in _LOSSLESS_TO_RGB:
        notes.append(_LOSSLESS_TO_RGB[mode])
        im = im.convert("RGB")
    elif mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            raise ImageError(
                f"{name}: {mode} image with transparent pixels; rdbench measures RGB and will "
                "not invent a background. Flatten it onto a background of your choice first."
            )
        notes.append(f"{mode} image with fully opaque alpha: alpha channel dropped")
        im = im.convert("RGB")
    elif mode == "CMYK":
        raise ImageError(
            f"{name}: CMYK image; converting to RGB needs a colour profile rdbench does not "
            "guess. Convert it to sRGB first."
        )
    else:
        raise ImageError(
            f"{name}: image mode {mode!r} (e.g. 16-bit, float or non-RGB colour space) is not "
            "8-bit RGB; convert it to 8-bit RGB first."
        )
    pixels = np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageError(f"{name}: decoded to shape {pixels.shape}, expected H x W x 3")
    return RGBImage(pixels, notes)


def encode_png(pixels: np.ndarray, compress_level: int = 1) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def encode_ppm(pixels: np.ndarray) -> bytes:
    h, w, _ = pixels.shape
    return b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(pixels).tobytes()


def rgb_pixels(path: str | Path) -> np.ndarray:
    """Just the pixels of `load_rgb(path)`: the loader training is handed (learned/ does not
    import data/), so that it refuses what measuring refuses (16-bit, transparent, CMYK)."""
    return load_rgb(path).pixels
