"""Codecs: anything that turns an 8-bit RGB image into bytes and back.

A codec is named by a spec string, `name[:key=value,...]` (`jpeg`, `jpeg:subsampling=444`,
`bpg:encoder=x265`), which identifies one configuration everywhere: on the command line, in
result rows and in plot legends. `load(spec)` returns a ready Codec.

Codecs come from three places: classes registered with `@register_codec` (the Pillow codecs),
the declarative TOML specs of external binaries (top-level `codecs/` folder of the repository,
plus folders listed in RDBENCH_CODECS_PATH), and the `rdbench.codecs` entry-point group of other
installed packages (each entry point names a Codec subclass).
"""

from __future__ import annotations

from rdbench.codecs.base import Codec, CodecError, CodecUnavailable, Option, Spec, parse_spec
from rdbench.codecs.registry import available, codec_names, load, register_codec

__all__ = [
    "Codec",
    "CodecError",
    "CodecUnavailable",
    "Option",
    "Spec",
    "available",
    "codec_names",
    "load",
    "parse_spec",
    "register_codec",
]
