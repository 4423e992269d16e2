"""The numeric contract of rdbench's entropy coding: exact networks, fixed tables, the scale bound.

Encoder and decoder must compute bit-identical distribution parameters for every symbol, or the
range coder desynchronises and the rest of the image decodes to noise. Float32 convolutions do
not promise that: their sums are reordered by thread count, batch shape, BLAS and hardware. So
the networks that feed the coder (h_s, context_prediction, entropy_parameters) are evaluated
here in float64 on fixed grids, and the few non-linear functions the coder needs are read off
fixed tables.

What is exact (the same bits whatever the order of the sums)
    Every weight is rounded to the grid 2^-WEIGHT_BITS (2^-20), every bias to 2^-36 and every
    activation to 2^-ACTIVATION_BITS (2^-16), and the layers' outputs are rounded back to the
    activation grid. A product of a weight and an activation is then an integer multiple of
    2^-36, and so is every partial sum of a convolution. float64 has a 53-bit significand: it
    represents every multiple of 2^-36 below 2^(53-36) = 2^17 exactly. `_Linear.check` bounds
    every partial sum of every output, before each layer runs, by L1(weights of that output) *
    max|input| + max|bias| and refuses (ExactnessError) a bound of SUM_LIMIT = 2^16 or more. With
    all partial sums below 2^16, each addition adds two exact values and its result (below 2^17)
    is exact too, so no addition ever rounds: the sum is the same in any order, with any
    blocking, thread count or BLAS, and an FMA is harmless (it skips a rounding that never
    happens). The rounding to the grids (multiply by a power of two, round half to even, divide)
    is exact as well. Under this contract lie: ExactConv (h_s, with gains applied to ẑ first),
    ExactPointwise (entropy_parameters), ExactContext (context_prediction, only its unmasked
    taps), ExactActivation (ReLU / leaky ReLU: a comparison and one product, whose rounding
    is deterministic and then snapped to the grid).

What is deterministic but not exact
    The rest is a fixed sequence of single IEEE-754 operations (+, -, *, /, floor, compare,
    searchsorted), elementwise, on the exact values above, so it gives the same bits in the
    encoder and the decoder, and on any machine that rounds as IEEE-754 prescribes, but it rounds:
    - the normal CDF Φ and exp, read from tables by linear interpolation (InterpolatedFunction).
      Φ: step 2^-12 on [-12, 12], absolute error <= h^2/8 * max|Φ''| = 2^-27 * φ(1) ~ 1.8e-9;
      beyond the range it returns Φ(±12) (off by < 1.8e-33). exp: step 2^-10 on [-40, 0],
      relative error <= h^2/8 * e^h ~ 1.19e-7; below -40 it returns e^-40 (~4.2e-18: a mixture
      weight that small is irrelevant next to the heaviest one, which is 1); above 0, 1.
    - the division by σ in (ŷ ± 1/2 - μ) / σ, the mixture weights exp(logit - max logit) (left
      unnormalised: constriction normalises the probabilities), the mixture sum (in a fixed
      component order) and the snapping of scales up to the 64-entry scale table
      (scale_table, searchsorted).
    - constriction's own quantisation of the Gaussian (QuantizedGaussian), of the mixture's
      probabilities and of the entropy bottleneck's CDFs (Categorical) into integer frequencies:
      pure Rust (its Linux wheel imports no libm function), pinned by a probe (below).

The tables (the same bits on every machine, by construction, and checked)
    The normal-CDF, exp and scale tables are part of the contract: a last-bit difference in one
    entry changes a symbol's frequency and desynchronises the range coder. Vectorised libm
    functions (torch's ndtr and exp, numpy's exp) promise no particular last bit, and differ
    between builds and instruction sets. So `table` computes them from the exact grid nodes with
    IEEE-754's correctly rounded operations only (one numpy ufunc per +, -, *, /; rint, ldexp and
    comparisons, which are exact), whose every result the standard fixes:
    - exp(a), a <= 0: k = rint(a / ln 2); r = (a - k ln2_hi) - k ln2_lo, with ln2_hi holding 32
      bits so that k ln2_hi is exact (Cody and Waite); e^r by its Taylor polynomial to r^15 (the
      remainder is below 2^-62 on |r| <= ln(2)/2), Horner's scheme; times 2^k (ldexp, exact).
      Within 1 ulp of exp (measured against mpmath at 40 digits on every node).
    - Φ(-t), t >= 0 (t^2 is exact on the grid): for t < 1 its Taylor series
      1/2 - (1/sqrt(2 pi)) sum (-1)^n t^(2n+1) / (2^n n! (2n+1)), 40 terms summed from the smallest;
      for t >= 1 φ(t) over Laplace's continued fraction of Mills' ratio, t + 1/(t + 2/(t + ...)),
      500 levels evaluated bottom-up, which keeps full relative accuracy into the tail (Φ(-12)
      ~ 1.8e-33). Φ(x) = 1 - Φ(-x) for x > 0. Within 3 ulp of Φ (1.1e-16 absolute) by mpmath.
    - the scale table: exp(ln 0.11 + i (ln 256 - ln 0.11) / 63), both constants correctly rounded
      literals, within 8 ulp of CompressAI's table (torch's exp of its linspace).
    A compiler cannot reorder or fuse these (each is a separate array operation). Subnormals
    arise only in the last series terms for t near 0, added to sums of order t, where flushing
    them to zero (as some libraries set the FPU to) changes no bit of the sum. Still, the result
    is checked, not trusted: each table's SHA-256 is pinned in contract.TABLE_SHA256, and a
    machine that computes one bit differently refuses to code (ContractError) rather than write
    streams no other machine decodes.
    The same holds for constriction: `symbols.check_constriction` encodes a fixed message with
    each of its models rdbench uses and compares the words to a pinned digest. All of it, with
    the grids and the coders' choices, is hashed into contract.CONTRACT_ID, which every bitstream
    carries: a stream of another contract is refused by name.

Assumptions
    - torch's float64 conv2d / conv_transpose2d / matmul compute a plain sum of the products
      (in any order, with or without FMA): no Winograd or FFT convolution, no reduced-precision
      accumulation. They do on CPU, where these networks always run.
    - numpy's float64 +, -, *, / round as IEEE-754 prescribes (round to nearest, ties to even);
      the digests check it.

Why 20 and 16 bits
    WEIGHT_BITS + ACTIVATION_BITS = 36 fractional bits leave 53 - 36 = 17 bits of a float64
    significand for the integer part of a partial sum; SUM_LIMIT keeps one of them as headroom
    (two exact values below 2^16 add to an exact value below 2^17), so partial sums may reach
    2^(52 - 36) = 65,536. That has to hold the largest sum a layer forms: max|input| times the
    L1 norm of one output's weights. The inputs are ẑ and ŷ (integers, or integers plus a mean,
    of magnitude up to a few hundred: the bitstream's symbol range allows up to 2^16) and the
    hidden activations of h_s and entropy_parameters. The widest sums are context_prediction's,
    over M * (k^2 - 1) / 2 inputs (2,304 for M = 192, k = 5), and entropy_parameters' over 4M;
    PyTorch's default initialisation gives an L1 norm near sqrt(fan_in) / 2 (about 24 for 2,304
    inputs), and training changes it by a modest factor, so bounds of 10^3 .. 10^4 are typical
    and 16 bits leave a margin of 6-60x. The fractional bits buy accuracy: 16 activation bits put
    each layer's output within 2^-17 of its float64 value, far below what moves a symbol (σ is
    snapped to a table whose entries are 13 % apart, ŷ is rounded to integers), and 20 weight
    bits keep each weight within 2^-21 ~ 4.8e-7 of the trained one (float32 weights of order
    10^-2 resolve about 2^-30), so the exact networks follow the float model closely. Any bit more
    on either grid would come out of the magnitude headroom. A model that breaks the bound is
    refused by the guard, which names the layer and the bound, rather than coded with a
    bitstream that might not decode.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
from compressai.layers import MaskedConv2d
from torch import nn

from rdbench.errors import CodecError
from rdbench.learned.contract import (  # noqa: F401  (the contract's numbers, exported here too)
    ACTIVATION_BITS, BIAS_BITS, CONTRACT_ID, CONTRACT_NAME, EXP_TABLE, NORMAL_CDF_TABLE, SCALE_BOUND,
    SCALE_LEVELS, SCALE_MAX, SUM_LIMIT, TABLE_SHA256, WEIGHT_BITS,
)

DTYPE = torch.float64


class ExactnessError(CodecError):
    """The model's weights or activations are too large for exact float64 evaluation."""


def to_grid(x: torch.Tensor, bits: int) -> torch.Tensor:
    scale = float(2**bits)
    return torch.round(x * scale) / scale


def activation_grid(x: torch.Tensor) -> torch.Tensor:
    return to_grid(x.to(DTYPE), ACTIVATION_BITS)


def _weights(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    w = layer.weight.detach().to("cpu", DTYPE)
    if isinstance(layer, MaskedConv2d):
        w = w * layer.mask.to("cpu", DTYPE)
    w = to_grid(w, WEIGHT_BITS)
    b = None if layer.bias is None else to_grid(layer.bias.detach().to("cpu", DTYPE), BIAS_BITS)
    return w, b


class _Linear:
    """Shared by the exact layers: the bound check."""

    name: str
    l1: float  # largest L1 norm of one output's weights
    b_max: float

    def _set_bounds(self, l1_per_output: torch.Tensor) -> None:
        self.l1 = float(l1_per_output.max())
        self.b_max = 0.0 if self.b is None else float(self.b.abs().max())

    def check(self, x: torch.Tensor) -> None:
        bound = self.l1 * float(x.abs().max()) + self.b_max if x.numel() else 0.0
        if bound >= SUM_LIMIT:
            raise ExactnessError(
                f"{self.name}: partial sums could reach {bound:.4g}, beyond the exact float64 range "
                f"{SUM_LIMIT:g} (weights on 2^-{WEIGHT_BITS}, activations on 2^-{ACTIVATION_BITS})"
            )


class ExactConv(_Linear):
    def __init__(self, layer: nn.Conv2d | nn.ConvTranspose2d, name: str):
        self.name = name
        self.w, self.b = _weights(layer)
        self.transposed = isinstance(layer, nn.ConvTranspose2d)
        self.stride, self.padding = layer.stride, layer.padding
        self.output_padding = getattr(layer, "output_padding", (0, 0))
        dims = (0, 2, 3) if self.transposed else (1, 2, 3)
        self._set_bounds(self.w.abs().sum(dim=dims))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if self.transposed:
            return nn.functional.conv_transpose2d(
                x, self.w, self.b, self.stride, self.padding, self.output_padding
            )
        return nn.functional.conv2d(x, self.w, self.b, self.stride, self.padding)


class ExactPointwise(_Linear):
    """A 1x1 convolution applied to rows of an (n, C) matrix."""

    def __init__(self, layer: nn.Conv2d, name: str):
        self.name = name
        w, self.b = _weights(layer)
        self.w_t = w.reshape(w.shape[0], -1).t().contiguous()
        self._set_bounds(self.w_t.abs().sum(dim=0))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        out = x @ self.w_t
        return out if self.b is None else out + self.b


class ExactActivation:
    def __init__(self, layer: nn.Module):
        self.slope = layer.negative_slope if isinstance(layer, nn.LeakyReLU) else 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, x * self.slope)


def _exact_layers(seq: nn.Sequential, name: str, pointwise: bool) -> list:
    layers = []
    for i, layer in enumerate(seq):
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            layers.append(ExactPointwise(layer, f"{name}.{i}") if pointwise else ExactConv(layer, f"{name}.{i}"))
        elif isinstance(layer, (nn.ReLU, nn.LeakyReLU)):
            layers.append(ExactActivation(layer))
        else:
            raise TypeError(f"{name}.{i}: {type(layer).__name__} has no exact evaluation")
    return layers


class ExactSequential:
    """h_s (4-D input) or entropy_parameters (rows of (n, C), `pointwise=True`), evaluated exactly.
    Every layer's output is rounded back to the activation grid."""

    def __init__(self, seq: nn.Sequential, name: str, pointwise: bool = False):
        self.layers = _exact_layers(seq, name, pointwise)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = activation_grid(x)
        for layer in self.layers:
            x = activation_grid(layer(x))
        return x


class ExactContext(_Linear):
    """context_prediction evaluated at chosen latent positions only.

    `y_hat_padded` is ŷ (C, H + 2p, W + 2p), zero outside the image and where not yet decoded;
    `rows`, `cols` are positions in unpadded coordinates. Only the taps the type-A mask keeps
    (the rows above, and the left part of the current row) are read.
    """

    def __init__(self, layer: MaskedConv2d, name: str = "context_prediction"):
        self.name = name
        w, self.b = _weights(layer)
        mask = layer.mask[0, 0].to("cpu").bool()
        taps = mask.nonzero()
        self.tap_rows, self.tap_cols = taps[:, 0], taps[:, 1]
        # (out, in, taps) -> (in * taps, out), matching the gather below
        self.w_t = w[:, :, self.tap_rows, self.tap_cols].reshape(w.shape[0], -1).t().contiguous()
        self._set_bounds(self.w_t.abs().sum(dim=0))

    def __call__(self, y_hat_padded: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        r = rows[:, None] + self.tap_rows[None, :]
        c = cols[:, None] + self.tap_cols[None, :]
        patches = y_hat_padded[:, r, c]  # (C, n, taps)
        patches = patches.permute(1, 0, 2).reshape(rows.numel(), -1)
        self.check(patches)
        out = patches @ self.w_t
        return activation_grid(out if self.b is None else out + self.b)


class InterpolatedFunction:
    """f(x) read from `values`, f at lo, lo + 2^-step_bits, ..., hi; linear in between, clamped
    outside."""

    def __init__(self, values: torch.Tensor, lo: float, hi: float, step_bits: int):
        self.lo, self.hi = float(lo), float(hi)
        self.inv_step = float(2**step_bits)
        n = int(round((hi - lo) * self.inv_step)) + 1
        if values.numel() != n:
            raise ValueError(f"a table on [{lo}, {hi}] with step 2^-{step_bits} has {n} values, not {values.numel()}")
        self.table = values.to(DTYPE)
        self._nodes = self.table.numpy()
        # table[i + 1] - table[i], the subtraction __call__ makes per value, made once per node
        self._slopes = np.ascontiguousarray(self._nodes[1:] - self._nodes[:-1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pos = (x.clamp(self.lo, self.hi) - self.lo) * self.inv_step
        idx = pos.floor().clamp(max=self.table.numel() - 2)
        frac = pos - idx
        idx = idx.long()
        lo = self.table[idx]
        return lo + frac * (self.table[idx + 1] - lo)

    def values_into(self, x: np.ndarray) -> np.ndarray:
        """`__call__` on a float64 numpy array, overwriting x with the result: the same IEEE-754
        operations in the same order on every value (clamp, - lo, * 2^step_bits, floor, capped
        index, pos - index, lo + frac * (next node - lo), that node difference read from a table
        of differences computed once with the same subtraction), so the same bits, without the
        temporaries (symbols.MixtureCoder builds its probability tables with it)."""
        np.clip(x, self.lo, self.hi, out=x)
        np.subtract(x, self.lo, out=x)
        np.multiply(x, self.inv_step, out=x)
        idx = np.floor(x)
        np.minimum(idx, self._nodes.size - 2, out=idx)
        np.subtract(x, idx, out=x)  # frac
        index = idx.astype(np.intp)
        np.multiply(x, np.take(self._slopes, index), out=x)  # np.take: faster than fancy indexing
        np.add(np.take(self._nodes, index), x, out=x)
        return x


# -- the tables, computed with IEEE-754 basic operations only (see "The tables" above) -------------
# Each line below is one numpy ufunc over a float64 array: one correctly rounded +, -, *, / per
# element, or an exact rint / ldexp / comparison. No libm function is called.
_LN2_HI = float.fromhex("0x1.62e42feep-1")  # ln 2 to 32 bits: k * _LN2_HI is exact for |k| < 2^21
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")  # ln 2 - _LN2_HI
_INV_LN2 = float.fromhex("0x1.71547652b82fep0")
_INV_SQRT_2PI = float.fromhex("0x1.9884533d43651p-2")  # 1/sqrt(2 pi), correctly rounded
_EXP_TERMS = 15  # Taylor terms of exp on |r| <= ln(2)/2: remainder < 2^-62
_SERIES_BELOW = 1.0  # |x| below which Φ comes from its Taylor series, above from the continued fraction
_SERIES_TERMS = 40  # (|x| < 1: the last term is below 2^-160)
_CF_DEPTH = 500  # Laplace's continued fraction of Mills' ratio, evaluated bottom-up (3 ulp for |x| >= 1)


def _exp_basic(a: np.ndarray) -> np.ndarray:
    """exp(a), a <= 0 float64, within 1 ulp: a = k ln 2 + r (Cody and Waite's split), e^r by its
    Taylor polynomial (Horner), times 2^k (exact)."""
    k = np.rint(a * _INV_LN2)
    r = (a - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(a, 1 / math.factorial(_EXP_TERMS))
    for n in range(_EXP_TERMS - 1, -1, -1):
        p = p * r + 1 / math.factorial(n)
    return np.ldexp(p, k.astype(np.int32))


def _normal_cdf_lower(t: np.ndarray) -> np.ndarray:
    """Φ(-t) for t >= 0 on the table grid (t^2 is exact there: t has at most 16 significant bits).

    t < 1: Φ(-t) = 1/2 - (1/sqrt(2 pi)) sum_n (-1)^n t^(2n+1) / (2^n n! (2n+1)), summed from the
    smallest term. t >= 1: Φ(-t) = φ(t) / (t + 1/(t + 2/(t + 3/(t + ...)))), Laplace's continued
    fraction of Mills' ratio, which keeps its relative accuracy far into the tail."""
    out = np.empty_like(t)
    small = t < _SERIES_BELOW
    s_t = t[small]
    t2 = s_t * s_t
    b = [s_t]
    for n in range(1, _SERIES_TERMS):
        b.append(b[-1] * -t2 / (2 * n))
    total = b[-1] / (2 * _SERIES_TERMS - 1)
    for n in range(_SERIES_TERMS - 2, -1, -1):
        total = total + b[n] / (2 * n + 1)
    out[small] = 0.5 - _INV_SQRT_2PI * total
    c_t = t[~small]
    density = _exp_basic(-(c_t * c_t) / 2) * _INV_SQRT_2PI
    f = c_t.copy()
    for n in range(_CF_DEPTH, 0, -1):
        f = c_t + n / f
    out[~small] = density / f
    return out


def _grid(table: tuple[float, float, int]) -> np.ndarray:
    lo, hi, bits = table
    return lo + np.arange(int(round((hi - lo) * 2**bits)) + 1, dtype=np.float64) / 2.0**bits  # exact


def _normal_cdf_values() -> np.ndarray:
    x = _grid(NORMAL_CDF_TABLE)
    lower = _normal_cdf_lower(np.abs(x))
    return np.where(x <= 0, lower, 1.0 - lower)  # Φ(x) = 1 - Φ(-x): one rounding


def _exp_values() -> np.ndarray:
    return _exp_basic(_grid(EXP_TABLE))


def _scale_values() -> np.ndarray:
    """SCALE_LEVELS log-spaced scales SCALE_BOUND .. SCALE_MAX: exp(ln lo + i (ln hi - ln lo) / (n - 1))."""
    log_lo = float.fromhex("-0x1.1a87fbfeb72dfp+1")  # ln 0.11, correctly rounded
    log_step = float.fromhex("0x1.f8084f2badedap-4")  # (ln 256 - ln 0.11) / 63, correctly rounded
    return _exp_basic(log_lo + np.arange(SCALE_LEVELS, dtype=np.float64) * log_step)


_BUILDERS = {"normal_cdf": _normal_cdf_values, "exp": _exp_values, "scale": _scale_values}
_tables: dict[str, torch.Tensor] = {}


class ContractError(CodecError):
    """This machine computes the numeric contract's tables differently: it cannot code."""


def table(name: str) -> torch.Tensor:
    """One of the contract's tables ('normal_cdf', 'exp', 'scale') as float64, computed once per
    process and checked against its pinned SHA-256 (contract.TABLE_SHA256)."""
    if name not in _tables:
        values = np.ascontiguousarray(_BUILDERS[name](), dtype="<f8")
        digest = hashlib.sha256(values.tobytes()).hexdigest()
        if digest != TABLE_SHA256[name]:
            raise ContractError(
                f"this machine computes the {name} table of {CONTRACT_NAME} differently (SHA-256 {digest[:16]}..., "
                f"pinned {TABLE_SHA256[name][:16]}...): bitstreams it coded would not decode elsewhere, so it "
                f"refuses to code (numpy {np.__version__}); please report it"
            )
        _tables[name] = torch.from_numpy(values.astype(np.float64))
    return _tables[name]


_normal_cdf = None
_exp_neg = None


def normal_cdf() -> InterpolatedFunction:
    """Φ on [-12, 12] (NORMAL_CDF_TABLE), linear between the nodes, clamped outside."""
    global _normal_cdf
    if _normal_cdf is None:
        _normal_cdf = InterpolatedFunction(table("normal_cdf"), *NORMAL_CDF_TABLE)
    return _normal_cdf


def exp_table() -> InterpolatedFunction:
    """exp(x) on [-40, 0], for softmax weights after subtracting the maximum logit."""
    global _exp_neg
    if _exp_neg is None:
        _exp_neg = InterpolatedFunction(table("exp"), *EXP_TABLE)
    return _exp_neg


def scale_table() -> torch.Tensor:
    """CompressAI's 64 log-spaced scales 0.11..256, in float64."""
    return table("scale")
