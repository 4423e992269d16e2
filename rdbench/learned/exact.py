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
    - constriction's own quantisation of the Gaussian (QuantizedGaussian) and of the mixture's
      probabilities (Categorical) into integer frequencies: the same library on both sides.

Assumptions
    - torch's float64 conv2d / conv_transpose2d / matmul compute a plain sum of the products
      (in any order, with or without FMA): no Winograd or FFT convolution, no reduced-precision
      accumulation. They do on CPU, where these networks always run.
    - The tables (and the scale table) are built once per process by torch.special.ndtr and
      torch.exp over the same float64 grid, so the encoder and the decoder read identical tables
      when they run the same torch build on the same kind of CPU. Across builds or instruction
      sets those vectorised functions could differ in the last bit of a table entry, and nothing
      here detects that.

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

import math

import torch
from compressai.layers import MaskedConv2d
from torch import nn

from rdbench.errors import CodecError

WEIGHT_BITS = 20
ACTIVATION_BITS = 16
SUM_LIMIT = 2.0 ** (52 - WEIGHT_BITS - ACTIVATION_BITS)
DTYPE = torch.float64

# The Gaussian scale table (CompressAI's get_scale_table): SCALE_LEVELS log-spaced scales from
# SCALE_BOUND to SCALE_MAX. SCALE_BOUND is also the lower bound of the models' GaussianConditional.
SCALE_BOUND = 0.11
SCALE_MAX = 256.0
SCALE_LEVELS = 64

# Interpolation tables: (lo, hi, step bits) of the normal CDF and of exp (see the module docstring).
NORMAL_CDF_TABLE = (-12.0, 12.0, 12)
EXP_TABLE = (-40.0, 0.0, 10)


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
    b = None if layer.bias is None else to_grid(layer.bias.detach().to("cpu", DTYPE), WEIGHT_BITS + ACTIVATION_BITS)
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
    """f(x) read from a table on [lo, hi] with step 2^-step_bits, linear in between, clamped outside.
    Built once per process from the same shapes, so encoder and decoder read identical tables."""

    def __init__(self, fn, lo: float, hi: float, step_bits: int):
        self.lo, self.hi = float(lo), float(hi)
        self.inv_step = float(2**step_bits)
        n = int(round((hi - lo) * self.inv_step)) + 1
        grid = lo + torch.arange(n, dtype=DTYPE) / self.inv_step
        self.table = fn(grid).to(DTYPE)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pos = (x.clamp(self.lo, self.hi) - self.lo) * self.inv_step
        idx = pos.floor().clamp(max=self.table.numel() - 2)
        frac = pos - idx
        idx = idx.long()
        lo = self.table[idx]
        return lo + frac * (self.table[idx + 1] - lo)


_normal_cdf = None
_exp_neg = None


def normal_cdf() -> InterpolatedFunction:
    global _normal_cdf
    if _normal_cdf is None:
        _normal_cdf = InterpolatedFunction(torch.special.ndtr, *NORMAL_CDF_TABLE)
    return _normal_cdf


def exp_table() -> InterpolatedFunction:
    """exp(x) on [-40, 0], for softmax weights after subtracting the maximum logit."""
    global _exp_neg
    if _exp_neg is None:
        _exp_neg = InterpolatedFunction(torch.exp, *EXP_TABLE)
    return _exp_neg


def scale_table() -> torch.Tensor:
    """CompressAI's 64 log-spaced scales 0.11..256, in float64."""
    return torch.exp(torch.linspace(math.log(SCALE_BOUND), math.log(SCALE_MAX), SCALE_LEVELS, dtype=DTYPE))
