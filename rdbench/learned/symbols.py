"""Symbol coders: one per distribution family, each coding one group of latent positions.

- `FactorizedCoder`: a whole latent (z, or y of the factorized model) through CompressAI's
  EntropyBottleneck, whose CDF tables are fixed buffers of the model. Its density has no
  per-position parameters, so it codes all positions at once.
- `GaussianCoder` (K = 1): ŷ = round(y - μ) + μ, coded as a zero-mean discretized Gaussian whose
  scale is snapped up to CompressAI's 64-entry scale table (μ lies on the 2^-16 activation grid,
  and is 0 for the scale-only model), as CompressAI's mbt2018 does.
- `MixtureCoder` (K >= 2, rdbench's): ŷ = round(y), coded with a categorical distribution over a
  window of 2W + 1 integers around the mean of the heaviest component; its probabilities are the
  mixture of discretized Gaussians (table-snapped scales, weights read off a fixed exp table).

A Gaussian or mixture coder gets, for each group of n positions, y as an (n, M) matrix and the
distribution parameters as an (n, ModelConfig.param_channels) matrix, computed exactly (exact.py),
so the encoder and the decoder see the same bits. Encoding is two-pass: `quantize` each group
(ŷ, and what coding it needs), then `encode` all groups once the symbol range (the largest
|symbol|, or the window half-width W, written in the header) is known. `decode` reads one group.
The order of the groups (the context schedule) is the caller's: coding.py.
"""

from __future__ import annotations

import functools

import constriction
import numpy as np
import torch

from rdbench.learned.exact import DTYPE, SCALE_BOUND, exp_table, normal_cdf, scale_table


class FactorizedCoder:
    """A latent (1, C, h, w) through an EntropyBottleneck, and back (as float64 on the CPU)."""

    def __init__(self, entropy_bottleneck):
        self.entropy_bottleneck = entropy_bottleneck

    def encode(self, latent: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        """The bytes, and the quantized latent exactly as `decode` returns it."""
        data = self.entropy_bottleneck.compress(latent)[0]
        return data, self.decode(data, latent.shape[-2:])

    def decode(self, data: bytes, size: tuple[int, int]) -> torch.Tensor:
        return self.entropy_bottleneck.decompress([data], size).to("cpu", DTYPE)


class SymbolCoder:
    """Codes ŷ at groups of positions, given their distribution parameters."""

    def __init__(self, M: int):
        self.M = M
        self.scales = scale_table()

    def quantize_ahead(self, y: torch.Tensor) -> torch.Tensor | None:
        """ŷ of every position, when it does not depend on the parameters (then the encoder may
        compute the parameters of all positions in one pass); None when it does."""
        return None

    def quantize(self, y: torch.Tensor, params: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """ŷ (n, M) of one group, and the group's symbols and distributions for `encode`."""
        raise NotImplementedError

    def span(self, group: tuple) -> int:
        """The smallest symbol range that holds this group's symbols."""
        raise NotImplementedError

    def write(self, encoder, group: tuple, symbol_range: int) -> None:
        raise NotImplementedError

    def decode(self, decoder, params: torch.Tensor, symbol_range: int) -> torch.Tensor:
        """ŷ (n, M) of the group whose parameters are `params`, read from `decoder`."""
        raise NotImplementedError

    def encode(self, groups: list[tuple]) -> tuple[int, bytes]:
        """The symbol range and the range coder's bytes, groups written in the order given."""
        symbol_range = max(1, max(self.span(group) for group in groups))
        encoder = constriction.stream.queue.RangeEncoder()
        for group in groups:
            self.write(encoder, group, symbol_range)
        return symbol_range, encoder.get_compressed().tobytes()

    def _snap_scales(self, scales: torch.Tensor) -> torch.Tensor:
        """Each scale (at least SCALE_BOUND) rounded up to the next entry of the scale table."""
        idx = torch.searchsorted(self.scales, scales.clamp(min=SCALE_BOUND).contiguous())
        return self.scales[idx.clamp(max=self.scales.numel() - 1)]


class GaussianCoder(SymbolCoder):
    """One Gaussian per symbol: parameters (scales) or (scales, means), M channels each."""

    def __init__(self, M: int, with_means: bool):
        super().__init__(M)
        self.with_means = with_means

    def _distribution(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(σ snapped to the scale table, μ) of each symbol, both (n, M)."""
        M = self.M
        if not self.with_means:
            return self._snap_scales(params), torch.zeros_like(params)
        return self._snap_scales(params[:, :M]), params[:, M : 2 * M]

    def quantize(self, y, params):
        std, mean = self._distribution(params)
        symbols = torch.round(y - mean)
        return symbols + mean + 0.0, (symbols, std)  # + 0.0: no negative zeros, as the decoder has it

    def span(self, group) -> int:
        return int(group[0].abs().max())

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def _model(symbol_range: int):
        """A zero-mean discretized Gaussian on -symbol_range .. symbol_range (σ given per symbol)."""
        return constriction.stream.model.QuantizedGaussian(-symbol_range, symbol_range)

    def write(self, encoder, group, symbol_range) -> None:
        symbols, std = group
        stds = std.flatten().numpy()
        encoder.encode(symbols.flatten().numpy().astype(np.int32), self._model(symbol_range), np.zeros_like(stds), stds)

    def decode(self, decoder, params, symbol_range):
        std, mean = self._distribution(params)
        stds = std.flatten().numpy()
        symbols = decoder.decode(self._model(symbol_range), np.zeros_like(stds), stds)
        return torch.from_numpy(symbols.astype(np.float64)).view(-1, self.M) + mean


class MixtureCoder(SymbolCoder):
    """K Gaussians per symbol: parameters (K * M weight logits, K * M means, K * M scales)."""

    def __init__(self, M: int, K: int):
        super().__init__(M)
        self.K = K
        self.categorical = constriction.stream.model.Categorical(perfect=False)

    def quantize_ahead(self, y):
        return torch.round(y) + 0.0  # + 0.0 turns -0.0 into 0.0, as the decoder has it

    def _distribution(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weights, means, σ snapped to the scale table), each (n, K, M), and the window centres
        (n, M): the rounded mean of each symbol's heaviest component. Weights are exp(logit -
        max logit), unnormalised (the categorical coder normalises)."""
        K, M = self.K, self.M
        n = params.shape[0]
        logits, means, scales = (params[:, i * K * M : (i + 1) * K * M].reshape(n, K, M) for i in range(3))
        weights = exp_table()(logits - logits.max(dim=1, keepdim=True).values)
        heaviest = weights.argmax(dim=1, keepdim=True)
        centres = torch.round(means.gather(1, heaviest)[:, 0])
        return weights, means, self._snap_scales(scales), centres

    def _pmf(self, weights, means, stds, centres, half_width: int) -> np.ndarray:
        """Probabilities of centre - W .. centre + W for each symbol: (n * M, 2W + 1) float64."""
        cdf = normal_cdf()
        offsets = torch.arange(-half_width, half_width + 1, dtype=DTYPE)
        v = centres[..., None] + offsets  # (n, M, 2W+1)
        pmf = torch.zeros_like(v)
        for k in range(self.K):  # a fixed sum order: exact same bits in encoder and decoder
            mu, sigma = means[:, k, :, None], stds[:, k, :, None]
            upper = cdf((v + 0.5 - mu) / sigma)
            lower = cdf((v - 0.5 - mu) / sigma)
            pmf = pmf + weights[:, k, :, None] * (upper - lower)
        return pmf.reshape(-1, offsets.numel()).numpy()

    def quantize(self, y, params):
        y_hat = self.quantize_ahead(y)
        return y_hat, (*self._distribution(params), y_hat)

    def span(self, group) -> int:
        *_, centres, y_hat = group
        return int((y_hat - centres).abs().max())

    def write(self, encoder, group, symbol_range) -> None:
        weights, means, stds, centres, y_hat = group
        pmf = self._pmf(weights, means, stds, centres, symbol_range)
        index = (y_hat - centres + symbol_range).flatten().numpy().astype(np.int32)
        encoder.encode(index, self.categorical, pmf)

    def decode(self, decoder, params, symbol_range):
        weights, means, stds, centres = self._distribution(params)
        pmf = self._pmf(weights, means, stds, centres, symbol_range)
        index = decoder.decode(self.categorical, pmf)
        return torch.from_numpy(index.astype(np.float64)).view(-1, self.M) + centres - symbol_range


def symbol_coder(M: int, K: int, with_means: bool) -> SymbolCoder:
    """The coder of y's family: one Gaussian (K = 1) or a mixture of K."""
    return GaussianCoder(M, with_means) if K == 1 else MixtureCoder(M, K)
