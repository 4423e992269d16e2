"""Each metric beyond the default set against its reference implementation, on real JPEG
reconstructions of Kodak images, with the tolerance written here and in README's metrics table."""

import io
import math
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from rdbench.metrics import Reference, registry


def jpeg_roundtrip(pixels, quality):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def measured(names, a, b):
    ref = Reference(a, registry.parse(names))
    values = ref.measure(b)
    assert not ref.failures and not ref.reasons, (ref.failures, ref.reasons)
    return values


# --- PSNR-HVS, PSNR-HVS-M -------------------------------------------------------------------------

@pytest.mark.parametrize("n,quality", [(1, 10), (13, 50), (23, 90)])
def test_psnr_hvs_agrees_with_the_cpp_implementation(kodim, n, quality):
    # psnr_hvsm's C++ backend (FFTW DCT) against the NumPy backend rdbench runs (scipy DCT); the
    # package's authors cross-check both against TID2013's published values
    pytest.importorskip("psnr_hvsm")
    from psnr_hvsm import _psnr_hvsm as cpp
    from psnr_hvsm.numpy import bt601ycbcr

    a = kodim(n)
    b = jpeg_roundtrip(a, quality)
    values = measured("psnr_hvs,psnr_hvs_m", a, b)
    hvs, hvsm = cpp.hvs_hvsm_mse(bt601ycbcr(a)[0], bt601ycbcr(b)[0])
    assert values["psnr_hvs"] == pytest.approx(10 * math.log10(1 / hvs), abs=1e-9)
    assert values["psnr_hvs_m"] == pytest.approx(10 * math.log10(1 / hvsm), abs=1e-9)
    assert values["psnr_hvs_m"] > values["psnr_hvs"]  # masking only forgives error


def test_psnr_hvs_uses_whole_blocks_and_gives_inf_when_identical(kodim):
    pytest.importorskip("psnr_hvsm")
    a = np.ascontiguousarray(kodim(5)[:101, :203])
    b = jpeg_roundtrip(a, 40)
    cropped = measured("psnr_hvs_m", np.ascontiguousarray(a[:96, :200]), np.ascontiguousarray(b[:96, :200]))
    assert measured("psnr_hvs_m", a, b)["psnr_hvs_m"] == cropped["psnr_hvs_m"]
    assert measured("psnr_hvs,psnr_hvs_m", a, a.copy()) == {"psnr_hvs": math.inf, "psnr_hvs_m": math.inf}
    tiny = Reference(np.ascontiguousarray(a[:7, :50]), registry.parse("psnr_hvs"))
    assert math.isnan(tiny.measure(np.ascontiguousarray(b[:7, :50]))["psnr_hvs"])
    assert "8 px" in tiny.reasons[0] and "50x7" in tiny.reasons[0]


# --- Butteraugli ----------------------------------------------------------------------------------

needs_butteraugli = pytest.mark.skipif(shutil.which("butteraugli_main") is None,
                                       reason="butteraugli_main not on PATH (Debian: apt-get install libjxl-devtools)")


@needs_butteraugli
@pytest.mark.parametrize("n,quality", [(4, 20), (19, 85)])
def test_butteraugli_is_what_butteraugli_main_prints(kodim, tmp_path, n, quality):
    a = kodim(n)
    b = jpeg_roundtrip(a, quality)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    out = subprocess.run(["butteraugli_main", tmp_path / "a.png", tmp_path / "b.png"], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    values = measured("butteraugli", a, b)
    assert values["butteraugli"] == float(out[0])
    assert values["butteraugli_3norm"] == float(out[1].removeprefix("3-norm:"))
    assert 0 < values["butteraugli_3norm"] < values["butteraugli"]


@needs_butteraugli
def test_butteraugli_orders_qualities_and_is_zero_when_identical(kodim):
    a = np.ascontiguousarray(kodim(8)[:200, :240])
    worse, better = (measured("butteraugli", a, jpeg_roundtrip(a, q))["butteraugli"] for q in (10, 90))
    assert worse > better > 0
    assert measured("butteraugli", a, a.copy()) == {"butteraugli": 0.0, "butteraugli_3norm": 0.0}
    assert registry.get("butteraugli").direction == "lower"


def test_a_metric_failing_on_one_item_leaves_nan_and_the_reason(kodim, monkeypatch):
    # butteraugli_main missing from PATH after the check (a broken install): NaN and why, not a failed item
    monkeypatch.setattr(registry.Metric, "missing", lambda self: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    a = np.ascontiguousarray(kodim(2)[:180, :180])
    ref = Reference(a, registry.parse("psnr_rgb,butteraugli"))
    values = ref.measure(jpeg_roundtrip(a, 50))
    assert math.isfinite(values["psnr_rgb"]) and math.isnan(values["butteraugli"])
    assert ref.failures and "butteraugli failed" in ref.failures[0]
