import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rdbench.codecs import available, load, parse_spec
from rdbench.codecs.base import split_spec_list
from rdbench.metrics import psnr_rgb

ALL = sorted(name for name, _, _ in available(include_learned=False))  # learned: tests/test_learned.py


def test_the_expected_codecs_are_registered():
    assert {"jpeg", "webp", "jpeg2000", "bpg", "avif", "jxl", "cwebp", "opj"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_codec_roundtrip_on_kodak(name, kodim):
    codec = load(name, check_available=False)
    problem = codec.availability()
    if problem:
        pytest.skip(f"{name} unavailable: {problem}")
    image = np.ascontiguousarray(kodim(23)[:256, :384])
    lo, hi = codec.qualities[0], codec.qualities[-1]
    results = []
    for q in (lo, hi):
        data = codec.encode(image, q)
        decoded = codec.decode(data)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        results.append((len(data), psnr_rgb(image, decoded)))
    (small_bytes, _), (big_bytes, _) = sorted(results)
    # the two ends of the ladder give different rates, and more bytes buy more PSNR
    assert small_bytes < big_bytes
    assert sorted(results)[0][1] < sorted(results)[1][1]
    assert max(p for _, p in results) > 30
    assert codec.version and "unknown" not in codec.version


def test_jpeg_444_differs_from_420(kodim):
    image = np.ascontiguousarray(kodim(23)[:256, :256])
    a, b = load("jpeg").encode(image, 75), load("jpeg:subsampling=444").encode(image, 75)
    assert len(b) > len(a)


def test_jpeg2000_psnr_mode_hits_its_target(kodim):
    image = kodim(1)
    codec = load("jpeg2000")
    for target in (28, 36):
        assert abs(psnr_rgb(image, codec.decode(codec.encode(image, target))) - target) < 1.0


def test_spec_parsing_and_lists():
    s = parse_spec("bpg:encoder=jctvc,subsampling=420")
    assert (s.name, s.options, s.text) == ("bpg", {"encoder": "jctvc", "subsampling": "420"}, "bpg:encoder=jctvc,subsampling=420")
    assert split_spec_list(["jpeg:subsampling=444,optimize=1,webp", "bpg"]) == ["jpeg:subsampling=444,optimize=1", "webp", "bpg"]


def test_bad_specs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown codec 'nope'"):
        load("nope")
    with pytest.raises(ValueError, match="unknown option.*colour.*subsampling"):
        load("jpeg:colour=1")
    with pytest.raises(ValueError, match="subsampling='411'"):
        load("jpeg:subsampling=411")
    with pytest.raises(ValueError, match="quality 150 outside 1..100"):
        load("jpeg").check_quality(150)


def test_missing_binary_is_unavailable_with_hint(tmp_path):
    (tmp_path / "ghost.toml").write_text(textwrap.dedent("""
        name = "ghost"
        binaries = ["ghost_enc", "ghost_dec"]
        install_hint = "apt-get install ghost"
        extension = "gh"
        qualities = [1, 2]
        [commands]
        encode = ["{ghost_enc}", "{input}", "{output}", "{quality}"]
        decode = ["{ghost_dec}", "{input}", "{output}"]
    """))
    code = f"""
import os; os.environ['RDBENCH_CODECS_PATH'] = {str(tmp_path)!r}
from rdbench.codecs import load, CodecUnavailable
try:
    load('ghost')
except CodecUnavailable as e:
    print(e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "ghost_enc, ghost_dec not found" in out and "apt-get install ghost" in out


def _fake_bpg(folder, encoders: str) -> None:
    """Executables named bpgenc/bpgdec whose -h prints the lines of bpgenc 0.9.8's that rdbench reads."""
    for name in ("bpgenc", "bpgdec"):
        exe = folder / name
        exe.write_text("#!/bin/sh\necho 'BPG Image Encoder version 9.9.9'\n"
                       f"echo '-e encoder           select the HEVC encoder ({encoders}, default = x265)'\n")
        exe.chmod(0o755)


def test_bpg_finds_binaries_in_its_env_dir(tmp_path, monkeypatch):
    # a real executable named bpgenc in RDBENCH_BPG_DIR is found before PATH
    _fake_bpg(tmp_path, "x265")
    monkeypatch.setenv("RDBENCH_BPG_DIR", str(tmp_path))
    codec = load("bpg")
    assert codec.paths["bpgenc"] == str(tmp_path / "bpgenc")
    assert codec.version == "bpg 9.9.9"


def test_bpg_encoder_the_build_lacks_is_refused_before_any_work(tmp_path, monkeypatch):
    # libbpg builds without jctvc unless asked; such a bpgenc fails `-e jctvc` on every item, so
    # bpg:encoder=jctvc is unavailable, from bpgenc -h's list of encoders (the spec's [check])
    from .test_faults import RDBENCH, make_images

    _fake_bpg(tmp_path, "x265")
    monkeypatch.setenv("RDBENCH_BPG_DIR", str(tmp_path))
    assert load("bpg", check_available=False).availability() is None
    problem = load("bpg:encoder=jctvc", check_available=False).availability()
    assert "-h does not mention 'jctvc'" in problem and "built without the jctvc encoder" in problem
    out = tmp_path / "out"
    done = subprocess.run([*RDBENCH, "run", "--dataset", make_images(tmp_path / "images", 1), "--codec",
                           "bpg:encoder=jctvc", "--quality", "30", "--out", out, "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "built without the jctvc encoder" in done.stderr and not (out / "results.csv").exists()
    _fake_bpg(tmp_path, "x265 jctvc")  # a build with both
    assert load("bpg:encoder=jctvc", check_available=False).availability() is None


def test_real_bpgenc_lists_its_encoders(kodim):
    # the same [check] against the real bpgenc, where it is built (RDBENCH_BPG_DIR or PATH)
    codec = load("bpg", check_available=False)
    if problem := codec.availability():
        pytest.skip(f"bpg unavailable: {problem}")
    jctvc = load("bpg:encoder=jctvc", check_available=False)
    if jctvc.availability() is None:  # a build with JCTVC: it codes
        assert len(jctvc.encode(np.ascontiguousarray(kodim(23)[:64, :64]), 37)) > 0
    else:  # without: the encoder refuses it, as the check said
        from rdbench.codecs import CodecError

        with pytest.raises(CodecError, match="Unsupported encoder"):
            jctvc.encode(np.ascontiguousarray(kodim(23)[:64, :64]), 37)


def test_encoder_failure_is_a_codec_error(tmp_path, kodim):
    from rdbench.codecs import CodecError
    from rdbench.codecs.external import ExternalCodec, load_definition

    (tmp_path / "fails.toml").write_text(textwrap.dedent("""
        name = "fails"
        binaries = ["sh"]
        extension = "x"
        qualities = [1]
        [commands]
        encode = ["{sh}", "-c", "echo broken pipe dream >&2; exit 7"]
        decode = ["{sh}", "-c", "exit 0"]
    """))
    codec = ExternalCodec(load_definition(tmp_path / "fails.toml"))
    with pytest.raises(CodecError, match="encoder exited with 7: broken pipe dream"):
        codec.encode(kodim(1)[:64, :64].copy(), 1)


def test_entry_point_codec_from_another_package(tmp_path, kodim):
    # a real installed-distribution layout: dist-info with entry_points.txt, found via sys.path
    (tmp_path / "gray_codec.py").write_text(textwrap.dedent("""
        import numpy as np
        from rdbench.codecs import Codec

        class Gray(Codec):
            description = "test codec from another package"
            qualities = (1,)
            version = "gray 1.0"

            def encode(self, image, quality):
                return image.mean(axis=2).astype(np.uint8).tobytes() + bytes([image.shape[0] // 256, image.shape[0] % 256])

            def decode(self, data):
                h = data[-2] * 256 + data[-1]
                g = np.frombuffer(data[:-2], np.uint8).reshape(h, -1)
                return np.repeat(g[..., None], 3, axis=2)
    """))
    dist = tmp_path / "gray_codec-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gray-codec\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rdbench.codecs]\ngray = gray_codec:Gray\n")
    code = f"""
import sys; sys.path.insert(0, {str(tmp_path)!r})
import numpy as np
from rdbench.codecs import load, codec_names
assert 'gray' in codec_names()
c = load('gray')
img = np.zeros((300, 200, 3), np.uint8) + 7
print(c.version, c.decode(c.encode(img, 1)).shape)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gray 1.0 (300, 200, 3)"
