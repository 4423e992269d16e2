"""Checkpoints from every supported CompressAI load under the installed one (issue 20).

tests/compat/ holds one tiny real checkpoint saved under CompressAI 1.2.6 (entropy bottleneck
parameters `_matrix0`, `_bias0`, `_factor0`) and one saved under 1.2.8 (`matrices.0`, ...), each
with the model id and stream digests its own environment computed. Whichever CompressAI runs
these tests, the other one's file is foreign: both must load, to the same id, stream and pixels.
(Regenerate with `python tests/compat/make_compat_checkpoints.py` under each version.)
"""

from pathlib import Path

import pytest

pytest.importorskip("compressai")
pytest.importorskip("constriction")

COMPAT = Path(__file__).resolve().parent / "compat"
FIXTURES = sorted(COMPAT.glob("hyperprior-compressai-*.pt"))


def _state_and_training(path):
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    return payload["state_dict"], payload["training"]


def test_a_fixture_saved_under_each_naming():
    versions = {path.stem.rsplit("-", 1)[1] for path in FIXTURES}
    assert {"1.2.6", "1.2.8"} <= versions
    for path in FIXTURES:
        state, training = _state_and_training(path)
        assert training["compressai"] == path.stem.rsplit("-", 1)[1]
        eb = {k for k in state if k.startswith("entropy_bottleneck.")}
        if training["compressai"] == "1.2.6":
            assert "entropy_bottleneck._matrix0" in eb and not any(".matrices." in k for k in eb)
        else:
            assert "entropy_bottleneck.matrices.0" in eb and not any("._matrix" in k for k in eb)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_checkpoint_of_any_supported_compressai_loads_and_codes_as_saved(path):
    import sys

    sys.path.insert(0, str(COMPAT))
    from make_compat_checkpoints import coded_digests

    from rdbench.learned.checkpoint import load

    _, training = _state_and_training(path)
    now = coded_digests(load(path))
    saved = {key: training[key] for key in now}
    assert now == saved, f"{path.name} (saved under CompressAI {training['compressai']}) codes differently here"


def test_learned_codec_spec_loads_the_foreign_checkpoint():
    import numpy as np

    from rdbench.codecs import load

    codecs = [load(f"learned:checkpoint={path}") for path in FIXTURES]
    image = np.zeros((40, 56, 3), np.uint8) + np.arange(56, dtype=np.uint8)[None, :, None] * 4
    streams = {codec.encode(image, 1) for codec in codecs}
    assert len(streams) == 1  # the same weights under either naming: the same stream
    assert codecs[0].decode(streams.pop()).shape == image.shape


def test_translate_compressai_keys_both_ways():
    from rdbench.learned.checkpoint import translate_compressai_keys

    by_version = {_state_and_training(p)[1]["compressai"]: _state_and_training(p)[0] for p in FIXTURES}
    old, new = by_version["1.2.6"], by_version["1.2.8"]
    assert set(old) != set(new)
    # to a given model's keys, exactly
    assert set(translate_compressai_keys(new, old.keys())) == set(old)
    assert set(translate_compressai_keys(old, new.keys())) == set(new)
    assert set(translate_compressai_keys(old, old.keys())) == set(old)
    # values travel untouched, keys outside the entropy bottleneck's three lists are left alone
    moved = translate_compressai_keys(new, old.keys())
    assert moved["entropy_bottleneck._matrix0"] is new["entropy_bottleneck.matrices.0"]
    assert moved["g_a.0.bias"] is new["g_a.0.bias"] and moved["entropy_bottleneck.quantiles"] is new["entropy_bottleneck.quantiles"]
    # without target keys: the installed CompressAI's naming, whichever file it came from
    from compressai.entropy_models import EntropyBottleneck

    installed = {f"entropy_bottleneck.{k}" for k in EntropyBottleneck(4).state_dict()}
    for state in (old, new):
        eb = {k for k in translate_compressai_keys(state) if k.startswith("entropy_bottleneck.")}
        assert eb == installed
