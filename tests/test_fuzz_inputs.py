"""The input-parser fuzz targets in CI (tests/fuzz/fuzz_inputs.py): a short deterministic campaign
per target and the regression inputs, each run in the driver's child process so that a crash or
a hang is counted, not fatal; then hypothesis properties over BD inputs and spec strings.

The long campaign (its figures are in the issue's note):

    nice -n 19 python tests/fuzz/fuzz_inputs.py --target all --examples 10000 --seed 2026
"""

import json
import math
import os
import subprocess
import sys
import warnings

import pytest

from tests.conftest import REPO

FUZZ = REPO / "tests" / "fuzz"
DRIVER = [sys.executable, str(FUZZ / "fuzz_inputs.py")]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
TARGETS = ("images", "specs", "toml", "manifests", "results", "compressai", "bd")
CI_EXAMPLES = 250


@pytest.mark.parametrize("target", TARGETS)
def test_a_short_campaign_finds_no_crash_hang_or_unnamed_error(target, tmp_path):
    report_path = tmp_path / "fuzz.json"
    done = subprocess.run([*DRIVER, "--target", target, "--examples", str(CI_EXAMPLES), "--seed", "0",
                           "--save", str(tmp_path / "failures"), "--save-failures", "--json", str(report_path)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    row = json.loads(report_path.read_text())["targets"][target]
    assert row["inputs"] == CI_EXAMPLES
    assert row["other"] == row["crash"] == row["hang"] == 0, row["failures"]
    assert row["ok"] > 0 and row["named"] > 0  # the mutations reach both the parser's success and its checks


def test_each_regression_input_now_gives_a_named_error(tmp_path):
    report_path = tmp_path / "replay.json"
    done = subprocess.run([*DRIVER, "--replay", str(FUZZ / "regressions" / "inputs"), "--json", str(report_path)],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    results = json.loads(report_path.read_text())["results"]
    assert len(results) >= 15
    assert {name: r["outcome"] for name, r in results.items() if r["outcome"] != "named"} == {}
    assert {name.split("--")[0] for name in results} >= set(TARGETS) - {"specs"}


# -- properties ------------------------------------------------------------------------------------
from hypothesis import given, settings, strategies as st  # noqa: E402

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(1e-3, 1e3), st.floats(20, 50))
CURVES = st.lists(st.tuples(NUMBERS, NUMBERS), max_size=8)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(anchor=CURVES, test=CURVES, kind=st.sampled_from(["rate", "metric"]),
       method=st.sampled_from(["pchip", "cubic", "akima"]))
def test_bd_gives_a_finite_number_or_a_bd_error(anchor, test, kind, method):
    from rdbench.analysis.bd import BDError, LowOverlapWarning, bd

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = bd([a for a, _ in anchor], [b for _, b in anchor], [a for a, _ in test], [b for _, b in test],
                        kind=kind, method=method)
        except BDError:
            result = None
    assert result is None or math.isfinite(result.value)
    assert [w.category for w in caught if not issubclass(w.category, LowOverlapWarning)] == []


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(text=st.text(st.sampled_from(list("jpegwbavif:,= x1\x00é")), max_size=30))
def test_a_spec_string_loads_or_raises_a_value_error(text):
    from rdbench.codecs.base import CodecUnavailable
    from rdbench.codecs.registry import load

    try:
        load(text, check_available=False)
    except (ValueError, CodecUnavailable):
        pass
