"""Golden conformance vectors of the learned codecs: committed checkpoints (every variant, K = 1
and 2), streams they made of two committed images, and the SHA-256 of each ŷ and decoded image.
Every machine must decode them to the same bits, as codec conformance streams demand.

These tests fail whenever the decoder's result, the encoder's output or the numeric contract
changes. If that change is deliberate (a new format version or contract), regenerate and commit:

    python tests/golden/make_golden.py

(see its docstring; `--retrain` also retrains the checkpoints, on the training photos, never Kodak).
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("compressai")
pytest.importorskip("constriction")

from PIL import Image  # noqa: E402

GOLDEN = Path(__file__).resolve().parent / "golden"
MANIFEST = json.loads((GOLDEN / "vectors.json").read_text())
VECTORS = MANIFEST["vectors"]
REGENERATE = "if the change is deliberate, regenerate with `python tests/golden/make_golden.py` and commit"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def codecs():
    """{checkpoint: the codec adapter `learned:checkpoint=...`}, loaded once."""
    from rdbench.codecs import load

    return {v["checkpoint"]: load(f"learned:checkpoint={GOLDEN / v['checkpoint']}") for v in VECTORS}


def test_the_vectors_cover_every_variant_both_mixture_counts_and_both_rates():
    from rdbench.learned.checkpoint import load

    configs = {(c.variant, c.K) for c in (load(GOLDEN / v["checkpoint"]).model.config for v in VECTORS)}
    from rdbench.learned.config import VARIANTS

    assert {variant for variant, _ in configs} == set(VARIANTS)
    assert {K for _, K in configs} == {1, 2}
    assert {v["rate"] for v in VECTORS} == {0, 1}
    size = sum(f.stat().st_size for f in GOLDEN.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    assert size < 600_000, size  # small enough to commit


def test_vectors_are_of_this_format_and_contract():
    from rdbench.learned.bitstream import FORMAT_VERSION
    from rdbench.learned.contract import CONTRACT_ID, CONTRACT_NAME

    assert (MANIFEST["format_version"], MANIFEST["contract_id"]) == (FORMAT_VERSION, CONTRACT_ID.hex()), (
        f"the golden vectors are of format {MANIFEST['format_version']}, contract {MANIFEST['contract_id']}; "
        f"this rdbench writes format {FORMAT_VERSION}, {CONTRACT_NAME}: {REGENERATE}"
    )


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: Path(v["stream"]).stem)
def test_golden_stream_decodes_to_its_digests_on_this_machine(vector, codecs):
    codec = codecs[vector["checkpoint"]]
    data = (GOLDEN / vector["stream"]).read_bytes()
    assert sha256(data) == vector["stream_sha256"], "the committed stream itself was changed"
    decoded = codec.decode(data)
    image = np.asarray(Image.open(GOLDEN / vector["image"]).convert("RGB"))
    assert decoded.shape == image.shape and decoded.dtype == np.uint8
    assert sha256(np.ascontiguousarray(decoded).tobytes()) == vector["decoded_sha256"], (
        f"decoded image differs from the golden one: this machine or this rdbench decodes {vector['stream']} "
        f"differently (a broken numeric contract?); {REGENERATE}"
    )
    coder, _ = codec._coder_for(vector["rate"] + 1)
    assert coder.model_id.hex() == vector["model_id"]
    y_hat, header = coder.decode_latent(data)
    assert list(y_hat.shape) == vector["y_hat_shape"] and header.rate == vector["rate"]
    assert sha256(np.ascontiguousarray(y_hat.numpy(), dtype="<f8").tobytes()) == vector["y_hat_sha256"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: Path(v["stream"]).stem)
def test_the_encoder_still_writes_the_golden_stream(vector, codecs):
    """Regeneration must be deliberate: a changed encoder fails here. (The float32 g_a could, on
    a machine whose convolutions round differently, move a latent across a rounding boundary; on
    these 64 to 128 symbols per stream that is very unlikely, and the decode test above is the
    conformance check.)"""
    codec = codecs[vector["checkpoint"]]
    image = np.asarray(Image.open(GOLDEN / vector["image"]).convert("RGB"))
    data = codec.encode(image, vector["rate"] + 1)
    assert data == (GOLDEN / vector["stream"]).read_bytes(), f"the encoder's output for {vector['stream']} changed: {REGENERATE}"
