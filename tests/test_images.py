import numpy as np
import pytest
from PIL import Image

from rdbench.data.datasets import folder_dataset
from rdbench.data.images import ImageError, load_rgb


@pytest.fixture
def crop(kodim):
    return np.ascontiguousarray(kodim(5)[:200, :240])


def test_rgb_loads_without_notes(tmp_path, crop):
    Image.fromarray(crop).save(tmp_path / "a.png")
    img = load_rgb(tmp_path / "a.png")
    assert img.notes == [] and np.array_equal(img.pixels, crop)


@pytest.mark.parametrize(
    "mode,word", [("L", "grayscale"), ("P", "palette"), ("1", "bilevel")]
)
def test_lossless_conversions_are_noted(tmp_path, crop, mode, word):
    src = Image.fromarray(crop).convert(mode)
    src.save(tmp_path / "x.png")
    img = load_rgb(tmp_path / "x.png")
    assert img.pixels.shape == crop.shape and img.pixels.dtype == np.uint8
    assert np.array_equal(img.pixels, np.asarray(src.convert("RGB")))
    assert any(word in n for n in img.notes)


def test_opaque_rgba_drops_alpha_with_note(tmp_path, crop):
    Image.fromarray(crop).convert("RGBA").save(tmp_path / "x.png")
    img = load_rgb(tmp_path / "x.png")
    assert np.array_equal(img.pixels, crop) and "alpha" in img.notes[0]


def test_transparent_rgba_is_refused(tmp_path, crop):
    rgba = np.dstack([crop, np.full(crop.shape[:2], 255, np.uint8)])
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    with pytest.raises(ImageError, match=r"t\.png.*transparent"):
        load_rgb(tmp_path / "t.png")


def test_cmyk_is_refused(tmp_path, crop):
    Image.fromarray(crop).convert("CMYK").save(tmp_path / "c.jpg")
    with pytest.raises(ImageError, match=r"c\.jpg.*CMYK"):
        load_rgb(tmp_path / "c.jpg")


def test_16bit_png_is_refused(tmp_path, crop):
    Image.fromarray(crop[..., 0].astype(np.uint16) * 257).save(tmp_path / "g16.png")
    with pytest.raises(ImageError, match=r"g16\.png.*16-bit"):
        load_rgb(tmp_path / "g16.png")


def test_truncated_file_is_refused(tmp_path, crop):
    Image.fromarray(crop).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png"):
        load_rgb(tmp_path / "cut.png")


def test_folder_dataset_keeps_bad_images_as_errors(tmp_path, crop):
    Image.fromarray(crop).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    ds = folder_dataset(tmp_path)
    assert [r.name for r in ds.images] == ["bad.png", "good.png"]
    bad, good = ds.images
    assert "bad.png" in bad.error and bad.sha256.startswith("file:")
    assert good.error is None and good.width == 240 and good.height == 200


def _png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels (its data is a few zero bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    """94 bytes declaring 8 x 16,777,216 pixels: Pillow only warns and allocates 400 MB, filling the
    missing rows; rdbench refuses it from the header, names the file and says how to raise the limit."""
    import time

    from rdbench.data.images import load_rgb
    from rdbench.errors import ImageError

    path = tmp_path / "bomb.png"
    path.write_bytes(_png_declaring(8, 16_777_216))
    started = time.perf_counter()
    with pytest.raises(ImageError, match=r"bomb\.png: declares 8 x 16777216 pixels .*RDBENCH_MAX_PIXELS"):
        load_rgb(path)
    assert time.perf_counter() - started < 1.0  # refused before decoding
    monkeypatch.setenv("RDBENCH_MAX_PIXELS", str(64 * 64))
    small = tmp_path / "small.png"
    small.write_bytes(_png_declaring(64, 65))
    with pytest.raises(ImageError, match="limit of 4,096 pixels"):
        load_rgb(small)
