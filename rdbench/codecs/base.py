"""The Codec interface and the spec strings that name codec configurations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rdbench.errors import CodecError, CodecUnavailable  # noqa: F401  (part of the codec interface)


@dataclass(frozen=True)
class Spec:
    """A parsed spec string. `text` is kept verbatim: it is the codec's name in every output."""

    text: str
    name: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def canonical(self) -> str:
        """The spec as `name:key=value,...`, options sorted by key, no whitespace: the same text for
        every way of writing one spec (`jpeg: optimize=1, subsampling=444` and
        `jpeg:subsampling=444,optimize=1`). Outputs keep `text`; this is what compares specs."""
        options = ",".join(f"{key}={value}" for key, value in sorted(self.options.items()))
        return f"{self.name}:{options}" if options else self.name


def parse_spec(text: str) -> Spec:
    text = text.strip()
    name, _, rest = text.partition(":")
    if not name:
        raise ValueError(f"codec spec {text!r}: empty codec name")
    options = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise ValueError(f"codec spec {text!r}: option {part!r} is not key=value")
        options[key.strip()] = value.strip()
    return Spec(text, name.strip(), options)


def split_spec_list(values: list[str]) -> list[str]:
    """`--codec jpeg:subsampling=444,webp` -> ['jpeg:subsampling=444', 'webp'].

    A comma-separated piece that is `key=value` continues the previous spec's options.
    """
    specs: list[str] = []
    for value in values:
        for piece in value.split(","):
            piece = piece.strip()
            if not piece:
                continue
            if specs and "=" in piece and ":" not in piece:
                specs[-1] += "," + piece
            else:
                specs.append(piece)
    return specs


@dataclass(frozen=True)
class Option:
    default: str
    choices: tuple[str, ...] | None = None
    help: str = ""


def canonical_quality(q: Any) -> int | float:
    """Qualities are numbers; integral values are ints so that 50, 50.0 and '50' are one key.

    The one definition of a quality's canonical form: the store writes `str()` of it
    (bench/store.quality_key), so ladders, rows and keys agree."""
    value = float(q)
    return int(value) if value.is_integer() else value


WARM_UP_SIDE = 64  # px: the side of the crop a codec warms up on (Codec.warm_up_side)


class Codec:
    """Base class. Subclasses set the class attributes and implement encode/decode.

    - `encode(image, quality) -> bytes`: the complete file or bitstream (its length is the rate).
    - `decode(data) -> image`: uint8 H x W x 3.
    - `qualities`: the default ladder; `quality_range`: accepted (min, max), inclusive.
    - `version`: a string naming the exact implementation (library and its version).
    - `configure(timeout_s=...)`: run settings, applied by the measuring code before any timed
      call; a codec that needs none ignores them.
    - `warm_up(quality, image)`: pays the codec's one-time costs (loading a model, importing a
      library, a binary's first start) before the timed calls; `warm_up_family(quality)` says
      which qualities share them; `synchronize()` waits for work queued on an accelerator.
      bench/measure.py calls them; the defaults suit a codec whose every quality runs the same
      code on the CPU.
    """

    name: str = ""
    description: str = ""
    extension: str = "bin"
    quality_name: str = "quality"
    qualities: tuple[int | float, ...] = ()
    quality_range: tuple[float, float] | None = None
    options: dict[str, Option] = {}
    learned: bool = False  # learned codecs run only when asked for by name
    # Modules worth importing once, before worker processes start, rather than in each worker
    # (the local pool's fork server imports them and every worker inherits them)
    worker_preload: tuple[str, ...] = ()
    # Seconds one call of an external process may take (None: no limit); set by `configure`.
    # Codecs that run in this process have nothing to time out and ignore it.
    timeout_s: float | None = None

    def __init__(self, spec: Spec | str | None = None):
        spec = parse_spec(spec) if isinstance(spec, str) else spec or Spec(self.name, self.name)
        unknown = set(spec.options) - set(self.options)
        if unknown:
            known = ", ".join(f"{k} ({'|'.join(o.choices) if o.choices else o.default})" for k, o in self.options.items())
            raise ValueError(
                f"codec spec {spec.text!r}: unknown option(s) {', '.join(sorted(unknown))}; "
                f"{self.name} takes: {known or 'no options'}"
            )
        self.spec = spec
        self.opts: dict[str, str] = {}
        for key, opt in self.options.items():
            value = spec.options.get(key, opt.default)
            if opt.choices and value not in opt.choices:
                raise ValueError(f"codec spec {spec.text!r}: {key}={value!r}, expected one of {', '.join(opt.choices)}")
            self.opts[key] = value

    # -- what subclasses provide -------------------------------------------------------------
    def availability(self) -> str | None:
        """None if the codec can run here, else a message that says how to make it available."""
        return None

    @property
    def version(self) -> str:
        raise NotImplementedError

    def encode(self, image: np.ndarray, quality) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def extra_measurements(self, image: np.ndarray, quality, data: bytes) -> dict:
        """Codec-specific columns for the result row (learned codecs add `bpp_estimated`)."""
        return {}

    # -- timing: one-time costs paid before the clock runs ------------------------------------
    def warm_up_family(self, quality) -> object:
        """Which one-time set-up a call at `quality` needs: qualities with equal values share it.

        The measuring code warms a codec up once per family in each worker. Default: one family
        for every quality (one library, one binary); a learned codec with one model per rate
        point returns the model."""
        return None

    # How much of the item's image `warm_up` codes: its top-left warm_up_side x warm_up_side
    # pixels, or all of it (None). A crop pays a library's or a binary's start-up at little cost;
    # learned codecs code the whole image, since their first large image is slower than the next
    # ones even after a crop (by 20-50 ms for an N = M = 64 model on Kodak, measured).
    warm_up_side: int | None = WARM_UP_SIDE

    def warm_up(self, quality, image: np.ndarray | None = None) -> None:
        """Encode and decode (part of) `image` once at `quality`, untimed.

        `image` is the item about to be measured (default: `warm_up_image()`); `warm_up_side` says
        how much of it is coded. Whatever a codec does on its first call (import a library, load
        and build a model, Pillow's plugin registry, an external binary's first exec from disk, a
        thread pool's start) is then paid here, and the timed calls that follow measure coding
        alone. A codec with more set-up extends this (learned codecs load the model first)."""
        if image is None:
            image = warm_up_image()
        elif self.warm_up_side:
            image = np.ascontiguousarray(image[: self.warm_up_side, : self.warm_up_side])
        self.decode(self.encode(image, quality))

    def synchronize(self) -> None:
        """Wait until work the codec queued asynchronously has finished, so that a clock read
        after this counts it (a GPU's kernels). Codecs that compute synchronously do nothing."""

    # -- shared behaviour --------------------------------------------------------------------
    def configure(self, *, timeout_s: float | None) -> None:
        """Apply the run's settings (`rdbench run --timeout`) before any timed call.

        timeout_s: seconds one encode or decode call may take where the codec can enforce it
        (external binaries); None: the codec's own limit (an external spec's `timeout`), none here."""
        self.timeout_s = timeout_s

    @property
    def configuration(self) -> str:
        """What this codec runs, as canonical spec text with every option spelled out (defaults
        included): codecs with equal configurations measure the same thing (`jpeg`,
        `jpeg:subsampling=420` and `jpeg: optimize=0, subsampling=420`), so a run measures one."""
        return Spec(self.spec.text, self.name, dict(self.opts)).canonical

    def check_quality(self, quality) -> int | float:
        q = canonical_quality(quality)
        if self.quality_range and not self.quality_range[0] <= q <= self.quality_range[1]:
            lo, hi = self.quality_range
            raise ValueError(f"{self.spec.text}: {self.quality_name} {q} outside {lo:g}..{hi:g}")
        return q

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.text!r}>"


def warm_up_image(side: int = WARM_UP_SIDE) -> np.ndarray:
    """A deterministic side x side RGB test image with edges and gradients (uint8 H x W x 3)."""
    y, x = np.mgrid[0:side, 0:side]
    image = np.stack([x * 255 // max(side - 1, 1), y * 255 // max(side - 1, 1), ((x // 8 + y // 8) % 2) * 255], axis=-1)
    return image.astype(np.uint8)


# Codec classes registered by decorator (the Pillow codecs, tests, plug-ins imported by the user).
# The registry reads this dict; it lives here so that implementations never import the registry.
REGISTERED: dict[str, type[Codec]] = {}


def register_codec(name: str):
    """Class decorator: `@register_codec("jpeg") class JPEG(Codec): ...`."""

    def decorate(cls):
        cls.name = name
        REGISTERED[name] = cls
        return cls

    return decorate
