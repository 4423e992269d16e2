"""The codec registry: a dict from codec name to a Codec class (or a factory).

Entries may also be "module:attribute" strings, imported on first use, so that listing codecs
never imports torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points
from typing import Callable, Union

from rdbench.codecs.base import Codec, CodecUnavailable, Spec, parse_spec

Factory = Callable[[Spec], Codec]
_REGISTRY: dict[str, Union[type[Codec], Factory, str]] = {}
_LOADED = False

BUILTIN_MODULES = ("rdbench.codecs.pillow",)
# Learned codecs import torch; they are registered by name only and imported when loaded.
LEARNED_CODECS = {
    "learned": "rdbench.codecs.learned:LearnedCodec",
    "mbt2018": "rdbench.codecs.learned:zoo_codec",
    "mbt2018-mean": "rdbench.codecs.learned:zoo_codec",
    "bmshj2018-hyperprior": "rdbench.codecs.learned:zoo_codec",
    "bmshj2018-factorized": "rdbench.codecs.learned:zoo_codec",
}
LEARNED_PACKAGES = ("torch", "compressai", "constriction")
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
    _REGISTRY.update(LEARNED_CODECS)
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


def missing_learned_packages() -> list[str]:
    return [p for p in LEARNED_PACKAGES if importlib.util.find_spec(p) is None]


def available(include_learned: bool = True) -> list[tuple[str, Codec | None, str | None]]:
    """(name, codec, problem) for every registered codec with default options.

    With include_learned=False the learned codecs are left out (and torch is never imported)."""
    rows = []
    for name in codec_names():
        if name in LEARNED_CODECS:
            if not include_learned:
                continue
            missing = missing_learned_packages()
            if missing:
                rows.append((name, None, f"needs {', '.join(missing)}: pip install 'rdbench[learned]'"))
                continue
        try:
            codec = load(name, check_available=False)
            rows.append((name, codec, codec.availability()))
        except (CodecUnavailable, ValueError) as exc:
            rows.append((name, None, str(exc)))
    return rows
