"""The numeric contract's identity: its parameters, the pinned digests of its tables, and the id
every bitstream carries. Imports nothing heavy (no torch), so the codec adapters can name the
contract in their version string; exact.py implements it and derives it (read its docstring),
symbols.py holds the coders it names.

A bitstream decodes correctly only where the decoder computes every distribution bit for bit as
the encoder did. Everything that decides those bits is listed in `_CONTRACT` below; its SHA-256
is CONTRACT_ID, written in every bitstream header (bitstream.py), so a stream coded under another
contract is refused by name instead of decoded to noise. Change any of it and CONTRACT_ID
changes: that is the point. The tables themselves are not shipped: exact.py computes them with
IEEE-754 basic operations only and checks them against TABLE_SHA256 before first use.
"""

from __future__ import annotations

import hashlib
import json

# Grids of the exact networks (exact.py, "Why 20 and 16 bits").
WEIGHT_BITS = 20
ACTIVATION_BITS = 16
BIAS_BITS = WEIGHT_BITS + ACTIVATION_BITS
SUM_LIMIT = 2.0 ** (52 - WEIGHT_BITS - ACTIVATION_BITS)

# The Gaussian scale table (CompressAI's get_scale_table): SCALE_LEVELS log-spaced scales from
# SCALE_BOUND to SCALE_MAX. SCALE_BOUND is also the lower bound of the models' GaussianConditional.
SCALE_BOUND = 0.11
SCALE_MAX = 256.0
SCALE_LEVELS = 64

# Interpolation tables: (lo, hi, step bits) of the normal CDF and of exp.
NORMAL_CDF_TABLE = (-12.0, 12.0, 12)
EXP_TABLE = (-40.0, 0.0, 10)

# SHA-256 of each table as little-endian float64 (exact.py computes them, then checks).
TABLE_SHA256 = {
    "normal_cdf": "c74483264d0ef29a651a8cd69263bcaab6ed8902b5e9d12a928bc859ddc681e4",
    "exp": "3690f7f958713c17166fe9ce216885cb87e9a64a02e439ace4ba47fb4c40a2aa",
    "scale": "4f922c15fdb5896b75a774d1df922950cf036188dae5c0b5a4c5bdd57d6fdbcc",
}

# The symbol coders (symbols.py) and the range coder they drive: part of the contract too.
CODERS = {
    "range coder": "constriction.stream.queue.RangeEncoder (32-bit words, little-endian)",
    "gaussian": "K = 1: QuantizedGaussian(-R, R), mean 0, σ snapped up to the scale table",
    "mixture": "K >= 2: Categorical(perfect=False) on centre - W .. centre + W, pmf from the tables",
    "factorized": "EntropyBottleneck's 16-bit quantized CDF per channel as Categorical(perfect=False), "
                  "channel-major; escapes: bit length Uniform(33), then Uniform(2^b) chunks of <= 16 bits",
}
# What symbols.check_constriction's fixed message encodes to (pinned with constriction 0.5.0).
CONSTRICTION_PROBE_SHA256 = "2de4b52f0c30ce0de9649e015039479ea4400acdb80b82bddb028d9e300213d2"

CONTRACT_REVISION = 2

_CONTRACT = {
    "revision": CONTRACT_REVISION,
    "grids": {"weight_bits": WEIGHT_BITS, "activation_bits": ACTIVATION_BITS, "bias_bits": BIAS_BITS,
              "sum_limit": SUM_LIMIT},
    "scale_table": [SCALE_BOUND, SCALE_MAX, SCALE_LEVELS],
    "normal_cdf_table": list(NORMAL_CDF_TABLE),
    "exp_table": list(EXP_TABLE),
    "table_sha256": TABLE_SHA256,
    "coders": CODERS,
    "constriction_probe_sha256": CONSTRICTION_PROBE_SHA256,
}
CONTRACT_ID = hashlib.sha256(json.dumps(_CONTRACT, sort_keys=True).encode()).digest()[:4]
CONTRACT_NAME = f"rdbench numeric contract {CONTRACT_REVISION} ({CONTRACT_ID.hex()})"
