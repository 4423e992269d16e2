"""Model configurations: which of the paper's boxes a model has, and their sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

VARIANTS = ("factorized", "hyperprior", "mean-scale", "context", "joint")

# CompressAI's MSE rate ladder (quality 1..8); lambda weights 255^2 * MSE against bpp.
QUALITY_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
# CompressAI's MS-SSIM ladder (lambda weights 1 - MS-SSIM).
QUALITY_LAMBDAS_MS_SSIM = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00)


@dataclass(frozen=True)
class ModelConfig:
    """variant: one of VARIANTS. N: channels of g_a/g_s (and of z); M: channels of y.
    k: context kernel size (odd, masked type A). K: Gaussian components per latent (1 = the
    paper's single Gaussian). rates: the lambdas of a variable-rate model (gain units, one gain
    vector per rate); a single-rate model has one entry and no gains."""

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
        if self.K > 1 and self.variant in ("factorized", "hyperprior"):
            raise ValueError(f"variant {self.variant} has no mean/mixture parameters; K must be 1")
        if not self.rates:
            raise ValueError("a model needs at least one rate (lambda)")

    @property
    def has_hyperprior(self) -> bool:
        return self.variant in ("hyperprior", "mean-scale", "joint")

    @property
    def has_context(self) -> bool:
        return self.variant in ("context", "joint")

    @property
    def variable_rate(self) -> bool:
        return len(self.rates) > 1

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
