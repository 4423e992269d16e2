"""Exact evaluation of the networks that feed the entropy coder.

The encoder and the decoder must compute bit-identical distribution parameters, or the coder
desynchronises. Float32 convolutions do not promise that: their sums are reordered by thread
count, batch shape and hardware. Here every weight is rounded to a grid of 2^-WEIGHT_BITS, every
activation to a grid of 2^-ACTIVATION_BITS, and the arithmetic is float64. Each product then lies
on the grid 2^-(WEIGHT_BITS + ACTIVATION_BITS), and as long as every partial sum stays below
2^(52 - WEIGHT_BITS - ACTIVATION_BITS) float64 represents it exactly: any summation order, any
thread count, any BLAS gives the same bits. The bound is checked on every call (from the L1 norm
of each output's weights and the largest input), and a model that could break it is refused
instead of producing a bitstream that might not decode.

Transcendental functions (the normal CDF, exp) are not exact across vectorised and scalar code
paths, so the coder reads them from fixed tables by linear interpolation (only +, -, *, / and
floor: exact IEEE operations).
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
        _normal_cdf = InterpolatedFunction(torch.special.ndtr, -12.0, 12.0, 12)
    return _normal_cdf


def exp_table() -> InterpolatedFunction:
    """exp(x) on [-40, 0], for softmax weights after subtracting the maximum logit."""
    global _exp_neg
    if _exp_neg is None:
        _exp_neg = InterpolatedFunction(torch.exp, -40.0, 0.0, 10)
    return _exp_neg


def scale_table() -> torch.Tensor:
    """CompressAI's 64 log-spaced scales 0.11..256, in float64."""
    return torch.exp(torch.linspace(math.log(0.11), math.log(256.0), 64, dtype=DTYPE))
