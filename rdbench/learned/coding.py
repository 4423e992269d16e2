"""The paper's AE/AD: a LatentModel's latents into the bitstream of `bitstream.py`, and back.

`LatentCoder` only orchestrates; the symbols are coded by the coders of `symbols.py`:

1. pad the image to a multiple of PAD and run g_a (y, 1/Y_STRIDE of the padded image);
2. factorized model: y goes through its FactorizedCoder, done;
3. with a hyperprior: z = h_a(y) (1/Z_STRIDE of y) through the FactorizedCoder of z, then
   ψ = h_s(ẑ), evaluated exactly (exact.py);
4. y through the model's SymbolCoder (Gaussian or mixture), in groups of positions: with a
   context model, wavefront by wavefront (`schedule.py`), each wavefront's parameters from
   context_prediction and entropy_parameters (exact) over the ŷ decoded so far; without one,
   ψ is the parameters and all positions form one group. Groups are split into chunks of at
   most CHUNK positions, which bounds memory and changes no bit.

The decoder runs the same steps, with context_prediction and entropy_parameters once per
wavefront over all its positions, never once per position.

Decode timing (complexity.decode_time_split): set `LatentCoder.timings` to a dict and each decode
adds its seconds (time.perf_counter) under "transforms" (h_s and g_s), "entropy_parameters" (each
group's distribution parameters: context_prediction and entropy_parameters, or reading ψ without a
context model) and "entropy_coding" (the symbol coders' decoding, their probability tables
included). Left at None (the default) nothing is timed; either way no bit changes.

A damaged or hostile stream cannot crash, hang or exhaust the decoder: bitstream.parse checks
the checksum (header included), the contract, the model and the image size (max_pixels) before
anything is allocated; `_check_fields` checks the rate index, the symbol range and the z part
against the model; the symbol coders turn every failure inside constriction into a
BitstreamError; and ẑ or ŷ that trip the exactness guard of h_s, context_prediction or
entropy_parameters (the encoder's own values never do: it ran the same guard on them) are
reported as damage too. Work and memory are then bounded by the pixel limit.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
import torch.nn.functional as F

from rdbench.errors import CodecError
from rdbench.learned import bitstream, schedule
from rdbench.learned.bitstream import BitstreamError
from rdbench.learned.exact import DTYPE, ExactContext, ExactnessError, ExactSequential
from rdbench.learned.models import Y_STRIDE, Z_STRIDE, LatentModel
from rdbench.learned.symbols import FactorizedCoder, range_decoder, symbol_coder

PAD = Y_STRIDE * Z_STRIDE  # 64: the padded image is a whole number of z positions
CHUNK = 256  # positions per batch of parameters and probability tables (bounds memory)


def _padded_size(n: int) -> int:
    return -(-n // PAD) * PAD


def latent_size(height: int, width: int) -> tuple[int, int]:
    """(h, w) of y for an image of height x width pixels (z is (h, w) // Z_STRIDE)."""
    return _padded_size(height) // Y_STRIDE, _padded_size(width) // Y_STRIDE


class LatentCoder:
    """Compresses images with one LatentModel into bytes and back."""

    def __init__(self, model: LatentModel, model_id: bytes, device: str = "cpu", max_pixels: int | None = None):
        """max_pixels: the largest image a bitstream may declare (bitstream.resolve_max_pixels)."""
        self.max_pixels = bitstream.resolve_max_pixels(max_pixels)
        self.model = model.to(device).eval()
        self.config = cfg = model.config
        self.model_id = model_id
        self.device = device
        eb = getattr(model, "entropy_bottleneck", None)
        self.factorized = FactorizedCoder(eb) if cfg.has_entropy_bottleneck else None
        self.h_s = ExactSequential(model.h_s, "h_s") if cfg.has_hyperprior else None
        if cfg.has_context:
            self.context = ExactContext(model.context_prediction)
            self.entropy_parameters = ExactSequential(model.entropy_parameters, "entropy_parameters", pointwise=True)
        self.symbols = None if cfg.y_factorized else symbol_coder(cfg.M, cfg.K, cfg.has_means)
        self.pad = cfg.k // 2 if cfg.has_context else 0  # ŷ border the context taps read
        self._gains = {}
        self.timings: dict[str, float] | None = None  # a dict: decode adds its seconds per part (see above)

    def _timed(self, part: str):
        """A context that adds its wall time to self.timings[part] (a no-op when timings is None)."""
        if self.timings is None:
            return contextlib.nullcontext()
        return _Timer(self.timings, part, self.device)

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
        """ψ = h_s(ẑ) (C, h, w), exactly."""
        z_in = z_hat[0].to("cpu", DTYPE)
        gain = self._gain("hyper_inverse_gain", rate)
        if gain is not None:
            z_in = z_in * gain
        return self.h_s(z_in[None])[0]

    def _params(self, psi, y_hat_pad, rows, cols) -> torch.Tensor:
        """y's distribution parameters at (rows, cols): (n, param_channels), exactly."""
        parts = []
        if psi is not None:
            parts.append(psi[:, rows, cols].t())
        if not self.config.has_context:
            return parts[0]
        parts.append(self.context(y_hat_pad, rows, cols))
        return self.entropy_parameters(torch.cat(parts, dim=1))

    def _groups(self, h: int, w: int, one_pass: bool = False):
        """(rows, cols) of each group of at most CHUNK positions, in coding order: wavefronts when
        a context model reads ŷ decoded so far (unless `one_pass`: ŷ is known in full)."""
        k = self.config.k if self.config.has_context else None
        fronts = schedule.wavefronts(h, w, k) if k and not one_pass else [schedule.coding_order(h, w, k)]
        for rows, cols in fronts:
            for start in range(0, rows.numel(), CHUNK):
                yield rows[start : start + CHUNK], cols[start : start + CHUNK]

    def _padded_latent(self, M: int, h: int, w: int) -> torch.Tensor:
        p = self.pad
        return torch.zeros(M, h + 2 * p, w + 2 * p, dtype=DTYPE)

    # -- encode ---------------------------------------------------------------------------------
    def encode(self, image: np.ndarray, rate: int = 0) -> bytes:
        return self.encode_with_latent(image, rate)[0]

    @torch.no_grad()
    def encode_with_latent(self, image: np.ndarray, rate: int = 0) -> tuple[bytes, torch.Tensor]:
        """The bitstream, and ŷ (1, M, h, w) as the encoder quantized it (for tests and tools)."""
        rate = self._rate(rate)
        h, w = image.shape[:2]
        y = self.model.analyse(self._to_input(image), rate)
        if self.config.y_factorized:
            y_str, y_hat = self.factorized.encode(y)
            return bitstream.Bitstream(self.model_id, h, w, rate, 0, b"", y_str).to_bytes(), y_hat

        z_str, psi = b"", None
        if self.config.has_hyperprior:
            z_str, z_hat = self.factorized.encode(self.model.hyper_analyse(y, rate))
            psi = self._psi(z_hat, rate)
        symbol_range, y_str, y_hat = self._encode_y(y[0].to("cpu", DTYPE), psi)
        data = bitstream.Bitstream(self.model_id, h, w, rate, symbol_range, z_str, y_str).to_bytes()
        return data, y_hat[None]

    def _encode_y(self, y: torch.Tensor, psi) -> tuple[int, bytes, torch.Tensor]:
        M, h, w = y.shape
        p = self.pad
        y_hat_pad = self._padded_latent(M, h, w)
        interior = y_hat_pad[:, p : p + h, p : p + w]  # a view
        ahead = self.symbols.quantize_ahead(y)
        if ahead is not None:
            interior.copy_(ahead)
        groups = []
        for rows, cols in self._groups(h, w, one_pass=ahead is not None):
            y_hat, group = self.symbols.quantize(y[:, rows, cols].t(), self._params(psi, y_hat_pad, rows, cols))
            y_hat_pad[:, rows + p, cols + p] = y_hat.t()
            groups.append(group)
        symbol_range, y_str = self.symbols.encode(groups)
        return symbol_range, y_str, interior

    # -- decode ---------------------------------------------------------------------------------
    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_with_latent(data)[0]

    @torch.no_grad()
    def decode_with_latent(self, data: bytes) -> tuple[np.ndarray, torch.Tensor]:
        """The image (uint8 H x W x 3), and ŷ (1, M, h, w)."""
        y_hat, bs = self.decode_latent(data)
        try:
            with self._timed("transforms"):
                x_hat = self.model.synthesise(y_hat.to(self.device, torch.float32), bs.rate)
        except (MemoryError, RuntimeError) as exc:  # torch's allocator raises RuntimeError
            raise CodecError(f"g_s failed on a {bs.width}x{bs.height} image ({type(exc).__name__}: {exc})") from exc
        x_hat = torch.nan_to_num(x_hat[0, :, : bs.height, : bs.width], nan=0.0)  # a damaged ŷ can overflow g_s
        x_hat = x_hat.clamp(0, 1).mul(255).round().byte()
        return x_hat.permute(1, 2, 0).cpu().numpy(), y_hat

    @torch.no_grad()
    def decode_latent(self, data: bytes) -> tuple[torch.Tensor, bitstream.Bitstream]:
        """ŷ (1, M, h, w) exactly as the encoder had it, and the parsed bitstream."""
        bs = bitstream.parse(data, self.model_id, self.max_pixels)
        self._check_fields(bs)
        h, w = latent_size(bs.height, bs.width)
        try:
            return self._decode_latent(bs, h, w), bs
        except ExactnessError as exc:
            raise BitstreamError(
                f"bitstream damaged: its latents are outside anything this model's encoder produces ({exc})"
            ) from exc

    def _check_fields(self, bs: bitstream.Bitstream) -> None:
        """The header's fields against this model, before anything is decoded."""
        cfg = self.config
        n = len(cfg.rates)
        if bs.rate >= n:
            raise BitstreamError(f"bitstream damaged: rate index {bs.rate}, but this model has {n} rate(s)")
        if cfg.y_factorized:
            if bs.symbol_range:
                raise BitstreamError(f"bitstream damaged: symbol range {bs.symbol_range}, but this model's y is factorized (0)")
        elif not 1 <= bs.symbol_range <= self.symbols.max_symbol_range:
            raise BitstreamError(
                f"bitstream damaged: symbol range {bs.symbol_range} outside 1..{self.symbols.max_symbol_range}"
            )
        if bool(bs.z) != cfg.has_hyperprior:
            has = "has a hyperprior" if cfg.has_hyperprior else "has no hyperprior"
            raise BitstreamError(f"bitstream damaged: z part of {len(bs.z)} bytes, but this model {has}")

    def _decode_latent(self, bs: bitstream.Bitstream, h: int, w: int) -> torch.Tensor:
        timed = self._timed
        if self.config.y_factorized:
            with timed("entropy_coding"):
                return self.factorized.decode(bs.y, (h, w))
        psi = None
        if self.config.has_hyperprior:
            with timed("entropy_coding"):
                z_hat = self.factorized.decode(bs.z, (h // Z_STRIDE, w // Z_STRIDE))
            with timed("transforms"):
                psi = self._psi(z_hat, bs.rate)
        decoder = range_decoder(bs.y)
        p = self.pad
        y_hat_pad = self._padded_latent(self.config.M, h, w)
        for rows, cols in self._groups(h, w):
            with timed("entropy_parameters"):
                params = self._params(psi, y_hat_pad, rows, cols)
            with timed("entropy_coding"):
                y_hat = self.symbols.decode(decoder, params, bs.symbol_range)
            y_hat_pad[:, rows + p, cols + p] = y_hat.t()
        return y_hat_pad[None, :, p : p + h, p : p + w]

    # -- the model's own estimate ---------------------------------------------------------------
    @torch.no_grad()
    def estimated_bits(self, image: np.ndarray, rate: int = 0) -> float:
        """-sum log2 of the model's likelihoods (its rate estimate, no entropy coder involved)."""
        rate = self._rate(rate)
        _, likelihoods = self.model.quantize_with_likelihoods(self.model.analyse(self._to_input(image), rate), rate)
        return float(sum(-torch.log2(lik).sum() for lik in likelihoods.values()))


class _Timer:
    """Adds the wall time of a `with` block to timings[part] (waiting for a GPU first, at both ends,
    so that its queued work lands in the part that queued it)."""

    __slots__ = ("timings", "part", "cuda", "start")

    def __init__(self, timings: dict, part: str, device: str):
        self.timings, self.part, self.cuda = timings, part, str(device).startswith("cuda")

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.timings[self.part] = self.timings.get(self.part, 0.0) + time.perf_counter() - self.start
        return False
