"""SSIMULACRA 2 and VMAF, measured by their reference programs (`ssimulacra2`, libvmaf's `vmaf`),
on real JPEG reconstructions of Kodak crops: rdbench's value is the program's own printed value on
the same images, the metric orders qualities, and bad sizes give NaN with the reason. Tests that
run a program skip, with the reason, where it is not on PATH (see README, Metrics)."""

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from rdbench.metrics import Reference, registry
from tests.test_metric_agreement import jpeg_roundtrip, measured

needs_ssimulacra2 = pytest.mark.skipif(
    shutil.which("ssimulacra2") is None,
    reason="ssimulacra2 not on PATH (build libjxl's tools/ssimulacra2 or github.com/cloudinary/ssimulacra2)")
needs_vmaf = pytest.mark.skipif(
    shutil.which("vmaf") is None, reason="libvmaf's vmaf tool not on PATH (build github.com/Netflix/vmaf's libvmaf)")


def crop(kodim, n, h=256, w=384):
    return np.ascontiguousarray(kodim(n)[:h, :w])


# --- SSIMULACRA 2 ---------------------------------------------------------------------------------

@needs_ssimulacra2
@pytest.mark.parametrize("n,quality", [(1, 10), (13, 50), (23, 90)])
def test_ssimulacra2_is_what_the_program_prints(kodim, tmp_path, n, quality):
    a = crop(kodim, n)
    b = jpeg_roundtrip(a, quality)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    out = subprocess.run(["ssimulacra2", tmp_path / "a.png", tmp_path / "b.png"], capture_output=True, text=True,
                         check=True).stdout
    assert measured("ssimulacra2", a, b)["ssimulacra2"] == float(out)


@needs_ssimulacra2
def test_ssimulacra2_orders_qualities_and_is_100_when_identical(kodim):
    a = crop(kodim, 7)
    scores = [measured("ssimulacra2", a, jpeg_roundtrip(a, q))["ssimulacra2"] for q in (10, 40, 90)]
    assert scores == sorted(scores) and scores[0] < 30 < 80 < scores[2] < 100
    assert measured("ssimulacra2", a, a.copy()) == {"ssimulacra2": 100.0}
    metric = registry.get("ssimulacra2")
    assert metric.direction == "higher" and metric.identity().startswith("ssimulacra2 (reference) 2.")


def test_ssimulacra2_refuses_images_over_its_size_limit(kodim, monkeypatch):
    from rdbench.metrics import ssimulacra2_tool

    a = crop(kodim, 3)
    monkeypatch.setattr(ssimulacra2_tool, "MAX_PIXELS", a.shape[0] * a.shape[1] - 1)
    prepared = ssimulacra2_tool.prepare_ssimulacra2(a)
    assert math.isnan(prepared.measure(a, {})["ssimulacra2"])
    assert "refuses images over" in prepared.reason and "384x256" in prepared.reason
    with pytest.raises(ValueError, match="printed no score"):
        ssimulacra2_tool.parse_output("Could not load original image: a.png\n")


# --- VMAF -----------------------------------------------------------------------------------------

def test_vmaf_yuv_is_bt709_full_range_10_bit(kodim):
    # JPEG AI's framework (float32): RGB rounded to 10 bits, BT.709, clipped, rounded to 10 bits.
    # The same formula in float64 here: identical code values except at ties (x.5 in code values,
    # e.g. the chroma of grey pixels, 511.5), which float32's rounding of the sum may tip either way.
    from rdbench.metrics.vmaf_tool import yuv444_10bit

    a = crop(kodim, 5)
    planes = np.frombuffer(yuv444_10bit(a), "<u2").reshape(3, *a.shape[:2]).astype(int)
    rgb = np.round(a / 255.0 * 1023) / 1023
    y = rgb @ np.array([0.2126, 0.7152, 0.0722])
    expected = [y, (rgb[..., 2] - y) / 1.8556 + 0.5, (rgb[..., 0] - y) / 1.5748 + 0.5]
    for got, plane in zip(planes, expected):
        scaled = np.clip(plane, 0, 1) * 1023
        off = np.abs(got - np.round(scaled))
        tie = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-4
        assert off.max() <= 1 and not off[~tie].any()
    assert planes.max() <= 1023 and planes[0].max() > 900  # 10-bit code values, full range


@needs_vmaf
@pytest.mark.parametrize("n,quality", [(2, 10), (19, 60)])
def test_vmaf_is_what_libvmaf_prints(kodim, tmp_path, n, quality):
    from rdbench.metrics.vmaf_tool import MODEL, yuv444_10bit

    a = crop(kodim, n)
    b = jpeg_roundtrip(a, quality)
    (tmp_path / "a.yuv").write_bytes(yuv444_10bit(a))
    (tmp_path / "b.yuv").write_bytes(yuv444_10bit(b))
    subprocess.run(["vmaf", "-r", tmp_path / "a.yuv", "-d", tmp_path / "b.yuv", "-w", "384", "-h", "256", "-p", "444",
                    "-b", "10", "--model", f"version={MODEL}", "--csv", "-o", tmp_path / "log.csv", "-q"], check=True,
                   capture_output=True)
    header, row = (tmp_path / "log.csv").read_text().splitlines()[:2]
    printed = float(row.split(",")[header.split(",").index("vmaf")])
    assert measured("vmaf", a, b)["vmaf"] == pytest.approx(printed, abs=1e-6)  # JSON and CSV: 6 decimals each


@needs_vmaf
def test_vmaf_orders_qualities(kodim):
    a = crop(kodim, 7)
    scores = [measured("vmaf", a, jpeg_roundtrip(a, q))["vmaf"] for q in (10, 40, 90)]
    assert scores == sorted(scores) and 20 < scores[0] < scores[2] <= 100
    metric = registry.get("vmaf")
    assert metric.direction == "higher" and "vmaf_v0.6.1" in metric.identity()


def test_vmaf_gives_the_reason_on_images_it_cannot_measure(kodim, monkeypatch):
    from rdbench.metrics import vmaf_tool

    small = vmaf_tool.prepare_vmaf(crop(kodim, 4, 24, 200))
    assert math.isnan(small.measure(crop(kodim, 4, 24, 200), {})["vmaf"]) and "200x24" in small.reason
    monkeypatch.setattr(vmaf_tool, "MAX_PIXELS", 1000)
    assert "refuses images over 1000 px" in vmaf_tool.prepare_vmaf(crop(kodim, 4)).reason


def test_missing_programs_are_named_with_their_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither program anywhere
    for name, program in (("ssimulacra2", "ssimulacra2"), ("vmaf", "vmaf")):
        problem = registry.get(name).missing()
        assert f"needs the program(s) {program} on PATH" in problem and "build" in problem
    ref = Reference(np.zeros((64, 64, 3), np.uint8), registry.parse("psnr_rgb,vmaf,ssimulacra2"))
    values = ref.measure(np.zeros((64, 64, 3), np.uint8))
    assert math.isnan(values["vmaf"]) and math.isnan(values["ssimulacra2"]) and len(ref.reasons) == 2


def test_a_programs_version_is_read_from_what_it_prints(tmp_path):
    # a metric measured by a program carries that program's version in metric_versions
    import platform
    import sys

    assert registry.installed_version(f"program:{sys.executable} --version") == platform.python_version()
    assert registry.installed_version(f"program:{tmp_path / 'no-such-program'}") == "?"
