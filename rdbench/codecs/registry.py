"""The codec registry: a dict from codec name to a Codec class (or a factory).

Entries may also be "module:attribute" strings, imported on first use, so that listing codecs
never imports torch. The registry imports the implementations, never the reverse: classes
register themselves with `base.register_codec`, external codecs come from `external.definitions()`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import os
from importlib.metadata import entry_points
from typing import Callable, Union

from rdbench.codecs.base import REGISTERED, Codec, CodecUnavailable, Spec, parse_spec, register_codec  # noqa: F401

Factory = Callable[[Spec], Codec]

BUILTIN_MODULES = ("rdbench.codecs.pillow",)
# Learned codecs import torch; they are registered by name only and imported when loaded.
LEARNED_CODECS = {
    "learned": "rdbench.codecs.learned:LearnedCodec",
    "mbt2018": "rdbench.codecs.learned:zoo_codec",
    "mbt2018-mean": "rdbench.codecs.learned:zoo_codec",
    "bmshj2018-hyperprior": "rdbench.codecs.learned:zoo_codec",
    "bmshj2018-factorized": "rdbench.codecs.learned:zoo_codec",
    # any model with CompressAI's contract (codecs/models.py)
    "compressai": "rdbench.codecs.models:CompressAICodec",
    "model": "rdbench.codecs.models:UserModelCodec",
}
LEARNED_PACKAGES = ("torch", "compressai", "constriction")
ENTRY_POINT_GROUP = "rdbench.codecs"
NEEDS_OPTION = "needs an option"  # how `available` says a codec runs here once given its options


@functools.cache
def _discovered(codecs_path: str) -> dict[str, Union[Factory, str]]:
    """Codecs found outside Python classes: learned names, TOML specs, other packages' entry points.

    Cached per value of RDBENCH_CODECS_PATH (reading the TOML files once per process)."""
    from rdbench.codecs import external

    found: dict[str, Union[Factory, str]] = dict(LEARNED_CODECS)
    for definition in external.definitions():
        found[definition.name] = functools.partial(external.ExternalCodec, definition)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def _entries() -> dict[str, Union[type[Codec], Factory, str]]:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    discovered = _discovered(os.environ.get("RDBENCH_CODECS_PATH", ""))
    return {**discovered, **REGISTERED, **{k: v for k, v in discovered.items() if k in LEARNED_CODECS}}


def codec_names() -> list[str]:
    return sorted(_entries())


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
    entries = _entries()
    if spec.name not in entries:
        close = difflib.get_close_matches(spec.name, list(entries), n=1, cutoff=0.6)
        guess = f"did you mean {close[0]}? " if close else ""
        raise ValueError(f"unknown codec {spec.name!r}; {guess}known: {', '.join(sorted(entries))}")
    try:
        factory = _resolve(entries[spec.name])
    except ImportError as exc:
        raise CodecUnavailable(f"{spec.name}: cannot import its implementation ({exc})") from exc
    codec = factory(spec)
    if check_available:
        problem = codec.availability()
        if problem:
            raise CodecUnavailable(f"{spec.text}: {problem}")
    return codec


def _importable(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (blocked)
        return False


def missing_learned_packages() -> list[str]:
    return [p for p in LEARNED_PACKAGES if not _importable(p)]


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
        except ValueError as exc:  # it runs here, but not without options (learned: checkpoint=FILE)
            rows.append((name, None, f"{NEEDS_OPTION}: {exc}"))
        except CodecUnavailable as exc:
            rows.append((name, None, str(exc)))
        except Exception as exc:  # a plugin's own code failed: one broken codec must not hide the others
            rows.append((name, None, f"broken: {type(exc).__name__} from the codec's own code: {exc}"))
    return rows
