"""JPEG, WebP and JPEG 2000 through Pillow (libjpeg-turbo, libwebp, OpenJPEG), in process."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, features

from rdbench.codecs.base import Codec, CodecError, Option, register_codec

STEP5_LADDER = tuple(range(5, 100, 5))  # CompressAI's JPEG/WebP sweep: 5, 10, ..., 95


# The Pillow feature that reports each library's own version ("jpg" reports the libjpeg API level).
_LIBRARY_FEATURE = {"jpg": ("libjpeg-turbo", "libjpeg_turbo"), "webp": ("libwebp", "webp"), "jpg_2000": ("OpenJPEG", "jpg_2000")}


def _library_version(feature: str) -> str:
    import PIL

    label, version_feature = _LIBRARY_FEATURE[feature]
    return f"Pillow {PIL.__version__}, {label} {features.version(version_feature) or 'unknown'}"


class PillowCodec(Codec):
    format: str = ""
    feature: str = ""

    def availability(self):
        if not features.check(self.feature):
            return f"this Pillow build has no {self.feature} support; install a Pillow wheel from PyPI"
        return None

    @property
    def version(self) -> str:
        return _library_version(self.feature)

    def save_options(self, quality) -> dict:
        raise NotImplementedError

    def encode(self, image: np.ndarray, quality) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=self.format, **self.save_options(quality))
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        try:
            im = Image.open(io.BytesIO(data))
            im.load()
        except Exception as exc:
            raise CodecError(f"{self.name}: cannot decode bitstream ({exc})") from exc
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


@register_codec("jpeg")
class JPEG(PillowCodec):
    description = "JPEG (libjpeg-turbo via Pillow), baseline Huffman tables unless optimize=1"
    format, feature, extension = "JPEG", "jpg", "jpg"
    qualities = STEP5_LADDER
    quality_range = (1, 100)
    options = {
        "subsampling": Option("420", ("420", "422", "444"), "chroma subsampling"),
        "optimize": Option("0", ("0", "1"), "optimised Huffman tables"),
    }
    _SUBSAMPLING = {"444": 0, "422": 1, "420": 2}

    def save_options(self, quality):
        return {
            "quality": int(quality),
            "subsampling": self._SUBSAMPLING[self.opts["subsampling"]],
            "optimize": self.opts["optimize"] == "1",
        }


@register_codec("webp")
class WebP(PillowCodec):
    description = "WebP lossy (libwebp via Pillow)"
    format, feature, extension = "WEBP", "webp", "webp"
    qualities = STEP5_LADDER
    quality_range = (0, 100)
    options = {"method": Option("4", tuple("0123456"), "effort, 0 fast .. 6 slow (Pillow's default 4)")}

    def save_options(self, quality):
        return {"quality": int(quality), "method": int(self.opts["method"])}


# A target PSNR (dB) a lossy 8-bit coder can be asked for: rounding to 8 bits alone costs about
# 10 log10(12 * 255^2) = 58.9 dB, and below 10 dB nothing of the image is left. (OpenJPEG takes
# any number: a "100 dB" target silently gives ~51 dB on kodim01.) codecs/opj.toml repeats it.
PSNR_TARGET_RANGE_DB = (10, 60)


@register_codec("jpeg2000")
class JPEG2000(PillowCodec):
    """JPEG 2000 with a real quality ladder.

    mode=psnr (default): the quality is a target PSNR in dB that OpenJPEG's rate allocation aims
    for on each image, so every image gets the rate it needs (not one file size for all).
    mode=rate: the quality is a target rate in bits per pixel (compression ratio 24/bpp).
    """

    description = "JPEG 2000 (OpenJPEG via Pillow), 9/7 wavelet, RGB->YCbCr, one quality layer"
    format, feature, extension = "JPEG2000", "jpg_2000", "jp2"
    quality_name = "target PSNR (dB)"
    continuous_quality = True  # any number in the range is a setting (bench/targets.py bisects it as such)
    qualities = tuple(range(24, 48, 2))
    quality_range = PSNR_TARGET_RANGE_DB
    options = {
        "mode": Option("psnr", ("psnr", "rate"), "quality is a target PSNR (dB) or rate (bpp)"),
        "wavelet": Option("97", ("97", "53"), "irreversible 9/7 or reversible 5/3"),
    }

    def __init__(self, spec=None):
        super().__init__(spec)
        if self.opts["mode"] == "rate":
            self.quality_name = "target rate (bpp)"
            self.qualities = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
            self.quality_range = (0.01, 24)

    def save_options(self, quality):
        if self.opts["mode"] == "psnr":
            layers = {"quality_mode": "dB", "quality_layers": [float(quality)]}
        else:
            layers = {"quality_mode": "rates", "quality_layers": [24.0 / float(quality)]}
        # mct=1: RGB->YCbCr before the wavelet, as opj_compress does by default; Pillow's
        # default (no transform) needs ~65% more bits for the same PSNR on Kodak.
        return {**layers, "irreversible": self.opts["wavelet"] == "97", "mct": 1}


# The x265 encoder and libde265 decoder that pillow-heif's wheels carry (HEVC intra in HEIF).
HEIC_PACKAGE = "pillow_heif"


@register_codec("heic")
class HEIC(Codec):
    """HEVC intra in a HEIF file: libheif with x265 (encoder) and libde265 (decoder), through the
    pillow-heif wheel, so an HEVC-intra anchor runs wherever pip does.

    Not BPG: the same coding standard (HEVC main-still / RExt 4:4:4 intra), but another container,
    another encoder configuration (libheif's x265 settings, its quality 0..100 mapped to x265's
    rate control rather than BPG's fixed QP) and libheif's colour conversion (RGB -> full-range
    BT.601 YCbCr, as BPG's `-c ycbcr`). The file measured is the whole .heic (its boxes included).
    """

    description = "HEVC intra (HEIF: libheif + x265 via pillow-heif), not BPG; 8 bits, YCbCr BT.601 full range"
    extension = "heic"
    qualities = tuple(range(10, 100, 10))
    quality_range = (0, 100)
    options = {
        "chroma": Option("444", ("444", "422", "420"), "chroma format (x265 Main 4:4:4 for 444)"),
        # x265's --tune: 'psnr' turns psy-rd, psy-rdoq and adaptive quantisation off (more PSNR per
        # bit, less visual tuning); 'none' keeps libheif's x265 defaults
        "tune": Option("none", ("none", "psnr", "ssim"), "x265 --tune (none: libheif's x265 defaults)"),
    }

    def availability(self):
        try:
            import pillow_heif  # noqa: F401
        except ImportError as exc:
            return f"needs pillow-heif: pip install 'rdbench[heic]' ({exc})"
        import pillow_heif

        if "x265" not in str(pillow_heif.libheif_info().get("encoders", {})):
            return "this pillow-heif build has no x265 encoder; install the pillow-heif wheel from PyPI"
        return None

    @property
    def version(self) -> str:
        import pillow_heif

        info = pillow_heif.libheif_info()
        encoder = info.get("encoders", {}).get("x265") or info.get("HEIF") or "no x265"
        decoder = info.get("decoders", {}).get("libde265") or "no libde265"
        return f"pillow-heif {pillow_heif.__version__}, libheif {info.get('libheif')}, {encoder}, {decoder}"

    def encode(self, image: np.ndarray, quality) -> bytes:
        import pillow_heif

        quality = int(self.check_quality(quality))
        heif = pillow_heif.from_bytes(mode="RGB", size=(image.shape[1], image.shape[0]),
                                      data=np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        buf = io.BytesIO()
        params = {} if self.opts["tune"] == "none" else {"tune": self.opts["tune"]}
        heif.save(buf, quality=quality, chroma=int(self.opts["chroma"]), save_nclx_profile=True, enc_params=params)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_heif

        try:
            heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
            pixels = np.asarray(heif)
        except Exception as exc:
            raise CodecError(f"{self.spec.text}: cannot decode bitstream ({exc})") from exc
        if pixels.ndim != 3 or pixels.shape[2] < 3:
            raise CodecError(f"{self.spec.text}: decoded {heif.mode} image, expected RGB")
        return np.ascontiguousarray(pixels[:, :, :3])
