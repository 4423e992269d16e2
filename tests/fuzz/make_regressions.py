"""Write the regression inputs of the learned-bitstream fuzz target (tests/fuzz/regressions/):
one input for each crash or unclean error found so far, built from the golden streams, named
TARGET--what.rdbl (TARGET: the golden checkpoint that decodes it). Each is decoded in CI by
tests/test_fuzz_learned.py, which also checks the error it must now give.

    python tests/fuzz/make_regressions.py

Found on main before format version 2 (issue 13), now each a BitstreamError:
- SIGSEGV: height or width changed in the header of a factorized or a mean-scale stream
  (CompressAI's rANS decoder read past the end of the z or y string);
- RuntimeError "DefaultCPUAllocator: can't allocate memory": a 1,048,576-pixel side;
- PanicException "support.end() > support.start()": symbol range 0;
- AssertionError "compressed data that is invalid": a random payload;
- ExactnessError "h_s.0: partial sums could reach ..." for a changed height (129 for 128).
Inputs saved by the fuzz driver (tests/fuzz/failures/) that were fixed are copied here too.
"""

from __future__ import annotations

import json
import random
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GOLDEN = REPO / "tests" / "golden"
sys.path.insert(0, str(REPO))

from rdbench.learned.bitstream import reseal  # noqa: E402


def golden(stem: str) -> bytes:
    return (GOLDEN / "streams" / f"{stem}.rdbl").read_bytes()


def with_fields(data: bytes, **fields) -> bytes:
    layout = {"height": (17, "<I"), "width": (21, "<I"), "rate": (25, "<B"), "symbol_range": (26, "<H"), "z_length": (28, "<I")}
    out = bytearray(data)
    for name, value in fields.items():
        offset, fmt = layout[name]
        struct.pack_into(fmt, out, offset, value)
    return reseal(bytes(out))


def huge_z(stem: str, value: float) -> bytes:
    """The stream with its z part replaced by a z whose every value is `value` (h_s's guard trips)."""
    import torch

    from rdbench.learned import bitstream, checkpoint
    from rdbench.learned.coding import LatentCoder, latent_size

    vector = next(v for v in json.loads((GOLDEN / "vectors.json").read_text())["vectors"] if Path(v["stream"]).stem == stem)
    loaded = checkpoint.load(GOLDEN / vector["checkpoint"])
    coder = LatentCoder(loaded.model, loaded.model_id)
    bs = bitstream.parse(golden(stem))
    h, w = latent_size(bs.height, bs.width)
    z = torch.full((1, loaded.model.config.N, h // 4, w // 4), value)
    z_bytes, _ = coder.factorized.encode(z)
    return bitstream.Bitstream(bs.model_id, bs.height, bs.width, bs.rate, bs.symbol_range, z_bytes, bs.y).to_bytes()


def main() -> None:
    out = HERE / "regressions"
    out.mkdir(exist_ok=True)
    rng = random.Random(13)
    a, b = "kodim23-64x48", "kodim15-40x72"
    inputs = {
        "factorized--height-48-to-1000.rdbl": with_fields(golden(f"factorized--{a}"), height=1000),
        "factorized--width-40-to-2000.rdbl": with_fields(golden(f"factorized--{b}"), width=2000),
        "mean-scale--width-64-to-1024.rdbl": with_fields(golden(f"mean-scale--{a}"), width=1024),
        "mean-scale--height-48-to-65.rdbl": with_fields(golden(f"mean-scale--{a}"), height=65),
        "joint-k5--side-1048576.rdbl": with_fields(golden(f"joint-k5--{a}"), height=1 << 20, width=1 << 20),
        "joint-k5--symbol-range-0.rdbl": with_fields(golden(f"joint-k5--{a}"), symbol_range=0),
        "joint-k3-K2--symbol-range-65535.rdbl": with_fields(golden(f"joint-k3-K2--{b}"), symbol_range=65535),
        "joint-k5--random-payload.rdbl": reseal(golden(f"joint-k5--{b}")[:36] + rng.randbytes(len(golden(f"joint-k5--{b}")) - 36)),
        "hyperprior--z-of-2e6.rdbl": huge_z(f"hyperprior--{a}", 2e6),
        "joint-k5--z-of-1e6.rdbl": huge_z(f"joint-k5--{b}", 1e6),
    }
    for name, data in inputs.items():
        (out / name).write_bytes(data)
    print(f"{len(inputs)} regression inputs in {out}")


if __name__ == "__main__":
    main()
