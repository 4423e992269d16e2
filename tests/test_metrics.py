import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_msssim import ms_ssim as reference_ms_ssim
from skimage.color import rgb2yuv
from skimage.metrics import peak_signal_noise_ratio

from rdbench.metrics import MS_SSIM_MIN_SIDE, Reference, ms_ssim_to_db, psnr_rgb, psnr_y, psnr_ycbcr


def jpeg_roundtrip(pixels, quality):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def oracle_ms_ssim(a, b):
    """pytorch-msssim in float64, with its Gaussian window built in float64 too."""
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    win = (g / g.sum()).view(1, 1, 1, 11).repeat(3, 1, 1, 1)
    t = lambda z: torch.from_numpy(np.array(z)).permute(2, 0, 1)[None].double()
    return reference_ms_ssim(t(a), t(b), data_range=255, win=win).item()


CASES = [(1, 5), (4, 50), (13, 95), (20, 25), (23, 75)]  # kodim04 is portrait


@pytest.mark.parametrize("n,quality", CASES)
def test_psnr_matches_scikit_image(kodim, n, quality):
    a = kodim(n)
    b = jpeg_roundtrip(a, quality)
    assert psnr_rgb(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-6)
    ya, yb = rgb2yuv(a)[..., 0] * 255, rgb2yuv(b)[..., 0] * 255  # BT.601 luma
    assert psnr_y(a, b) == pytest.approx(peak_signal_noise_ratio(ya, yb, data_range=255), abs=1e-6)


@pytest.mark.parametrize("n,quality", CASES)
@pytest.mark.parametrize("crop", [None, (slice(1, 198), slice(0, 161)), (slice(0, 171), slice(3, 336))])
def test_ms_ssim_matches_pytorch_msssim(kodim, n, quality, crop):
    a = kodim(n) if crop is None else np.ascontiguousarray(kodim(n)[crop])  # odd sides exercise padding
    b = jpeg_roundtrip(a, quality)
    assert Reference(a).ms_ssim(b) == pytest.approx(oracle_ms_ssim(a, b), abs=1e-9)


def test_ms_ssim_float32_pytorch_msssim_is_within_1e4(kodim):
    # what CompressAI reports (float32 tensors) differs from the exact value by float32 rounding only
    a = kodim(12)
    b = jpeg_roundtrip(a, 5)
    t = lambda z: torch.from_numpy(z.copy()).permute(2, 0, 1)[None].float()
    assert Reference(a).ms_ssim(b) == pytest.approx(reference_ms_ssim(t(a), t(b), data_range=255).item(), abs=1e-4)


def test_identical_images_are_perfect(kodim):
    a = kodim(3)
    m = Reference(a).measure(a.copy())
    assert m["psnr_rgb"] == math.inf and m["psnr_y"] == math.inf
    assert m["ms_ssim"] == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim_to_db(1.0) == math.inf


def test_small_image_gets_nan_with_reason(kodim):
    a = np.ascontiguousarray(kodim(1)[: MS_SSIM_MIN_SIDE - 1, :300])
    ref = Reference(a)
    m = ref.measure(jpeg_roundtrip(a, 50))
    assert math.isnan(m["ms_ssim"]) and math.isnan(m["ms_ssim_db"])
    assert "161" in ref.ms_ssim_reason and "300x160" in ref.ms_ssim_reason
    assert math.isfinite(m["psnr_rgb"])
    # the smallest allowed size works
    ok = np.ascontiguousarray(kodim(1)[:MS_SSIM_MIN_SIDE, :MS_SSIM_MIN_SIDE])
    assert 0 < Reference(ok).ms_ssim(jpeg_roundtrip(ok, 50)) < 1


def test_shape_mismatch_is_an_error(kodim):
    with pytest.raises(ValueError, match="decoded image"):
        Reference(kodim(1)).measure(kodim(4))


def ycbcr_planes_from_the_standard(rgb, kr, kb):
    """Full-range YCbCr planes (with their offsets), written out from the standard's equations:
    E'Y = K_R R + (1 - K_R - K_B) G + K_B B, Cb = (B - Y) / (2 (1 - K_B)) + 128, Cr likewise."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = kr * r + (1 - kr - kb) * g + kb * b
    return y, (b - y) / (2 * (1 - kb)) + 128, (r - y) / (2 * (1 - kr)) + 128


def oracle_psnr_ycbcr(a, b, kr=0.2126, kb=0.0722):  # ITU-R BT.709: 1.8556 and 1.5748 as divisors
    planes = [peak_signal_noise_ratio(pa, pb, data_range=255)
              for pa, pb in zip(ycbcr_planes_from_the_standard(a, kr, kb), ycbcr_planes_from_the_standard(b, kr, kb))]
    return (6 * planes[0] + planes[1] + planes[2]) / 8


@pytest.mark.parametrize("n,quality", CASES)
def test_psnr_ycbcr_is_the_6_1_1_mean_of_bt709_plane_psnrs(kodim, n, quality):
    a = kodim(n)
    b = jpeg_roundtrip(a, quality)
    assert 2 * (1 - 0.0722) == pytest.approx(1.8556) and 2 * (1 - 0.2126) == pytest.approx(1.5748)
    assert psnr_ycbcr(a, b) == pytest.approx(oracle_psnr_ycbcr(a, b), abs=1e-9)
    # the matrix matters: BT.601 weights give another value (by more than rounding could explain)
    assert abs(psnr_ycbcr(a, b) - oracle_psnr_ycbcr(a, b, kr=0.299, kb=0.114)) > 1e-3
    assert Reference(a).measure(b)["psnr_ycbcr"] == psnr_ycbcr(a, b)


def test_psnr_ycbcr_weights_luma_six_times_chroma(kodim):
    a = kodim(7)[:256, :256]
    b = a.copy()
    b[..., 2] = np.clip(b[..., 2].astype(int) + 3, 0, 255)  # only blue changes: Y, Cb and Cr all move
    y, cb, cr = ycbcr_planes_from_the_standard(a, 0.2126, 0.0722)
    y2, cb2, cr2 = ycbcr_planes_from_the_standard(b, 0.2126, 0.0722)
    per_plane = [10 * math.log10(255**2 / np.mean((p - q) ** 2)) for p, q in ((y, y2), (cb, cb2), (cr, cr2))]
    assert psnr_ycbcr(a, b) == pytest.approx((6 * per_plane[0] + per_plane[1] + per_plane[2]) / 8, abs=1e-9)
    assert psnr_ycbcr(a, a.copy()) == math.inf


# --- banded computation (issue 22: memory; issue 24: speed) ---------------------------------------

def exact_plane_psnr(a, b, weights):
    """PSNR of the plane with RGB `weights`, from per-pixel integer differences in exact rationals."""
    from fractions import Fraction

    d = a.reshape(-1, 3).astype(np.int64) - b.reshape(-1, 3)
    moments = [[int(np.dot(d[:, i], d[:, j])) for j in range(3)] for i in range(3)]  # exact int64 sums
    w = [Fraction(float(v)) for v in weights]
    mse = sum(w[i] * w[j] * moments[i][j] for i in range(3) for j in range(3)) / len(d)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / float(mse))


@pytest.mark.parametrize("n,quality", [(24, 95), (3, 5)])
def test_psnrs_are_the_exact_value(kodim, n, quality):
    # the moments route rounds once; kodim24 at q95 is where the old per-pixel float sums were
    # furthest off (3.6e-12 dB in psnr_ycbcr)
    from rdbench.metrics.classic import LUMA_BT601, YCBCR_BT709, psnr_ycbcr_planes

    a = kodim(n)
    b = jpeg_roundtrip(a, quality)
    assert psnr_y(a, b) == exact_plane_psnr(a, b, LUMA_BT601)
    planes = psnr_ycbcr_planes(a, b)
    for plane, row in zip(planes, YCBCR_BT709):
        assert plane == exact_plane_psnr(a, b, row)
    assert psnr_rgb(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-12)


def large_image(kodim):
    """A real photo larger than a band: four Kodak images side by side (1536 x 1025, odd height)."""
    top = np.concatenate([kodim(1), kodim(2)], axis=1)
    bottom = np.concatenate([kodim(3), kodim(5)], axis=1)
    return np.ascontiguousarray(np.concatenate([top, bottom, top[:1]], axis=0))


@pytest.mark.parametrize("which", ["kodak", "large"])
def test_bands_give_the_whole_image_values(kodim, monkeypatch, which):
    from rdbench.metrics import classic

    a = kodim(7) if which == "kodak" else large_image(kodim)
    b = jpeg_roundtrip(a, 30)
    monkeypatch.setattr(classic, "BAND_PIXELS", 1 << 40)  # one band: the whole-image computation
    whole = Reference(a).measure(b)
    assert Reference(a).ms_ssim(b) == pytest.approx(oracle_ms_ssim(a, b), abs=1e-12)
    for band in (1 << 12, 1 << 16, 1 << 18):
        monkeypatch.setattr(classic, "BAND_PIXELS", band)
        rows = classic._rows_per_band(a.shape[1])
        assert rows < a.shape[0]  # two bands or more at scale 0
        for cache in (None, 0):  # the original's statistics kept, or recomputed band by band
            banded = classic.MsSsim(a, cache_pixels=cache).measure(b)
            assert banded["ms_ssim"] == pytest.approx(whole["ms_ssim"], abs=1e-12)
            assert banded["ms_ssim_db"] == pytest.approx(whole["ms_ssim_db"], abs=1e-10)
        banded = Reference(a).measure(b)
        for column in ("psnr_rgb", "psnr_y", "psnr_ycbcr"):
            assert banded[column] == whole[column]  # exact integer moments: identical


def test_measuring_a_large_image_stays_under_40_bytes_per_pixel(kodim):
    # before the bands, MS-SSIM and the PSNRs held ~300 bytes per pixel of float64 maps (a 64-Mpx
    # image took 20 GB); now: the pooled scales (12 B/px) and bands of fixed size
    import tracemalloc

    tile = np.concatenate([np.concatenate([kodim(n) for n in (1, 2, 3, 5)], axis=1)] * 4, axis=0)  # 3072 x 2048
    b = jpeg_roundtrip(tile, 20)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        values = Reference(tile).measure(b)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0.5 < values["ms_ssim"] < 1 and math.isfinite(values["psnr_ycbcr"])
    assert peak / tile.shape[0] / tile.shape[1] < 40, f"{peak / 2**20:.0f} MiB for {tile.shape}"
