"""Entropy coding of a LatentModel's latents into the bitstream of `bitstream.py`, and back.

- z (and y of the factorized model) goes through CompressAI's EntropyBottleneck coder, whose
  CDF tables are fixed buffers of the model.
- y goes through constriction's range coder. Its distribution parameters come from the exact
  networks of `exact.py`, so encoder and decoder compute them bit for bit:
  - K = 1: ŷ = round(y - μ) + μ, coded as a zero-mean discretized Gaussian whose scale is snapped
    up to CompressAI's 64-entry scale table (μ lies on the 2^-16 activation grid), as
    CompressAI's mbt2018 does.
  - K >= 2: ŷ = round(y), coded with a categorical distribution over a window of 2W + 1 integers
    around the mean of the heaviest component; its probabilities are the mixture of
    discretized Gaussians (table-snapped scales, weights from a softmax read off a fixed table).
- With a context model the symbols are coded in wavefronts (`schedule.py`): the decoder runs
  context_prediction and entropy_parameters once per wavefront over all its positions, never
  once per position.
"""

from __future__ import annotations

import constriction
import numpy as np
import torch
import torch.nn.functional as F

from rdbench.errors import CodecError
from rdbench.learned import bitstream, schedule
from rdbench.learned.exact import (
    DTYPE,
    ExactContext,
    ExactSequential,
    exp_table,
    normal_cdf,
    scale_table,
)
from rdbench.learned.models import SCALE_BOUND, LatentModel

PAD = 64  # g_a and h_a downsample by 2^6
MIXTURE_CHUNK = 256  # positions per batch of mixture probability tables (bounds memory)


def _padded_size(n: int) -> int:
    return -(-n // PAD) * PAD


class LatentCoder:
    """Compresses images with one LatentModel into bytes and back."""

    def __init__(self, model: LatentModel, model_id: bytes, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.config = model.config
        self.model_id = model_id
        self.device = device
        cfg = self.config
        self.h_s = ExactSequential(model.h_s, "h_s") if cfg.has_hyperprior else None
        if cfg.has_context:
            self.context = ExactContext(model.context_prediction)
            self.entropy_parameters = ExactSequential(model.entropy_parameters, "entropy_parameters", pointwise=True)
        self.scales = scale_table()
        self.pad = cfg.k // 2 if cfg.has_context else 0  # ŷ border the context taps read
        self._gains = {}

    # -- helpers ------------------------------------------------------------------------------
    def _rate(self, rate: int) -> int:
        n = len(self.config.rates)
        if not 0 <= rate < n:
            raise CodecError(f"rate index {rate} outside this model's {n} rate(s)")
        return rate

    def _to_input(self, image: np.ndarray) -> torch.Tensor:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise CodecError(f"expected uint8 H x W x 3, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div_(255)
        x = F.pad(x, (0, _padded_size(w) - w, 0, _padded_size(h) - h), mode="replicate")
        return x.to(self.device)

    def _gain(self, name: str, rate: int) -> torch.Tensor | None:
        if not self.config.variable_rate:
            return None
        key = (name, rate)
        if key not in self._gains:
            self._gains[key] = getattr(self.model, name)[rate].detach().to("cpu", DTYPE).view(-1, 1, 1)
        return self._gains[key]

    def _psi(self, z_hat: torch.Tensor, rate: int) -> torch.Tensor:
        z_in = z_hat[0].to("cpu", DTYPE)
        gain = self._gain("hyper_inverse_gain", rate)
        if gain is not None:
            z_in = z_in * gain
        return self.h_s(z_in[None])[0]

    def _raw_params(self, psi, y_hat_pad, rows, cols) -> torch.Tensor:
        parts = []
        if psi is not None:
            parts.append(psi[:, rows, cols].t())
        if not self.config.has_context:
            return parts[0]
        parts.append(self.context(y_hat_pad, rows, cols))
        return self.entropy_parameters(torch.cat(parts, dim=1))

    def _snap_scales(self, scales: torch.Tensor) -> torch.Tensor:
        idx = torch.searchsorted(self.scales, scales.clamp(min=SCALE_BOUND).contiguous())
        return self.scales[idx.clamp(max=self.scales.numel() - 1)]

    def _gaussian(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(std snapped to the scale table, mean) for each symbol, both (n, M)."""
        M = self.config.M
        if self.config.variant == "hyperprior":
            return self._snap_scales(raw), torch.zeros_like(raw)
        return self._snap_scales(raw[:, :M]), raw[:, M : 2 * M]

    def _mixture(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        K, M = self.config.K, self.config.M
        n = raw.shape[0]
        logits, means, scales = (raw[:, i * K * M : (i + 1) * K * M].reshape(n, K, M) for i in range(3))
        weights = exp_table()(logits - logits.max(dim=1, keepdim=True).values)
        return weights, means, self._snap_scales(scales)

    @staticmethod
    def _centres(weights: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        heaviest = weights.argmax(dim=1, keepdim=True)
        return torch.round(means.gather(1, heaviest)[:, 0])

    def _mixture_pmf(self, weights, means, stds, centres, half_width: int) -> np.ndarray:
        """Probabilities of centre - W .. centre + W for each symbol: (n * M, 2W + 1) float64."""
        cdf = normal_cdf()
        offsets = torch.arange(-half_width, half_width + 1, dtype=DTYPE)
        v = centres[..., None] + offsets  # (n, M, 2W+1)
        pmf = torch.zeros_like(v)
        for k in range(self.config.K):  # a fixed sum order: exact same bits in encoder and decoder
            mu, sigma = means[:, k, :, None], stds[:, k, :, None]
            upper = cdf((v + 0.5 - mu) / sigma)
            lower = cdf((v - 0.5 - mu) / sigma)
            pmf = pmf + weights[:, k, :, None] * (upper - lower)
        return pmf.reshape(-1, offsets.numel()).numpy()

    # -- encode ---------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: int = 0) -> bytes:
        return self.encode_with_latent(image, rate)[0]

    @torch.no_grad()
    def encode_with_latent(self, image: np.ndarray, rate: int = 0) -> tuple[bytes, torch.Tensor]:
        """The bitstream, and ŷ (1, M, h, w) as the encoder quantized it (for tests and tools)."""
        rate = self._rate(rate)
        h, w = image.shape[:2]
        cfg = self.config
        x = self._to_input(image)
        y = self.model.analyse(x, rate)
        eb = getattr(self.model, "entropy_bottleneck", None)
        if cfg.variant == "factorized":
            y_str = eb.compress(y)[0]
            y_hat = eb.decompress([y_str], y.shape[-2:]).to("cpu", DTYPE)
            return bitstream.Bitstream(self.model_id, h, w, rate, 0, b"", y_str).to_bytes(), y_hat

        z_str, psi = b"", None
        if cfg.has_hyperprior:
            z = self.model.hyper_analyse(y, rate)
            z_str = eb.compress(z)[0]
            psi = self._psi(eb.decompress([z_str], z.shape[-2:]), rate)
        y = y[0].to("cpu", DTYPE)
        encode_y = self._encode_gaussian if cfg.K == 1 else self._encode_mixture
        symbol_range, y_str, y_hat = encode_y(y, psi)
        data = bitstream.Bitstream(self.model_id, h, w, rate, symbol_range, z_str, y_str).to_bytes()
        return data, y_hat[None]

    def _padded_latent(self, M: int, h: int, w: int) -> torch.Tensor:
        p = self.pad
        return torch.zeros(M, h + 2 * p, w + 2 * p, dtype=DTYPE)

    def _groups(self, h: int, w: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self.config.has_context:
            return schedule.wavefronts(h, w, self.config.k)
        return [schedule.coding_order(h, w, None)]

    def _encode_gaussian(self, y: torch.Tensor, psi) -> tuple[int, bytes, torch.Tensor]:
        M, h, w = y.shape
        p = self.pad
        y_hat_pad = self._padded_latent(M, h, w)
        symbols, stds = [], []
        for rows, cols in self._groups(h, w):
            std, mean = self._gaussian(self._raw_params(psi, y_hat_pad, rows, cols))
            sym = torch.round(y[:, rows, cols].t() - mean)
            y_hat_pad[:, rows + p, cols + p] = (sym + mean).t() + 0.0  # + 0.0: no negative zeros
            symbols.append(sym)
            stds.append(std)
        symbols = torch.cat(symbols).flatten()
        symbol_range = max(1, int(symbols.abs().max()))
        encoder = constriction.stream.queue.RangeEncoder()
        model = constriction.stream.model.QuantizedGaussian(-symbol_range, symbol_range)
        stds = torch.cat(stds).flatten().numpy()
        encoder.encode(symbols.numpy().astype(np.int32), model, np.zeros_like(stds), stds)
        return symbol_range, encoder.get_compressed().tobytes(), y_hat_pad[:, p : p + h, p : p + w]

    def _encode_mixture(self, y: torch.Tensor, psi) -> tuple[int, bytes, torch.Tensor]:
        M, h, w = y.shape
        p = self.pad
        y_hat = torch.round(y) + 0.0  # + 0.0 turns -0.0 into 0.0, as the decoder has it
        y_hat_pad = self._padded_latent(M, h, w)
        y_hat_pad[:, p : p + h, p : p + w] = y_hat
        rows, cols = schedule.coding_order(h, w, self.config.k if self.config.has_context else None)
        # y_hat is known in full, so the parameters of every position come in one pass (chunked)
        chunks = []
        for start in range(0, rows.numel(), MIXTURE_CHUNK):
            r, c = rows[start : start + MIXTURE_CHUNK], cols[start : start + MIXTURE_CHUNK]
            weights, means, stds = self._mixture(self._raw_params(psi, y_hat_pad, r, c))
            centres = self._centres(weights, means)
            chunks.append((weights, means, stds, centres, y_hat[:, r, c].t()))
        half_width = max(1, max(int((sym - centre).abs().max()) for *_, centre, sym in chunks))
        encoder = constriction.stream.queue.RangeEncoder()
        categorical = constriction.stream.model.Categorical(perfect=False)
        for weights, means, stds, centres, sym in chunks:
            pmf = self._mixture_pmf(weights, means, stds, centres, half_width)
            index = (sym - centres + half_width).flatten().numpy().astype(np.int32)
            encoder.encode(index, categorical, pmf)
        return half_width, encoder.get_compressed().tobytes(), y_hat

    # -- decode ---------------------------------------------------------------------------------
    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_with_latent(data)[0]

    @torch.no_grad()
    def decode_with_latent(self, data: bytes) -> tuple[np.ndarray, torch.Tensor]:
        """The image (uint8 H x W x 3), and ŷ (1, M, h, w)."""
        y_hat, bs = self.decode_latent(data)
        x_hat = self.model.synthesise(y_hat.to(self.device, torch.float32), bs.rate)
        x_hat = x_hat[0, :, : bs.height, : bs.width].clamp(0, 1).mul(255).round().byte()
        return x_hat.permute(1, 2, 0).cpu().numpy(), y_hat

    @torch.no_grad()
    def decode_latent(self, data: bytes) -> tuple[torch.Tensor, bitstream.Bitstream]:
        """ŷ (1, M, h, w) exactly as the encoder had it, and the parsed bitstream."""
        bs = bitstream.parse(data, self.model_id)
        rate = self._rate(bs.rate)
        cfg = self.config
        h, w = _padded_size(bs.height) // 16, _padded_size(bs.width) // 16
        eb = getattr(self.model, "entropy_bottleneck", None)
        try:
            if cfg.variant == "factorized":
                return eb.decompress([bs.y], (h, w)).to("cpu", DTYPE), bs
            psi = self._psi(eb.decompress([bs.z], (h // 4, w // 4)), rate) if cfg.has_hyperprior else None
            decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(bs.y, dtype=np.uint32).copy())
        except (RuntimeError, ValueError) as exc:
            raise bitstream.BitstreamError(f"bitstream does not decode: {exc}") from exc
        if len(bs.y) % 4:
            raise bitstream.BitstreamError(f"y part is {len(bs.y)} bytes, not a whole number of 32-bit words")
        M = cfg.M
        p = self.pad
        y_hat_pad = self._padded_latent(M, h, w)
        if cfg.K == 1:
            model = constriction.stream.model.QuantizedGaussian(-bs.symbol_range, bs.symbol_range)
        else:
            model = constriction.stream.model.Categorical(perfect=False)
        for rows, cols in self._groups(h, w):
            raw = self._raw_params(psi, y_hat_pad, rows, cols)
            if cfg.K == 1:
                std, mean = self._gaussian(raw)
                stds = std.flatten().numpy()
                sym = decoder.decode(model, np.zeros_like(stds), stds)
                y_hat = torch.from_numpy(sym.astype(np.float64)).view(-1, M) + mean
            else:
                for start in range(0, rows.numel(), MIXTURE_CHUNK):
                    r, c = rows[start : start + MIXTURE_CHUNK], cols[start : start + MIXTURE_CHUNK]
                    weights, means, stds = self._mixture(raw[start : start + MIXTURE_CHUNK])
                    centres = self._centres(weights, means)
                    pmf = self._mixture_pmf(weights, means, stds, centres, bs.symbol_range)
                    index = decoder.decode(model, pmf)
                    sym = torch.from_numpy(index.astype(np.float64)).view(-1, M) + centres - bs.symbol_range
                    y_hat_pad[:, r + p, c + p] = sym.t()
                continue
            y_hat_pad[:, rows + p, cols + p] = y_hat.t()
        return y_hat_pad[None, :, p : p + h, p : p + w], bs

    # -- the model's own estimate ---------------------------------------------------------------
    @torch.no_grad()
    def estimated_bits(self, image: np.ndarray, rate: int = 0) -> float:
        """-sum log2 of the model's likelihoods (its rate estimate, no entropy coder involved)."""
        rate = self._rate(rate)
        _, likelihoods = self.model.quantize_with_likelihoods(self.model.analyse(self._to_input(image), rate), rate)
        return float(sum(-torch.log2(lik).sum() for lik in likelihoods.values()))

