"""exact.py's numeric contract, against independent references: the interpolation tables
(scipy.special.ndtr, math.exp, mpmath at 40 digits), the scale table (CompressAI's), the pinned
digests that identify the contract, and the exactness of sums on the weight / activation grids
(Python integers)."""

import math

import numpy as np
import pytest

pytest.importorskip("compressai")

import torch  # noqa: E402
from scipy.special import ndtr  # noqa: E402

from rdbench.learned import exact  # noqa: E402


def dense_grid(lo: float, hi: float, step_bits: int, margin: float) -> np.ndarray:
    """Every table node, every midpoint, points a quarter step either side, the edges, and a
    uniform sweep from lo - margin to hi + margin."""
    h = 2.0**-step_bits
    nodes = lo + np.arange(int(round((hi - lo) / h)) + 1) * h
    near = np.concatenate([nodes, nodes + h / 2, nodes + h / 4, nodes - h / 4])
    sweep = np.linspace(lo - margin, hi + margin, 1_000_003)
    edges = np.array([lo, hi, np.nextafter(lo, -np.inf), np.nextafter(lo, np.inf), np.nextafter(hi, -np.inf),
                      np.nextafter(hi, np.inf)])
    return np.concatenate([near, sweep, edges])


def evaluate(fn, x: np.ndarray) -> np.ndarray:
    return fn(torch.from_numpy(x)).numpy()


# -- the normal CDF table -------------------------------------------------------------------------
def test_normal_cdf_table_is_within_the_linear_interpolation_bound_of_ndtr():
    lo, hi, bits = exact.NORMAL_CDF_TABLE
    x = dense_grid(lo, hi, bits, margin=0.0)
    x = x[(x >= lo) & (x <= hi)]
    err = np.abs(evaluate(exact.normal_cdf(), x) - ndtr(x))
    # linear interpolation with step h errs by at most h^2/8 * max|Φ''| = h^2/8 * max|x φ(x)| = h^2/8 * φ(1)
    bound = 2.0 ** (-2 * bits) / 8 * math.exp(-0.5) / math.sqrt(2 * math.pi)
    assert bound == pytest.approx(1.8e-9, rel=0.01)  # the figure exact.py's docstring promises
    assert err.max() <= bound + 4 * np.finfo(np.float64).eps, err.max()
    assert err.max() > 0.9 * bound  # the bound is tight: the table really is this coarse, and no finer
    nodes = lo + np.arange(int((hi - lo) * 2**bits) + 1) / 2**bits
    assert np.abs(evaluate(exact.normal_cdf(), nodes) - ndtr(nodes)).max() <= 2 * np.finfo(np.float64).eps


def test_normal_cdf_beyond_the_table_returns_the_end_values():
    lo, hi, _ = exact.NORMAL_CDF_TABLE
    cdf = exact.normal_cdf()
    below = np.array([-np.inf, -1e300, -40.0, -12.5, np.nextafter(lo, -np.inf)])
    above = np.array([np.nextafter(hi, np.inf), 12.5, 40.0, 1e300, np.inf])
    assert (evaluate(cdf, below) == evaluate(cdf, np.array([lo]))[0]).all()
    assert (evaluate(cdf, above) == evaluate(cdf, np.array([hi]))[0]).all()
    # which is off by less than Φ(-12) ~ 1.8e-33 from the true value (scipy's Φ(-12) is 1.5e-14 low)
    assert np.abs(evaluate(cdf, below) - ndtr(below)).max() <= ndtr(lo) * (1 + 1e-13)
    assert np.abs(evaluate(cdf, above) - ndtr(above)).max() <= ndtr(lo) + np.finfo(np.float64).eps
    assert ndtr(lo) < 2e-33


# -- the exp table ----------------------------------------------------------------------------------
def test_exp_table_is_within_the_relative_interpolation_bound_of_math_exp():
    lo, hi, bits = exact.EXP_TABLE
    x = dense_grid(lo, hi, bits, margin=0.0)
    x = x[(x >= lo) & (x <= hi)]
    reference = np.array([math.exp(v) for v in x])
    rel = np.abs(evaluate(exact.exp_table(), x) - reference) / reference
    # exp'' = exp, so the error relative to exp(x) is at most h^2/8 * e^h
    h = 2.0**-bits
    bound = h * h / 8 * math.exp(h)
    assert bound == pytest.approx(1.19e-7, rel=0.01)  # the figure exact.py's docstring promises
    assert rel.max() <= bound + 8 * np.finfo(np.float64).eps, rel.max()
    assert rel.max() > 0.9 * bound


def test_exp_table_beyond_its_range_returns_exp_of_the_end():
    lo, hi, _ = exact.EXP_TABLE
    table = exact.exp_table()
    below = np.array([-np.inf, -1e300, -1000.0, -41.0, np.nextafter(lo, -np.inf)])
    out = evaluate(table, below)
    assert (out == evaluate(table, np.array([lo]))[0]).all()
    assert abs(out[0] - math.exp(lo)) <= 2 * np.finfo(np.float64).eps * math.exp(lo)
    assert math.exp(lo) < 5e-18  # a mixture weight this small beside the heaviest one (1) is irrelevant
    above = np.array([np.nextafter(hi, np.inf), 0.5, 10.0])  # logits minus their maximum never get here
    assert (evaluate(table, above) == 1.0).all()


# -- determinism ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, table", [("normal_cdf", exact.NORMAL_CDF_TABLE), ("exp", exact.EXP_TABLE)])
def test_tables_give_the_same_bits_whatever_the_batch_order_or_thread_count(name, table):
    lo, hi, bits = table
    rebuilt = exact.InterpolatedFunction(torch.from_numpy(exact._BUILDERS[name]()), lo, hi, bits)
    shared = exact.normal_cdf() if name == "normal_cdf" else exact.exp_table()
    assert torch.equal(rebuilt.table, shared.table)  # computed again: the same table
    x = torch.from_numpy(np.random.default_rng(0).uniform(lo - 1, hi + 1, 200_001))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = rebuilt(x)
        torch.set_num_threads(max(2, threads))
        many = shared(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, many)
    perm = torch.randperm(x.numel(), generator=torch.Generator().manual_seed(1))
    assert torch.equal(shared(x[perm]), one[perm])
    assert torch.equal(torch.cat([shared(c) for c in x.split(999)]), one)  # batch shape does not matter
    assert torch.equal(shared(x.view(-1, 1)).view(-1), one)


# -- the contract's identity: tables computed with basic operations only, pinned by SHA-256 ---------------
def test_tables_are_the_correctly_rounded_values_to_a_few_ulp_by_mpmath():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    rng = np.random.default_rng(0)
    for name, table, fn, ulps in (("normal_cdf", exact.NORMAL_CDF_TABLE, mpmath.ncdf, 3),
                                  ("exp", exact.EXP_TABLE, mpmath.exp, 1)):
        x = exact._grid(table)
        pick = np.unique(np.concatenate([rng.choice(x.size, 3000, replace=False), [0, x.size - 1, x.size // 2]]))
        values = exact.table(name).numpy()[pick]
        reference = np.array([float(fn(mpmath.mpf(v))) for v in x[pick]])
        err = np.abs(values - reference) / np.spacing(reference)
        assert err.max() <= ulps, (name, err.max())
    lo, hi, n = math.log(exact.SCALE_BOUND), math.log(exact.SCALE_MAX), exact.SCALE_LEVELS
    reference = np.array([float(mpmath.exp(mpmath.log(mpmath.mpf("0.11")) + i * (mpmath.log(256) - mpmath.log(mpmath.mpf("0.11"))) / (n - 1)))
                          for i in range(n)])
    assert np.abs(exact.scale_table().numpy() - reference).max() <= 8 * np.spacing(reference).max()
    assert lo < hi


def test_every_table_has_its_pinned_digest_and_a_different_one_is_refused(monkeypatch):
    import hashlib

    from rdbench.learned import contract

    for name, build in exact._BUILDERS.items():
        assert hashlib.sha256(np.ascontiguousarray(build(), dtype="<f8").tobytes()).hexdigest() == contract.TABLE_SHA256[name]
    monkeypatch.setattr(exact, "_tables", {})
    monkeypatch.setitem(exact._BUILDERS, "exp", lambda: np.exp(exact._grid(exact.EXP_TABLE)))  # libm's exp
    with pytest.raises(exact.ContractError, match=r"computes the exp table of rdbench numeric contract 2 \(\w{8}\) differently"):
        exact.table("exp")


def test_tables_use_no_libm_function():
    """The table builders must stay within IEEE-754's correctly rounded operations: no np.exp,
    np.log, np.sqrt of libm's, nor torch or math functions, in their code."""
    import inspect

    source = "".join(inspect.getsource(f) for f in (exact._exp_basic, exact._normal_cdf_lower, exact._grid,
                                                   exact._normal_cdf_values, exact._exp_values, exact._scale_values))
    for forbidden in ("np.exp", "np.log", "np.expm1", "np.power", "**", "torch.", "math.exp", "math.log", "math.erf", "scipy"):
        body = source.replace("2**bits", "").replace("2.0**bits", "")  # exact powers of two of the grid
        assert forbidden not in body, forbidden


def test_contract_id_is_in_every_bitstream_and_another_is_refused_by_name():
    from rdbench.learned import bitstream, contract

    data = bitstream.Bitstream(b"m" * 8, 16, 16, 0, 1, b"", b"\0" * 4).to_bytes()
    assert data[5:9] == contract.CONTRACT_ID
    other = bitstream.reseal(data[:5] + b"\xde\xad\xbe\xef" + data[9:])
    with pytest.raises(bitstream.BitstreamError, match=r"coded under numeric contract deadbeef, but this rdbench implements rdbench numeric contract 2"):
        bitstream.parse(other)


# -- the scale table and its bound -------------------------------------------------------------------------
def test_scale_table_is_compressais_and_the_models_use_the_same_bound():
    from compressai.models.google import get_scale_table

    from rdbench.learned.config import ModelConfig
    from rdbench.learned.models import LatentModel

    scales = exact.scale_table()
    assert scales.dtype == torch.float64 and scales.numel() == exact.SCALE_LEVELS
    assert torch.allclose(scales, get_scale_table(exact.SCALE_BOUND, exact.SCALE_MAX, exact.SCALE_LEVELS).double(), rtol=1e-6)
    assert scales[0] == pytest.approx(0.11, rel=1e-15) and scales[-1] == pytest.approx(256.0, rel=1e-15)
    ratios = scales[1:] / scales[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-12)  # log-spaced
    model = LatentModel(ModelConfig("mean-scale", 8, 8))
    assert float(model.gaussian_conditional.lower_bound_scale.bound) == pytest.approx(exact.SCALE_BOUND, rel=1e-7)


# -- sums on the grids are exact ----------------------------------------------------------------------------
def test_grid_sums_equal_integer_arithmetic_in_any_order_near_the_limit():
    """A 1x1 layer with weights on 2^-20 and inputs on 2^-16, its partial sums just under
    SUM_LIMIT: torch's float64 matmul gives exactly the integer-arithmetic result, in any
    input order, with any thread count."""
    rng = np.random.default_rng(0)
    c_in, c_out, n = 2304, 8, 64
    conv = torch.nn.Conv2d(c_in, c_out, 1, bias=False)
    w_int = rng.integers(-(2**14), 2**14, size=(c_out, c_in))  # weights up to 2^-6, on the 2^-20 grid
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w_int / 2.0**exact.WEIGHT_BITS).view(c_out, c_in, 1, 1))
    layer = exact.ExactPointwise(conv, "test")
    # inputs on the 2^-16 grid, scaled so that L1 * max|x| lands just below SUM_LIMIT
    x_max = 0.99 * exact.SUM_LIMIT / layer.l1
    x_int = rng.integers(-int(x_max * 2**exact.ACTIVATION_BITS), int(x_max * 2**exact.ACTIVATION_BITS), size=(n, c_in))
    x = torch.from_numpy(x_int / 2.0**exact.ACTIVATION_BITS)
    expected = [[sum(int(a) * int(b) for a, b in zip(row, w)) for w in w_int.tolist()] for row in x_int.tolist()]
    expected = torch.tensor(expected, dtype=torch.float64) / 2.0 ** (exact.WEIGHT_BITS + exact.ACTIVATION_BITS)
    threads = torch.get_num_threads()
    try:
        for t in (1, max(2, threads)):
            torch.set_num_threads(t)
            assert torch.equal(layer(x), expected)
    finally:
        torch.set_num_threads(threads)
    perm = torch.from_numpy(rng.permutation(c_in))
    permuted = exact.ExactPointwise(conv, "test")
    permuted.w_t = layer.w_t[perm]
    assert torch.equal(permuted(x[:, perm]), expected)  # the same sum in another order
    assert torch.equal(torch.cat([layer(r) for r in x.split(7)]), expected)  # and in other batch shapes


def test_the_guard_refuses_inputs_whose_sums_could_round():
    conv = torch.nn.Conv2d(16, 4, 1)
    layer = exact.ExactPointwise(conv, "probe.0")
    limit = (exact.SUM_LIMIT - layer.b_max) / layer.l1
    ok = torch.full((2, 16), 0.999 * limit, dtype=torch.float64)
    layer(ok)
    with pytest.raises(exact.ExactnessError, match=r"probe\.0: partial sums could reach .* 65536"):
        layer(ok * 1.01)
