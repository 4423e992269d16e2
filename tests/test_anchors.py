"""The anchors of issue 25: HEVC intra through pillow-heif (`heic`), VTM and HM declarative specs."""

import io

import numpy as np
import pytest

from rdbench.codecs import load
from rdbench.metrics import psnr_rgb


@pytest.fixture
def heic():
    codec = load("heic", check_available=False)
    problem = codec.availability()
    if problem:
        pytest.skip(f"heic unavailable: {problem}")
    return codec


def test_heic_is_labelled_hevc_intra_not_bpg(heic):
    assert "HEVC intra" in heic.description and "not BPG" in heic.description
    version = heic.version
    assert "libheif" in version and "x265" in version and "libde265" in version
    assert "bpg" not in version.lower()


@pytest.mark.parametrize("chroma", ["444", "420"])
def test_heic_codes_a_kodak_crop_in_the_chroma_format_asked(kodim, chroma):
    pillow_heif = pytest.importorskip("pillow_heif")
    codec = load(f"heic:chroma={chroma}")
    image = np.ascontiguousarray(kodim(7)[:200, :301])  # odd width: 4:2:0 must still round-trip
    data = codec.encode(image, 50)
    assert data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1")  # a HEIF file, not a BPG one
    info = pillow_heif.open_heif(io.BytesIO(data)).info
    assert str(info["chroma"]) == chroma and info["bit_depth"] == 8
    assert info["nclx_profile"]["matrix_coefficients"] == 6 and info["nclx_profile"]["full_range_flag"] == 1
    decoded = codec.decode(data)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert 30 < psnr_rgb(image, decoded) < 50


def test_heic_ladder_is_monotone_on_a_kodak_crop(heic, kodim):
    image = np.ascontiguousarray(kodim(23)[:256, :256])
    sizes, psnrs = [], []
    for q in (10, 50, 90):
        data = heic.encode(image, q)
        sizes.append(len(data))
        psnrs.append(psnr_rgb(image, heic.decode(data)))
    assert sizes == sorted(sizes) and len(set(sizes)) == 3
    assert psnrs == sorted(psnrs)


def test_heic_444_beats_420_in_psnr_rgb_at_high_rate(heic, kodim):
    # 4:4:4 is what BPG's published curve uses; at a high quality it must keep more colour detail
    image = np.ascontiguousarray(kodim(23)[:192, :192])
    out = {}
    for chroma in ("444", "420"):
        codec = load(f"heic:chroma={chroma}")
        out[chroma] = psnr_rgb(image, codec.decode(codec.encode(image, 90)))
    assert out["444"] > out["420"] + 1


def test_heic_rejects_bad_quality_and_garbage(heic):
    with pytest.raises(ValueError, match="outside 0..100"):
        heic.check_quality(101)
    from rdbench.codecs.base import CodecError

    with pytest.raises(CodecError, match="heic: cannot decode"):
        heic.decode(b"not a heif file at all")
