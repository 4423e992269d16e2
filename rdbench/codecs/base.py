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


class Codec:
    """Base class. Subclasses set the class attributes and implement encode/decode.

    - `encode(image, quality) -> bytes`: the complete file or bitstream (its length is the rate).
    - `decode(data) -> image`: uint8 H x W x 3.
    - `qualities`: the default ladder; `quality_range`: accepted (min, max), inclusive.
    - `version`: a string naming the exact implementation (library and its version).
    - `configure(timeout_s=...)`: run settings, applied by the measuring code before any timed
      call; a codec that needs none ignores them.
    """

    name: str = ""
    description: str = ""
    extension: str = "bin"
    quality_name: str = "quality"
    qualities: tuple[int | float, ...] = ()
    quality_range: tuple[float, float] | None = None
    options: dict[str, Option] = {}
    learned: bool = False  # learned codecs run only when asked for by name
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

    # -- shared behaviour --------------------------------------------------------------------
    def configure(self, *, timeout_s: float | None) -> None:
        """Apply the run's settings (`rdbench run --timeout`) before any timed call.

        timeout_s: seconds one encode or decode call may take where the codec can enforce it
        (external binaries); None for no limit."""
        self.timeout_s = timeout_s

    def check_quality(self, quality) -> int | float:
        q = canonical_quality(quality)
        if self.quality_range and not self.quality_range[0] <= q <= self.quality_range[1]:
            lo, hi = self.quality_range
            raise ValueError(f"{self.spec.text}: {self.quality_name} {q} outside {lo:g}..{hi:g}")
        return q

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.text!r}>"


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
