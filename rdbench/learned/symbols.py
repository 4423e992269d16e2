"""Symbol coders: one per distribution family, each coding one group of latent positions.

- `FactorizedCoder`: a whole latent (z, or y of the factorized model) with the density of
  CompressAI's EntropyBottleneck, whose CDF tables are fixed buffers of the model, range-coded by
  constriction. The density has no per-position parameters, so it codes all positions at once.
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

Damaged streams: every call into constriction's decoder goes through `decoding`, which turns any
failure into a BitstreamError; the symbol range is bounded (`max_symbol_range`: 2^16 - 1 for the
Gaussian, MAX_WINDOW for a mixture, whose pmfs are computed PMF_BUDGET entries at a time) and
checked by coding.py before decoding starts, so no model is built with an empty support (that
panics). `check_constriction` pins constriction's own quantisation to the numeric contract.
"""

from __future__ import annotations

import functools
import hashlib

import constriction
import numpy as np
import torch

from rdbench.errors import CodecError
from rdbench.learned.bitstream import BitstreamError
from rdbench.learned.contract import CONSTRICTION_PROBE_SHA256, CONTRACT_NAME
from rdbench.learned.exact import DTYPE, SCALE_BOUND, ContractError, exp_table, normal_cdf, scale_table

_model = constriction.stream.model
MAX_WINDOW = 2**12  # the largest mixture window half-width W (the pmf of a symbol has 2W + 1 entries)
PMF_BUDGET = 2**22  # pmf entries computed at once (32 MB of float64): bounds memory whatever W is


def range_decoder(data: bytes):
    """constriction's range decoder over `data` (whole 32-bit words: bitstream.parse checked)."""
    return constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))


def decoding(what: str, call, *args):
    """`call(*args)` inside a third-party decoder: any failure there (constriction raises
    AssertionError or ValueError, and panics with pyo3's PanicException, a BaseException) means the
    data is not what this model's encoder wrote, and becomes a BitstreamError saying so."""
    try:
        return call(*args)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: B036  (PanicException derives from BaseException only)
        raise BitstreamError(f"bitstream damaged: {what} does not decode ({type(exc).__name__}: {exc})") from exc


_constriction_checked = False


def check_constriction() -> None:
    """Encode a fixed message with every constriction model rdbench uses and compare the words to
    the contract's pinned digest: a constriction that quantizes differently is refused by name
    before it codes anything (once per process)."""
    global _constriction_checked
    if _constriction_checked:
        return
    digest = hashlib.sha256(_constriction_probe().astype("<u4").tobytes()).hexdigest()
    if digest != CONSTRICTION_PROBE_SHA256:
        raise ContractError(
            f"constriction {getattr(constriction, '__version__', '(version unknown)')} codes differently from "
            f"{CONTRACT_NAME} (probe SHA-256 {digest[:16]}..., pinned {CONSTRICTION_PROBE_SHA256[:16]}...): "
            f"its bitstreams would not decode elsewhere; install the constriction version rdbench names"
        )
    _constriction_checked = True


def _constriction_probe() -> np.ndarray:
    encoder = constriction.stream.queue.RangeEncoder()
    stds = np.array([0.11, 0.37, 1.9, 7.25, 40.5, 255.0])
    encoder.encode(np.array([0, -1, 3, -9, 60, 300], dtype=np.int32), _model.QuantizedGaussian(-400, 400),
                   np.zeros_like(stds), stds)
    pmf = np.array([[0.5, 0.25, 0.125, 0.125, 0.0], [1e-12, 0.3, 0.3, 0.4, 1e-3], [0.1, 0.2, 0.3, 0.2, 0.2]])
    encoder.encode(np.array([0, 4, 2], dtype=np.int32), _model.Categorical(perfect=False), pmf)
    encoder.encode(np.array([1, 2], dtype=np.int32), _model.Categorical(pmf[2], perfect=False))
    encoder.encode(np.array([32, 0], dtype=np.int32), _model.Uniform(33))
    encoder.encode(np.array([1, 65535, 9], dtype=np.int32), _model.Uniform(), np.array([2, 2**16, 16], dtype=np.int32))
    return encoder.get_compressed()


class FactorizedCoder:
    """A latent (1, C, h, w) through an EntropyBottleneck's density, and back (float64, CPU).

    The density is the bottleneck's own: per channel, its 16-bit quantized CDF (buffers of the
    checkpoint, so part of the model id) over the symbols round(x - median) in offset ..
    offset + L - 1, and one escape symbol for the rest, as CompressAI lays it out. rdbench codes
    them with constriction's range coder, not CompressAI's rANS, whose decoder reads past the end
    of a damaged string (a changed image size in a header made it crash). Channel by channel
    (each channel's positions in raster order), then each escaped value as its bit length
    (Uniform(33)) and its bits below the leading one, in chunks of at most 16.
    """

    def __init__(self, entropy_bottleneck):
        eb = entropy_bottleneck
        cdf = eb._quantized_cdf.detach().to("cpu", torch.int64).numpy()
        lengths = eb._cdf_length.detach().to("cpu", torch.int64).numpy()
        self.offsets = eb._offset.detach().to("cpu", torch.int64)
        self.medians = eb.quantiles[:, 0, 1].detach().to("cpu", torch.float32)
        self.sizes = torch.from_numpy(lengths - 2)  # L: in-range symbols per channel; L is the escape
        self.models = []
        for c, n in enumerate(lengths):
            freq = np.diff(cdf[c, :n]) if n >= 3 else np.zeros(0, dtype=np.int64)
            if freq.size < 2 or (freq <= 0).any() or cdf[c, 0] != 0 or cdf[c, n - 1] != 2**16:
                raise CodecError(f"entropy bottleneck channel {c}: its quantized CDF is not a valid 16-bit table")
            self.models.append(_model.Categorical(freq / 2.0**16, perfect=False))
        check_constriction()

    def _dequantize(self, values: torch.Tensor) -> torch.Tensor:
        """ŷ from the integer values round(x - median): values + median in float32, as CompressAI's
        EntropyBottleneck dequantizes, then float64."""
        return (values.to(torch.float32) + self.medians.view(-1, 1, 1)).to(DTYPE)

    def encode(self, latent: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        """The bytes, and the quantized latent (1, C, h, w) exactly as `decode` returns it."""
        x = latent[0].detach().to("cpu", torch.float32)
        values = torch.round(x - self.medians.view(-1, 1, 1))
        if not bool(torch.isfinite(values).all()) or float(values.abs().max()) >= 2**30:
            raise CodecError("a latent is not finite or beyond 2^30 in magnitude: a diverged model cannot be coded")
        C = values.shape[0]
        symbols = values.to(torch.int64).reshape(C, -1) - self.offsets.view(-1, 1)
        sizes = self.sizes.view(-1, 1)
        escaped = (symbols < 0) | (symbols >= sizes)
        index = torch.where(escaped, sizes, symbols).to(torch.int32).numpy()
        encoder = constriction.stream.queue.RangeEncoder()
        for c in range(C):
            encoder.encode(np.ascontiguousarray(index[c]), self.models[c])
        if bool(escaped.any()):
            over = symbols[escaped]
            raw = torch.where(over < 0, -2 * over - 1, 2 * (over - sizes.expand_as(symbols)[escaped]))
            self._write_escapes(encoder, raw.numpy())
        return encoder.get_compressed().tobytes(), self._dequantize(values)[None]

    @staticmethod
    def _write_escapes(encoder, raw: np.ndarray) -> None:
        bits = np.zeros(raw.shape, dtype=np.int32)  # bit length of each raw value (< 2^32)
        for b in range(32):
            bits += (raw >> b) > 0
        encoder.encode(bits, _model.Uniform(33))
        rest = raw - np.where(bits > 0, np.left_shift(1, np.maximum(bits - 1, 0)), 0)
        low_bits, high_bits = np.minimum(np.maximum(bits - 1, 0), 16), np.maximum(bits - 17, 0)
        low, high = low_bits > 0, high_bits > 0
        for chosen, chunk, width in ((low, rest & 0xFFFF, low_bits), (high, rest >> 16, high_bits)):
            if chosen.any():
                encoder.encode(chunk[chosen].astype(np.int32), _model.Uniform(), (1 << width[chosen]).astype(np.int32))

    @staticmethod
    def _read(decoder, *args) -> np.ndarray:
        return decoding("an entropy-bottleneck part", decoder.decode, *args)

    def _read_escapes(self, decoder, n: int) -> np.ndarray:
        bits = self._read(decoder, _model.Uniform(33), n).astype(np.int64)
        low_bits, high_bits = np.minimum(np.maximum(bits - 1, 0), 16), np.maximum(bits - 17, 0)
        low, high = low_bits > 0, high_bits > 0
        rest = np.zeros(n, dtype=np.int64)
        for chosen, width, shift in ((low, low_bits, 0), (high, high_bits, 16)):
            if chosen.any():
                chunk = self._read(decoder, _model.Uniform(), (1 << width[chosen]).astype(np.int32))
                rest[chosen] += chunk.astype(np.int64) << shift
        return rest + np.where(bits > 0, np.left_shift(1, np.maximum(bits - 1, 0)), 0)

    def decode(self, data: bytes, size: tuple[int, int]) -> torch.Tensor:
        """The quantized latent (1, C, h, w) of `data`; raises BitstreamError for damaged data."""
        h, w = size
        decoder = range_decoder(data)
        index = np.stack([self._read(decoder, model, h * w) for model in self.models]).astype(np.int64)
        symbols = torch.from_numpy(index)
        sizes = self.sizes.view(-1, 1).expand_as(symbols)
        escaped = symbols == sizes
        n = int(escaped.sum())
        if n:
            raw = torch.from_numpy(self._read_escapes(decoder, n))
            symbols[escaped] = torch.where(raw % 2 == 1, -(raw + 1) // 2, sizes[escaped] + raw // 2)
        values = (symbols + self.offsets.view(-1, 1)).view(-1, h, w)
        return self._dequantize(values)[None]


class SymbolCoder:
    """Codes ŷ at groups of positions, given their distribution parameters."""

    max_symbol_range = MAX_WINDOW  # the largest symbol range a header may give (symbol_range)

    def __init__(self, M: int):
        self.M = M
        self.scales = scale_table()
        check_constriction()

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
        if symbol_range > self.max_symbol_range:
            raise CodecError(
                f"latent symbols lie up to {symbol_range} from their predicted means, beyond the format's "
                f"{self.max_symbol_range}: the model predicts them too badly to code (untrained or diverged?)"
            )
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

    max_symbol_range = 2**16 - 1  # constriction's Gaussian codes any range at the same cost

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
        symbols = decoding("y", decoder.decode, self._model(symbol_range), np.zeros_like(stds), stds)
        return torch.from_numpy(symbols.astype(np.float64)).view(-1, self.M) + mean


class MixtureCoder(SymbolCoder):
    """K Gaussians per symbol: parameters (K * M weight logits, K * M means, K * M scales)."""

    def __init__(self, M: int, K: int):
        super().__init__(M)
        self.K = K
        self.categorical = constriction.stream.model.Categorical(perfect=False)

    def quantize_ahead(self, y):
        return torch.round(y) + 0.0  # + 0.0 turns -0.0 into 0.0, as the decoder has it

    def _distribution(self, params: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(weights, means, σ snapped to the scale table), each (n, K, M), and the window centres
        (n, M): the rounded mean of each symbol's heaviest component (the first of equal ones).
        Weights are exp(logit - max logit), unnormalised (the categorical coder normalises). float64
        numpy arrays, computed with numpy's IEEE operations in place of torch's same ones (the
        exp table read by InterpolatedFunction.values_into; round half to even; searchsorted to
        the left), which saves torch's per-call cost on the small arrays of one wavefront."""
        K, M = self.K, self.M
        p = params.numpy()
        n = p.shape[0]
        logits, means, scales = (p[:, i * K * M : (i + 1) * K * M].reshape(n, K, M) for i in range(3))
        top = logits[:, 0].copy()
        for k in range(1, K):
            np.maximum(top, logits[:, k], out=top)
        weights = exp_table().values_into(logits - top[:, None])
        # the mean of the heaviest component (the first of equal ones, as argmax picks), rounded
        heaviest, centres = weights[:, 0], means[:, 0]
        for k in range(1, K):
            heavier = weights[:, k] > heaviest
            heaviest, centres = np.where(heavier, weights[:, k], heaviest), np.where(heavier, means[:, k], centres)
        centres = np.rint(centres)
        table = self.scales.numpy()
        stds = table[np.minimum(np.searchsorted(table, np.maximum(scales, SCALE_BOUND)), table.size - 1)]
        return weights, means, stds, centres

    def _batches(self, n: int, half_width: int):
        """Slices of at most PMF_BUDGET pmf entries (at least one position) over n positions: the
        symbols keep their order, so batching changes no bit."""
        step = max(1, PMF_BUDGET // (self.M * (2 * half_width + 1)))
        return (slice(start, start + step) for start in range(0, n, step))

    def _pmf(self, weights, means, stds, centres, half_width: int) -> np.ndarray:
        """Probabilities of centre - W .. centre + W for each symbol: (n * M, 2W + 1) float64.

        Bin v's probability under component k is Φ((v + 1/2 - μ) / σ) - Φ((v - 1/2 - μ) / σ).
        Neighbouring bins share an edge, and v + 1/2 and (v + 1) - 1/2 are the same float (integers
        and halves are exact far beyond any centre a model yields: the exact networks keep μ below
        2^17), so Φ is evaluated once at each of the 2W + 2 edges instead of twice per bin, and the
        bins are differences of neighbouring edges: the same operations on the same values as bin
        by bin, so the same bits (tests/test_mixture_tables.py compares with the bin-by-bin
        construction). All positions of a group (a wavefront) are built in one numpy pass, with
        the mixture summed in a fixed component order, as the contract prescribes."""
        # The edge index j leads (arrays (2W + 2, n, K, M)): numpy's inner loops then run over
        # whole contiguous rows of positions and channels, not over the few edges of one symbol.
        offsets = np.arange(-half_width, half_width + 2, dtype=np.float64)[:, None, None]
        edges = centres[None] + offsets
        np.subtract(edges, 0.5, out=edges)  # (2W + 2, n, M): centre + j - W - 1/2
        t = np.subtract(edges[:, :, None], means[None])  # (2W + 2, n, K, M): every component at once
        np.divide(t, stds[None], out=t)
        c = normal_cdf().values_into(t)
        bins = np.subtract(c[1:], c[:-1])  # (2W + 1, n, K, M)
        np.multiply(weights[None], bins, out=bins)
        pmf = bins[:, :, 0] + 0.0  # 0 + the first term, as the contract sums (the terms are >= +0)
        for k in range(1, self.K):  # a fixed sum order: exact same bits in encoder and decoder
            np.add(pmf, bins[:, :, k], out=pmf)
        return np.ascontiguousarray(pmf.transpose(1, 2, 0)).reshape(-1, 2 * half_width + 1)

    def quantize(self, y, params):
        y_hat = self.quantize_ahead(y)
        return y_hat, (*self._distribution(params), y_hat)

    def span(self, group) -> int:
        *_, centres, y_hat = group
        return int(np.abs(y_hat.numpy() - centres).max())

    def write(self, encoder, group, symbol_range) -> None:
        weights, means, stds, centres, y_hat = group
        for b in self._batches(centres.shape[0], symbol_range):
            pmf = self._pmf(weights[b], means[b], stds[b], centres[b], symbol_range)
            index = (y_hat[b].numpy() - centres[b] + symbol_range).flatten().astype(np.int32)
            encoder.encode(index, self.categorical, pmf)

    def decode(self, decoder, params, symbol_range):
        weights, means, stds, centres = self._distribution(params)
        index = [
            decoding("y", decoder.decode, self.categorical, self._pmf(weights[b], means[b], stds[b], centres[b], symbol_range))
            for b in self._batches(centres.shape[0], symbol_range)
        ]
        index = np.concatenate(index).astype(np.float64).reshape(-1, self.M)
        return torch.from_numpy(index + centres - symbol_range)


def symbol_coder(M: int, K: int, with_means: bool) -> SymbolCoder:
    """The coder of y's family: one Gaussian (K = 1) or a mixture of K."""
    return GaussianCoder(M, with_means) if K == 1 else MixtureCoder(M, K)
