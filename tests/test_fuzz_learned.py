"""The learned-bitstream fuzz target in CI: a short deterministic campaign and the regression
inputs, each decoded in a child process (tests/fuzz/fuzz_learned.py) so that a crash is counted,
not fatal; then in-process checks of what each regression input must now say, and a hypothesis
property over header fields and payload bits.

The long campaign (its figures are in the issue's note):

    python tests/fuzz/fuzz_learned.py --inputs 1250 --seed 2026    # 12,500 inputs over the 8 models and 2 containers
"""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("compressai")
pytest.importorskip("constriction")

from tests.conftest import REPO  # noqa: E402

FUZZ = REPO / "tests" / "fuzz"
GOLDEN = REPO / "tests" / "golden"
DRIVER = [sys.executable, str(FUZZ / "fuzz_learned.py")]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def test_a_short_campaign_over_every_variant_finds_no_crash_hang_or_unnamed_error(tmp_path):
    report_path = tmp_path / "fuzz.json"
    done = subprocess.run([*DRIVER, "--inputs", "16", "--seed", "0", "--timeout", "60", "--save", str(tmp_path / "failures"),
                           "--json", str(report_path)], capture_output=True, text=True, env=ENV, timeout=600)
    report = json.loads(report_path.read_text())
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    totals = report["totals"]
    assert totals["inputs"] == 16 * 10 and len(report["targets"]) == 10  # 8 learned variants, 2 containers
    assert totals["other"] == totals["crash"] == totals["hang"] == 0, report
    assert totals["ok"] > 0 and totals["BitstreamError"] > 0 and totals["ContainerError"] > 0  # decoders and checks reached


def test_regression_inputs_decode_without_crash_in_a_child_process():
    done = subprocess.run([*DRIVER, "--replay", str(FUZZ / "regressions"), "--timeout", "120"], capture_output=True, text=True,
                          env=ENV, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert len(list((FUZZ / "regressions").glob("*.rdbl"))) >= 10


# what each regression input must say now (run in-process: the child-process replay above
# would have caught a crash first)
EXPECTED = {
    "factorized--height-48-to-1000.rdbl": None,  # decodes (to garbage): a crafted size with the CRC resealed
    "factorized--width-40-to-2000.rdbl": None,
    "mean-scale--width-64-to-1024.rdbl": "bitstream damaged: its latents are outside anything",
    "mean-scale--height-48-to-65.rdbl": "bitstream damaged: its latents are outside anything",
    "joint-k5--side-1048576.rdbl": "1048576x1048576 image .* more than the decoder's limit of 268,435,456: .* max_pixels=N",
    "joint-k5--symbol-range-0.rdbl": "symbol range 0 outside 1..65535",
    "joint-k3-K2--symbol-range-65535.rdbl": "symbol range 65535 outside 1..4096",
    "joint-k5--random-payload.rdbl": "bitstream damaged",
    "hyperprior--z-of-2e6.rdbl": r"bitstream damaged: .*\(h_s.0: partial sums",
    "joint-k5--z-of-1e6.rdbl": r"bitstream damaged: .*\(h_s.0: partial sums",
}


@pytest.fixture(scope="module")
def codec_for():
    from rdbench.codecs import load

    cache = {}

    def get(target: str, max_pixels: int | None = None):
        key = (target, max_pixels)
        if key not in cache:
            extra = f",max_pixels={max_pixels}" if max_pixels else ""
            cache[key] = load(f"learned:checkpoint={GOLDEN / 'checkpoints' / target}.pt{extra}")
        return cache[key]

    return get


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_regression_input_gives_its_named_error(name, codec_for, monkeypatch):
    from rdbench.learned.bitstream import BitstreamError

    monkeypatch.delenv("RDBENCH_MAX_PIXELS", raising=False)
    data = (FUZZ / "regressions" / name).read_bytes()
    codec = codec_for(name.split("--")[0], 2**20 if EXPECTED[name] is None else None)
    if EXPECTED[name] is None:
        assert codec.decode(data).dtype.name == "uint8"
    else:
        with pytest.raises(BitstreamError, match=EXPECTED[name]):
            codec.decode(data)


CONTAINER_EXPECTED = {  # found by the container targets: CompressAI's decoder aborted the process on them
    "container-mean-scale--shape-1x128.rdbc": r"latent shape \(1, 128\), but this model's for a 72x40 image is \(1, 2\)",
    "container-mean-scale--shape-2x127.rdbc": r"latent shape \(2, 127\), but this model's for a 33x97 image is \(2, 1\)",
}


@pytest.mark.parametrize("name", sorted(CONTAINER_EXPECTED))
def test_each_container_regression_input_gives_its_named_error(name):
    sys.path.insert(0, str(FUZZ))
    import fuzz_learned

    from rdbench.codecs import load
    from rdbench.learned.container import ContainerError

    codec = load(fuzz_learned.container_targets()[name.split("--")[0]]["spec"])
    with pytest.raises(ContainerError, match=CONTAINER_EXPECTED[name]):
        codec.decode((FUZZ / "regressions" / name).read_bytes())


# -- a property: header fields and payload bits, checksum resealed --------------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

FIELDS = {"height": (17, "<I"), "width": (21, "<I"), "rate": (25, "<B"), "symbol_range": (26, "<H"), "z_length": (28, "<I")}
STREAMS = sorted(p.name for p in (GOLDEN / "streams").glob("*.rdbl"))


@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.sampled_from(STREAMS), field=st.sampled_from(sorted(FIELDS)),
       value=st.one_of(st.integers(0, 300), st.sampled_from([2**8 - 1, 2**16 - 1, 2**16, 2**20, 2**31, 2**32 - 1])),
       flips=st.lists(st.integers(0, 10_000), max_size=4))
def test_any_header_field_or_payload_flip_decodes_or_raises_a_bitstream_error(stream, field, value, flips, codec_for):
    from rdbench.codecs.base import CodecError
    from rdbench.learned.bitstream import HEADER_BYTES, reseal

    data = bytearray((GOLDEN / "streams" / stream).read_bytes())
    offset, fmt = FIELDS[field]
    struct.pack_into(fmt, data, offset, min(value, 2 ** (8 * struct.calcsize(fmt)) - 1))
    for bit in flips:
        position = HEADER_BYTES + (bit // 8) % (len(data) - HEADER_BYTES)
        data[position] ^= 1 << (bit % 8)
    codec = codec_for(Path(stream).stem.split("--")[0], 2**20)
    try:
        image = codec.decode(reseal(bytes(data)))
    except CodecError:  # BitstreamError is one
        return
    assert image.dtype.name == "uint8" and image.ndim == 3
