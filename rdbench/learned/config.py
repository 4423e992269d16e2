"""Model configurations: which of the paper's boxes a model has, and their sizes.

This is the only module that reads the variant name. Everything else (models, coding,
checkpoints) asks a `ModelConfig` what the model has (`has_hyperprior`, `has_context`,
`has_means`, `y_factorized`, ...) and how wide each box is. Imports no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Which boxes each variant has: (hyperprior h_a/h_s, context model, Gaussian means).
#   factorized  Ballé et al. 2018 "bmshj2018-factorized": y coded by a factorized density, no side information
#   hyperprior  "bmshj2018-hyperprior": scale-only Gaussian, σ from the hyperprior
#   mean-scale  Minnen et al. 2018 "mbt2018-mean": (μ, σ) from the hyperprior
#   context     rdbench's, not the paper's: (μ, σ) from the context model alone, no hyperprior
#   joint       "mbt2018": (μ, σ) from the hyperprior and the context model together
_BOXES = {
    "factorized": (False, False, False),
    "hyperprior": (True, False, False),
    "mean-scale": (True, False, True),
    "context": (False, True, True),
    "joint": (True, True, True),
}
VARIANTS = tuple(_BOXES)

# CompressAI's MSE rate ladder (quality 1..8); lambda weights 255^2 * MSE against bpp.
QUALITY_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
# CompressAI's MS-SSIM ladder (lambda weights 1 - MS-SSIM).
QUALITY_LAMBDAS_MS_SSIM = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00)


@dataclass(frozen=True)
class ModelConfig:
    """variant: one of VARIANTS. N: channels of g_a/g_s (and of z); M: channels of y.
    k: context kernel size (odd, masked type A). K: Gaussian components per latent (1 = the
    paper's single Gaussian; K >= 2, a mixture, is rdbench's). rates: the lambdas of a
    variable-rate model (gain units, one gain vector per rate: rdbench's); a single-rate model
    has one entry and no gains."""

    variant: str = "joint"
    N: int = 192
    M: int = 192
    k: int = 5
    K: int = 1
    rates: tuple[float, ...] = field(default=(0.0130,))

    def __post_init__(self):
        object.__setattr__(self, "rates", tuple(float(r) for r in self.rates))
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {', '.join(VARIANTS)}")
        if self.N < 1 or self.M < 1:
            raise ValueError(f"N and M must be positive (got N={self.N}, M={self.M})")
        if self.has_context and (self.k < 3 or self.k % 2 == 0):
            raise ValueError(f"context kernel size k must be odd and >= 3 (got {self.k})")
        if self.K < 1:
            raise ValueError(f"mixture count K must be >= 1 (got {self.K})")
        if self.K > 1 and not self.has_means:
            raise ValueError(f"variant {self.variant} has no mean/mixture parameters; K must be 1")
        if not self.rates:
            raise ValueError("a model needs at least one rate (lambda)")

    @classmethod
    def from_boxes(cls, N: int, M: int, *, hyperprior: bool, context: bool, param_channels: int | None,
                   k: int = 5, rates: tuple[float, ...] = (0.0,)) -> "ModelConfig":
        """The configuration of a model that has these boxes. `param_channels`: channels of the
        distribution parameters of y (the output of entropy_parameters, or of h_s without a
        context model); None when y has a factorized density. Raises ValueError when no
        variant and K fit."""
        means, K = False, 1
        if param_channels is not None and param_channels != M:  # M channels: scales only
            means = True
            if param_channels != 2 * M:
                if param_channels % (3 * M):
                    raise ValueError(f"parameter layer has {param_channels} channels, which fits no K for M={M}")
                K = param_channels // (3 * M)
        boxes = (hyperprior, context, means)
        variant = next((v for v, b in _BOXES.items() if b == boxes), None)
        if variant is None:
            raise ValueError(f"no variant has hyperprior={hyperprior}, context={context}, means={means}")
        return cls(variant, N, M, k, K, rates)

    # -- which boxes --------------------------------------------------------------------------
    @property
    def has_hyperprior(self) -> bool:
        """h_a, h_s and the entropy bottleneck of z."""
        return _BOXES[self.variant][0]

    @property
    def has_context(self) -> bool:
        """context_prediction and entropy_parameters."""
        return _BOXES[self.variant][1]

    @property
    def has_means(self) -> bool:
        """y's Gaussian(s) have means (False: scale-only, or no Gaussian at all)."""
        return _BOXES[self.variant][2]

    @property
    def y_factorized(self) -> bool:
        """y is coded by an entropy bottleneck (a factorized density), not by a Gaussian model."""
        return not (self.has_hyperprior or self.has_context)

    @property
    def has_entropy_bottleneck(self) -> bool:
        """An EntropyBottleneck for z (hyperprior) or for y (factorized)."""
        return self.has_hyperprior or self.y_factorized

    @property
    def variable_rate(self) -> bool:
        return len(self.rates) > 1

    # -- the hyperprior's networks --------------------------------------------------------------
    # bmshj2018-hyperprior (the scale-only model) and mbt2018 build h_a and h_s differently;
    # rdbench keeps each paper's networks so that CompressAI's checkpoints load.
    @property
    def _scale_only_hyperprior(self) -> bool:
        return self.has_hyperprior and not self.has_means

    @property
    def hyper_activation(self) -> str:
        """"relu" (bmshj2018) or "leaky_relu" (mbt2018) between the layers of h_a and h_s."""
        return "relu" if self._scale_only_hyperprior else "leaky_relu"

    @property
    def h_a_reads_magnitude(self) -> bool:
        """h_a reads |y| (bmshj2018) instead of y (mbt2018)."""
        return self._scale_only_hyperprior

    @property
    def h_s_widths(self) -> tuple[int, int]:
        """Output channels of h_s's two hidden (transposed) convolutions."""
        return (self.N, self.N) if self._scale_only_hyperprior else (self.M, self.M * 3 // 2)

    @property
    def h_s_ends_in_activation(self) -> bool:
        """h_s ends in a ReLU (bmshj2018: its output, σ, is non-negative)."""
        return self._scale_only_hyperprior

    @property
    def h_s_channels(self) -> int:
        """Channels of ψ = h_s(ẑ): y's distribution parameters without a context model; with one,
        2M features that entropy_parameters combines with φ (as mbt2018 has it)."""
        return 2 * self.M if self.has_context else self.param_channels

    # -- the distribution parameters of y -----------------------------------------------------------
    @property
    def param_channels(self) -> int:
        """Channels of y's distribution parameters, in this order: M scales (scale-only);
        (M scales, M means) for one Gaussian, in CompressAI's order; for a mixture, K * M weight
        logits, K * M means, K * M scales (each component-major: index k * M + channel)."""
        if not self.has_means:
            return self.M
        return 2 * self.M if self.K == 1 else 3 * self.K * self.M

    @property
    def entropy_parameters_channels(self) -> int:
        """Input channels of entropy_parameters: φ (2M), after ψ (2M) when there is a hyperprior."""
        return 4 * self.M if self.has_hyperprior else 2 * self.M

    # -- names --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["rates"] = list(self.rates)
        if not self.has_context:
            d.pop("k")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {"variant", "N", "M", "k", "K", "rates"}
        return cls(**{key: (tuple(v) if key == "rates" else v) for key, v in d.items() if key in known})

    def label(self, with_size: bool = True) -> str:
        parts = [self.variant]
        if self.has_context:
            parts.append(f"k{self.k}")
        if self.K > 1:
            parts.append(f"K{self.K}")
        if with_size:
            parts.append(f"N{self.N}M{self.M}")
        return "-".join(parts)
