"""The codec registry: a dict from codec name to a Codec class (or a factory).

Entries may also be "module:attribute" strings, imported on first use, so that listing codecs
never imports torch.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Callable, Union

from rdbench.codecs.base import Codec, CodecUnavailable, Spec, parse_spec

Factory = Callable[[Spec], Codec]
_REGISTRY: dict[str, Union[type[Codec], Factory, str]] = {}
_LOADED = False

BUILTIN_MODULES = ("rdbench.codecs.pillow",)
ENTRY_POINT_GROUP = "rdbench.codecs"


def register_codec(name: str):
    """Class decorator: `@register_codec("jpeg") class JPEG(Codec): ...`."""

    def decorate(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def register_factory(name: str, factory: Factory | str) -> None:
    _REGISTRY[name] = factory


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    from rdbench.codecs import external

    external.register_all()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _REGISTRY.setdefault(ep.name, ep.value)


def codec_names() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def _resolve(entry):
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    return entry


def load(spec: str | Spec, check_available: bool = True) -> Codec:
    """The codec named by `spec`, configured by its options.

    Raises ValueError for an unknown name or option, CodecUnavailable when it cannot run here.
    """
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    _ensure_loaded()
    if spec.name not in _REGISTRY:
        raise ValueError(f"unknown codec {spec.name!r}; known: {', '.join(codec_names())}")
    try:
        factory = _resolve(_REGISTRY[spec.name])
    except ImportError as exc:
        raise CodecUnavailable(f"{spec.name}: cannot import its implementation ({exc})") from exc
    codec = factory(spec)
    if check_available:
        problem = codec.availability()
        if problem:
            raise CodecUnavailable(f"{spec.text}: {problem}")
    return codec


def available() -> list[tuple[str, Codec | None, str | None]]:
    """(name, codec, problem) for every registered codec with default options."""
    rows = []
    for name in codec_names():
        try:
            codec = load(name, check_available=False)
            rows.append((name, codec, codec.availability()))
        except (CodecUnavailable, ValueError) as exc:
            rows.append((name, None, str(exc)))
    return rows
