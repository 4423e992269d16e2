"""The anchors of issue 25: HEVC intra through pillow-heif (`heic`), VTM and HM declarative specs."""

import io
import math

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


# -- VTM and HM: declarative specs (codecs/vtm.toml, codecs/hm.toml) -----------------------------

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402


def _in_subprocess(code: str, **env) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, check=True)
    return done.stdout


@pytest.mark.parametrize("name, binary, variable", [
    ("vtm", "EncoderAppStatic", "RDBENCH_VTM_DIR"), ("hm", "TAppEncoderStatic", "RDBENCH_HM_DIR")])
def test_missing_reference_encoder_names_its_variable(tmp_path, name, binary, variable):
    if shutil.which(binary):
        pytest.skip(f"{binary} is on PATH here")
    out = _in_subprocess(f"from rdbench.codecs import load\nprint(load({name!r}, check_available=False).availability())",
                         **{variable: str(tmp_path)})
    assert f"{binary}" in out and f"${variable}" in out and "not found" in out


def test_vtm_without_its_config_file_says_where_it_looked(tmp_path):
    # real executables named as VTM's, but no cfg/encoder_intra_vtm.cfg beside them
    bin_dir = tmp_path / "VTM" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("EncoderAppStatic", "DecoderAppStatic"):
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\necho 'VVCSoftware: VTM Encoder Version 99.1 [Linux]'\n")
        exe.chmod(0o755)
    code = "from rdbench.codecs import load\nprint(load('vtm', check_available=False).availability())"
    out = _in_subprocess(code, RDBENCH_VTM_DIR=str(bin_dir))
    assert "encoder_intra_vtm.cfg not found" in out and "vtm:config=PATH" in out and "$RDBENCH_VTM_DIR" in out
    (tmp_path / "VTM" / "cfg").mkdir()
    (tmp_path / "VTM" / "cfg" / "encoder_intra_vtm.cfg").write_text("# intra\n")
    out = _in_subprocess(code + "\nc = load('vtm'); print(c.version); print(c.file_paths['config'])",
                         RDBENCH_VTM_DIR=str(bin_dir))
    assert out.splitlines()[0] == "None" and "vtm 99.1" in out
    assert out.splitlines()[2] == str(tmp_path / "VTM" / "cfg" / "encoder_intra_vtm.cfg")
    bad = _in_subprocess("from rdbench.codecs import load\n"
                         "print(load('vtm:config=/no/such.cfg', check_available=False).availability())",
                         RDBENCH_VTM_DIR=str(bin_dir))
    assert "config=/no/such.cfg: no such file" in bad


def test_yuv_conversion_is_compressai_bench_bit_for_bit(kodim):
    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("compressai.transforms.functional")
    from rdbench.codecs.yuv import planes_to_rgb, rgb_to_planes

    for n in (1, 4, 23):
        image = kodim(n)
        arr = image.transpose(2, 0, 1)
        rgb = torch.from_numpy(arr.copy()).float() / 255
        expected = (np.clip(functional.rgb2ycbcr(rgb).numpy(), 0, 1) * 255).astype(np.uint8)
        planes = rgb_to_planes(image, "ycbcr-bt709-compressai")
        assert planes == expected.tobytes()
        back = functional.ycbcr2rgb(torch.from_numpy(expected.astype(np.float32) / 255)).numpy()
        back = (back.clip(0, 1).transpose(1, 2, 0) * 255.0).astype(np.uint8)
        assert np.array_equal(planes_to_rgb(planes, *image.shape[:2], "ycbcr-bt709-compressai"), back)


def test_yuv444p_codec_spec_through_real_processes(tmp_path, kodim, monkeypatch):
    # a lossless "codec" (cp) over the raw frames: what comes back is the colour round trip alone
    (tmp_path / "rawcopy.toml").write_text(textwrap.dedent("""
        name = "rawcopy"
        binaries = ["cp"]
        extension = "yuv"
        input_format = "yuv444p"
        output_format = "yuv444p"
        colour = "ycbcr-bt709-compressai"
        qualities = [1]
        [commands]
        encode = ["{cp}", "{input}", "{output}"]
        decode = ["{cp}", "{input}", "{output}"]
    """))
    monkeypatch.setenv("RDBENCH_CODECS_PATH", str(tmp_path))
    from rdbench.codecs import registry

    registry._discovered.cache_clear()
    codec = load("rawcopy")
    image = np.ascontiguousarray(kodim(19)[:70, :45])
    data = codec.encode(image, 1)
    assert len(data) == 3 * 70 * 45
    decoded = codec.decode(data)
    from rdbench.codecs.yuv import planes_to_rgb, rgb_to_planes

    assert decoded.shape == image.shape
    assert np.array_equal(decoded, planes_to_rgb(rgb_to_planes(image, "ycbcr-bt709-compressai"), 70, 45,
                                                 "ycbcr-bt709-compressai"))
    assert 40 < psnr_rgb(image, decoded) < 60  # the truncations of CompressAI's conversion cost something
    from rdbench.codecs.base import CodecError

    with pytest.raises(CodecError, match="raw YUV, whose size only the encode call knows"):
        load("rawcopy").decode(data)  # another codec object never saw this bitstream's size
    registry._discovered.cache_clear()


def test_published_convention_measures_against_the_converted_original(kodim):
    # benchmarks/published_agreement.py: the PSNR of the June 2020 bench that made vtm.json/hm.json,
    # decoded planes and the encoder's own input planes both back in float RGB (not the original PNG)
    import importlib.util
    from pathlib import Path

    torch = pytest.importorskip("torch")
    functional = pytest.importorskip("compressai.transforms.functional")
    from rdbench.codecs.yuv import planes_to_rgb, rgb_to_planes

    path = Path(__file__).parents[1] / "benchmarks" / "published_agreement.py"
    spec = importlib.util.spec_from_file_location("published_agreement", path)
    agreement = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agreement)
    image = np.ascontiguousarray(kodim(19)[:70, :45])
    planes = np.frombuffer(rgb_to_planes(image, "ycbcr-bt709-compressai"), np.uint8).reshape(3, 70, 45)
    assert agreement.psnr_published_convention(image, planes.tobytes()) == math.inf  # the conversion loss is not counted
    decoded = planes.astype(np.int16)
    decoded[0, :20] += 3
    decoded[2, 30:] -= 5
    decoded = np.clip(decoded, 0, 255).astype(np.uint8)
    value = agreement.psnr_published_convention(image, decoded.tobytes())

    def back(p):  # CompressAI's own conversion back to RGB, float, clipped
        return functional.ycbcr2rgb(torch.from_numpy(p.astype(np.float32) / 255)).clamp(0, 1).double().numpy()

    expected = -10 * math.log10(np.mean((back(planes) - back(decoded)) ** 2))
    assert value == pytest.approx(expected, abs=1e-4)
    # rdbench's convention: the 8-bit RGB reconstruction against the original, conversion loss included
    assert psnr_rgb(image, planes_to_rgb(decoded.tobytes(), 70, 45, "ycbcr-bt709-compressai")) < value - 1
    with pytest.raises(ValueError, match="expected 9450 for 45x70"):
        agreement.psnr_published_convention(image, decoded.tobytes()[:-1])


def _reference_encoder(name):
    codec = load(name, check_available=False)
    problem = codec.availability()
    if problem:
        pytest.skip(f"{name} unavailable: {problem}")
    return codec


@pytest.mark.parametrize("name", ["vtm", "hm"])
def test_reference_encoder_codes_a_kodak_crop(name, kodim):
    codec = _reference_encoder(name)
    image = np.ascontiguousarray(kodim(23)[:72, :104])  # not a multiple of 8: conformance window padding
    results = []
    for qp in (42, 27):
        data = codec.encode(image, qp)
        decoded = codec.decode(data)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        results.append((len(data), psnr_rgb(image, decoded)))
    (big, psnr_hi), (small, psnr_lo) = results[1], results[0]
    assert small < big and psnr_lo < psnr_hi and psnr_hi > 33
    assert codec.version.startswith(name) and "unknown" not in codec.version


# -- the published CLIC 2020 curves (rdbench/reference/clic2020-professional) --------------------


def test_clic_published_curves_carry_their_set_not_kodak():
    from rdbench.analysis.published import published, published_names, read_compressai_json
    from rdbench.packaged import reference_folder

    names = [n for n in published_names() if n.startswith("clic2020-professional/")]
    assert len(names) == 31 and "clic2020-professional/vtm" in names
    for name in ("clic2020-professional/vtm", "clic2020-professional/bpg", "clic2020-professional/hm"):
        curve = published(name)
        assert set(curve["dataset"]) == {"clic2020-professional"} and set(curve["image_set"]) == {"unlisted"}
        assert curve["source"].iloc[0].startswith("published: CompressAI results/image/clic2020-professional/")
        assert curve["bpp"].is_monotonic_increasing and curve["psnr_rgb"].is_monotonic_increasing
    # the same file given as an input is the same curve (never taken as a Kodak mean)
    as_file = read_compressai_json(reference_folder() / "clic2020-professional" / "vtm.json")
    assert set(as_file["dataset"]) == {"clic2020-professional"}
    with pytest.raises(ValueError, match="no published curves for 'tecnick'"):
        published("tecnick/vtm")


def test_clic_published_curves_are_not_compared_with_other_images(kodim):
    # a measured Kodak curve and the CLIC VTM curve: different datasets, the CLIC one unlisted
    import pandas as pd

    from rdbench.analysis.published import published
    from rdbench.analysis.summary import references_for

    kodak_vtm = published("vtm").assign(source="measured")
    clic = published("clic2020-professional/vtm")
    assert references_for([clic], kodak_vtm, allow_mismatched=False) == []
    shown = references_for([clic], kodak_vtm, allow_mismatched=True)
    assert len(shown) == 1 and "MISMATCHED: clic2020-professional, images not listed" in shown[0]["codec"].iloc[0]
    assert isinstance(clic, pd.DataFrame)


def test_heic_tune_psnr_changes_the_encoding(heic, kodim):
    # x265 --tune psnr turns psy-rd and AQ off: another bitstream, with more PSNR at one quality setting
    image = np.ascontiguousarray(kodim(13)[:160, :160])
    tuned = load("heic:tune=psnr")
    plain, psnr_tuned = heic.encode(image, 40), tuned.encode(image, 40)
    assert plain != psnr_tuned
    assert psnr_rgb(image, tuned.decode(psnr_tuned)) > psnr_rgb(image, heic.decode(plain))


# -- reference encoders take minutes per item: the spec's timeout, the progress bar; HM needs SCM --


def _fake_hm(bin_dir, help_lines: str) -> None:
    """Executables named as HM's (the binaries are not on the test machines): an encoder whose
    --help prints `help_lines`, and HM's intra 4:4:4 configuration beside bin/."""
    bin_dir.mkdir(parents=True)
    (bin_dir.parent / "cfg").mkdir()
    (bin_dir.parent / "cfg" / "encoder_intra_main_rext.cfg").write_text("# intra\n")
    for name in ("TAppEncoderStatic", "TAppDecoderStatic"):
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\necho 'HM software: Encoder Version [16.20] (including RExt)[Linux][GCC 12.2.0][64 bit]'\n"
                       f"[ \"$1\" = --help ] && printf '%s\\n' {help_lines}\nexit 1\n")
        exe.chmod(0o755)


def test_hm_without_the_scm_extension_is_refused_before_any_work(tmp_path):
    from .test_faults import RDBENCH, make_images

    bin_dir = tmp_path / "HM" / "bin"
    _fake_hm(bin_dir, "'  --InputChromaFormat  ...' '  --ConformanceMode  ...'")  # a plain HM's help
    out = tmp_path / "out"
    env = {**os.environ, "RDBENCH_HM_DIR": str(bin_dir)}
    done = subprocess.run([*RDBENCH, "run", "--dataset", make_images(tmp_path / "images", 1), "--codec", "hm",
                           "--quality", "42", "--out", out, "--no-progress"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "no --CUNoSplitIntraACT" in done.stderr and "HM-16.20+SCM-8.8" in done.stderr, done.stderr
    assert str(bin_dir / "TAppEncoderStatic") in done.stderr and "RDBENCH_HM_DIR" in done.stderr
    assert not (out / "results.csv").exists()
    # the same executables once their help lists the SCM option: available
    for f in bin_dir.iterdir():
        f.unlink()
    bin_dir.rmdir()
    (tmp_path / "HM" / "cfg" / "encoder_intra_main_rext.cfg").unlink()
    (tmp_path / "HM" / "cfg").rmdir()
    _fake_hm(bin_dir, "'  --InputChromaFormat  ...' '  --CUNoSplitIntraACT  ...'")
    code = "from rdbench.codecs import load\nprint(load('hm', check_available=False).availability())"
    assert _in_subprocess(code, RDBENCH_HM_DIR=str(bin_dir)).strip() == "None"


def test_reference_encoder_specs_allow_an_hour_per_call_unless_told():
    from rdbench.conventions import DEFAULT_TIMEOUT_S

    for name in ("vtm", "hm"):
        codec = load(name, check_available=False)
        codec.configure(timeout_s=None)  # `rdbench run` without --timeout
        assert codec.timeout_s == 3600
        codec.configure(timeout_s=20)
        assert codec.timeout_s == 20
    jpeg_xl = load("jxl", check_available=False)
    jpeg_xl.configure(timeout_s=None)
    assert jpeg_xl.timeout_s == DEFAULT_TIMEOUT_S == 600


@pytest.mark.parametrize("bad", ["0", "-5", "'long'", "true"])
def test_spec_timeout_must_be_positive_seconds(tmp_path, bad):
    from rdbench.codecs.external import CodecSpecError, load_definition

    spec = tmp_path / "slow.toml"
    spec.write_text(textwrap.dedent(f"""
        name = "slow"
        binaries = ["cp"]
        extension = "png"
        qualities = [1]
        timeout = {bad}
        [commands]
        encode = ["{{cp}}", "{{input}}", "{{output}}"]
        decode = ["{{cp}}", "{{input}}", "{{output}}"]
    """))
    with pytest.raises(CodecSpecError, match=r"slow\.toml: 'timeout' must be a number of seconds above 0"):
        load_definition(spec)


def test_spec_timeout_is_the_default_and_run_timeout_overrides_it(tmp_path):
    from .test_faults import RDBENCH, csv_rows, make_images, write_fake_codecs

    env = {**os.environ, "RDBENCH_CODECS_PATH": str(write_fake_codecs(tmp_path / "codecs", {"fake-hang": ("hang", "copy")},
                                                                       extra="timeout = 2"))}
    images = make_images(tmp_path / "images", 1)
    cmd = [*RDBENCH, "run", "--dataset", images, "--codec", "fake-hang", "--quality", "1", "--out", tmp_path / "out",
           "--workers", "1", "--no-progress", "--no-report"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "encoder timed out after 2 s" in csv_rows(tmp_path / "out")[0]["error"]
    done = subprocess.run([*cmd, "--retry-failed", "--timeout", "1"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "encoder timed out after 1 s" in csv_rows(tmp_path / "out")[-1]["error"]


def test_progress_bar_clock_moves_while_an_item_takes_long(tmp_path):
    # on a terminal the bar is redrawn each second even when no item finishes (a VTM item takes minutes)
    import fcntl
    import pty
    import struct
    import termios

    from .test_faults import RDBENCH, make_images, write_fake_codecs

    env = {**os.environ, "RDBENCH_CODECS_PATH": str(write_fake_codecs(tmp_path / "codecs", {"fake-hang": ("hang", "copy")},
                                                                       extra="timeout = 4"))}
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen([*RDBENCH, "run", "--dataset", make_images(tmp_path / "images", 1), "--codec", "fake-hang",
                             "--quality", "1", "--out", tmp_path / "out", "--workers", "1", "--no-report"],
                            stdout=subprocess.DEVNULL, stderr=secondary, env=env)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the run ended: the terminal is closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert proc.wait(timeout=120) == 3
    text = seen.decode(errors="replace")
    # one item, unfinished for 4 s: the bar showed 0/1 at several elapsed times before 1/1
    waiting = {t for t in ("00:01", "00:02", "00:03") if f"0/1 [{t}" in text}
    assert len(waiting) >= 2, repr(text[:3000])
    assert "1/1 [" in text, text[-2000:]
