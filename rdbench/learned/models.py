"""The Minnen, Ballé & Toderici (2018) model family, built on CompressAI's layers.

One class, `LatentModel`, holds the boxes a variant has, under the paper's names:

- `g_a`, `g_s`: analysis and synthesis transforms (y = g_a(x), x̂ = g_s(ŷ)).
- `h_a`, `h_s`: hyper-analysis and hyper-synthesis (z = h_a(y), ψ = h_s(ẑ)).
- `context_prediction`: the masked (type A) k x k convolution over ŷ (φ).
- `entropy_parameters`: 1x1 convolutions from (ψ, φ) to the Gaussian (or mixture) parameters.
- `entropy_bottleneck`: the factorized density of z (or of y, for `factorized`).

Which boxes a model has, and how wide they are, comes from its `ModelConfig` (config.py); this
module never reads the variant name. Module and parameter names match CompressAI's
bmshj2018-factorized, bmshj2018-hyperprior, mbt2018-mean and mbt2018, so their checkpoints load
as they are. A variable-rate model (several lambdas, rdbench's) adds gain units: per-rate channel
gains applied to y before quantization and their inverses before g_s (and the same for z).
The entropy coding of a trained model (the paper's AE/AD) is in coding.py and symbols.py.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN, MaskedConv2d
from compressai.models import CompressionModel
from torch import nn

from rdbench.learned.config import ModelConfig
from rdbench.learned.exact import SCALE_BOUND

# Strides: g_a halves the image four times (y is 1/16 of the padded image), h_a twice more
# (z is 1/4 of y). The coder pads images to a multiple of both (coding.PAD).
Y_STRIDE = 2**4
Z_STRIDE = 2**2
_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(inplace=True)}


def _conv(c_in: int, c_out: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)


def _deconv(c_in: int, c_out: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


def analysis_transform(N: int, M: int) -> nn.Sequential:
    return nn.Sequential(_conv(3, N), GDN(N), _conv(N, N), GDN(N), _conv(N, N), GDN(N), _conv(N, M))


def synthesis_transform(N: int, M: int) -> nn.Sequential:
    return nn.Sequential(
        _deconv(M, N), GDN(N, inverse=True), _deconv(N, N), GDN(N, inverse=True),
        _deconv(N, N), GDN(N, inverse=True), _deconv(N, 3),
    )


def initial_gains(lambdas) -> torch.Tensor:
    """Starting gain of each rate: sqrt(lambda / geometric mean of the lambdas).

    With loss lambda * D + R and a uniform quantizer of step s, D ~ s^2 / 12 and R ~ -log2 s per
    latent, so the best step goes as lambda^(-1/2): the gain (1 / step) as lambda^(1/2). Starting
    from ones instead, Adam moves the gains by about lr per step, far too slowly: after 6,000
    steps at lr 3e-4 five lambdas 50x apart still coded Kodak within 0.34-0.43 bpp.
    """
    lam = torch.tensor(lambdas, dtype=torch.float32)
    return torch.sqrt(lam / torch.exp(torch.log(lam).mean()))


def hyper_transforms(config: ModelConfig) -> tuple[nn.Sequential, nn.Sequential]:
    """h_a and h_s: bmshj2018's (ReLU, N wide, σ out) or mbt2018's (leaky ReLU, M and 3M/2 wide)."""
    N, M = config.N, config.M
    act = _ACTIVATIONS[config.hyper_activation]
    h_a = nn.Sequential(_conv(M, N, 3, 1), act(), _conv(N, N), act(), _conv(N, N))
    w1, w2 = config.h_s_widths
    h_s = [_deconv(N, w1), act(), _deconv(w1, w2), act(), _conv(w2, config.h_s_channels, 3, 1)]
    if config.h_s_ends_in_activation:
        h_s.append(act())
    return h_a, nn.Sequential(*h_s)


class LatentModel(CompressionModel):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        N, M = config.N, config.M
        self.g_a = analysis_transform(N, M)
        self.g_s = synthesis_transform(N, M)

        if config.y_factorized:
            self.entropy_bottleneck = EntropyBottleneck(M)
        if config.has_hyperprior:
            self.h_a, self.h_s = hyper_transforms(config)
            self.entropy_bottleneck = EntropyBottleneck(N)
        if config.has_context:
            k = config.k
            self.context_prediction = MaskedConv2d(M, 2 * M, kernel_size=k, padding=k // 2, stride=1)
            self.entropy_parameters = nn.Sequential(
                nn.Conv2d(config.entropy_parameters_channels, M * 10 // 3, 1), nn.LeakyReLU(inplace=True),
                nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.LeakyReLU(inplace=True),
                nn.Conv2d(M * 8 // 3, config.param_channels, 1),
            )
        if not config.y_factorized:
            self.gaussian_conditional = GaussianConditional(None, scale_bound=SCALE_BOUND)
        if config.variable_rate:
            R = len(config.rates)
            gains = initial_gains(config.rates).view(R, 1).repeat(1, M)
            self.gain = nn.Parameter(gains)
            self.inverse_gain = nn.Parameter(1 / gains)
            if config.has_hyperprior:
                self.hyper_gain = nn.Parameter(torch.ones(R, N))
                self.hyper_inverse_gain = nn.Parameter(torch.ones(R, N))

    # -- gain units (identity for single-rate models) ------------------------------------------
    def _scale(self, x: torch.Tensor, name: str, rate: int) -> torch.Tensor:
        if not self.config.variable_rate:
            return x
        return x * getattr(self, name)[rate].view(1, -1, 1, 1)

    def analyse(self, x: torch.Tensor, rate: int = 0) -> torch.Tensor:
        """y (scaled by the rate's gain): what is quantized."""
        return self._scale(self.g_a(x), "gain", rate)

    def synthesise(self, y_hat: torch.Tensor, rate: int = 0) -> torch.Tensor:
        return self.g_s(self._scale(y_hat, "inverse_gain", rate))

    def hyper_analyse(self, y: torch.Tensor, rate: int = 0) -> torch.Tensor:
        y_in = torch.abs(y) if self.config.h_a_reads_magnitude else y
        return self._scale(self.h_a(y_in), "hyper_gain", rate)

    def hyper_synthesis_input(self, z_hat: torch.Tensor, rate: int = 0) -> torch.Tensor:
        return self._scale(z_hat, "hyper_inverse_gain", rate)

    # -- training / estimation forward ---------------------------------------------------------
    def forward(self, x: torch.Tensor, rate: int = 0) -> dict:
        y_hat, likelihoods = self.quantize_with_likelihoods(self.analyse(x, rate), rate)
        return {"x_hat": self.synthesise(y_hat, rate), "likelihoods": likelihoods}

    def quantize_with_likelihoods(self, y: torch.Tensor, rate: int = 0) -> tuple[torch.Tensor, dict]:
        """ŷ (noisy while training) and the likelihoods of ŷ (and ẑ): the rate term, without g_s."""
        cfg = self.config
        likelihoods = {}
        fp32 = _float32(y.device.type)  # transforms may run in bf16 (autocast); entropy models do not
        y = y.float()
        if cfg.y_factorized:
            with fp32:
                y_hat, likelihoods["y"] = self.entropy_bottleneck(y)
            return y_hat, likelihoods

        psi = None
        if cfg.has_hyperprior:
            z = self.hyper_analyse(y, rate).float()
            with fp32:
                z_hat, likelihoods["z"] = self.entropy_bottleneck(z)
            psi = self.h_s(self.hyper_synthesis_input(z_hat, rate)).float()

        y_hat = self.gaussian_conditional.quantize(y, "noise" if self.training else "dequantize")
        if not cfg.has_means:  # scale-only: ψ is σ
            with fp32:
                _, likelihoods["y"] = self.gaussian_conditional(y, psi)
            return y_hat, likelihoods
        params = psi
        if cfg.has_context:
            phi = self.context_prediction(y_hat)
            params = self.entropy_parameters(phi if psi is None else torch.cat((psi, phi.to(psi.dtype)), dim=1))
        params = params.float()
        if cfg.K > 1:
            with fp32:
                likelihoods["y"] = self.mixture_likelihood(y_hat, params)
            return y_hat, likelihoods
        scales, means = params.chunk(2, 1)
        with fp32:
            y_coded, likelihoods["y"] = self.gaussian_conditional(y, scales, means=means)
        if not cfg.has_context:  # ŷ = round(y - μ) + μ, as coded (with context, μ needs ŷ)
            y_hat = y_coded
        return y_hat, likelihoods

    def mixture_likelihood(self, y_hat: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """P(ŷ) under a K-component Gaussian mixture, integrated over [ŷ - 1/2, ŷ + 1/2]."""
        B, _, H, W = params.shape
        K, M = self.config.K, self.config.M
        logits, means, scales = (p.reshape(B, K, M, H, W) for p in params.chunk(3, 1))
        weights = torch.softmax(logits, dim=1)
        gc = self.gaussian_conditional
        scales = gc.lower_bound_scale(scales)
        centred = torch.abs(y_hat.unsqueeze(1) - means)
        upper = gc._standardized_cumulative((0.5 - centred) / scales)
        lower = gc._standardized_cumulative((-0.5 - centred) / scales)
        return gc.likelihood_lower_bound((weights * (upper - lower)).sum(dim=1))


def _float32(device_type: str):
    """A region where autocast is off: the entropy models and likelihoods are computed in float32
    even when the transforms run in bfloat16 (train --precision bf16)."""
    return torch.autocast(device_type=device_type, enabled=False)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fold_gains(model: LatentModel, rate: int) -> LatentModel:
    """The single-rate model equal to one rate of a variable-rate model: the gain vectors folded
    into the layers next to them (g_a's last and g_s's first layer, h_a's last and h_s's first).
    Its state dict has CompressAI's layout, so CompressAI's own classes load it."""
    from dataclasses import replace

    cfg = model.config
    if not cfg.variable_rate:
        return model
    single = LatentModel(replace(cfg, rates=(cfg.rates[rate],)))
    state = {k: v.clone() for k, v in model.state_dict().items() if "gain" not in k}
    gain, inverse = model.gain[rate].detach(), model.inverse_gain[rate].detach()
    state["g_a.6.weight"] *= gain.view(-1, 1, 1, 1)
    state["g_a.6.bias"] *= gain
    state["g_s.0.weight"] *= inverse.view(-1, 1, 1, 1)
    if cfg.has_hyperprior:
        hyper, hyper_inverse = model.hyper_gain[rate].detach(), model.hyper_inverse_gain[rate].detach()
        state["h_a.4.weight"] *= hyper.view(-1, 1, 1, 1)
        state["h_a.4.bias"] *= hyper
        state["h_s.0.weight"] *= hyper_inverse.view(-1, 1, 1, 1)
    single.load_state_dict(state)
    return single
