"""Codecs driven through external command-line binaries, described by TOML files.

Each `*.toml` in the repository's `codecs/` folder (shipped in the wheel) and in the folders of
RDBENCH_CODECS_PATH (os.pathsep-separated) describes one codec: its binaries, the encode and
decode command templates, file formats, quality ladder, options and how to read its version.
See codecs/README.md for the format.

Encode time is the wall time of the encoder process (start-up included), decode likewise; the
temporary files live in /dev/shm when it exists, so file I/O costs little.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from rdbench.codecs.base import Codec, CodecError, Option, Spec
from rdbench.data.images import decode_rgb, encode_png, encode_ppm
from rdbench.errors import ImageError
from rdbench.packaged import codec_specs_folder

DEFAULT_TIMEOUT_S = 600.0
_SHM = Path("/dev/shm")


class CodecSpecError(ValueError):
    """A codec TOML file that is malformed; the message names the file."""


@dataclass
class Definition:
    name: str
    source: str  # the TOML file it came from
    description: str
    binaries: list[str]
    encode: list[str]
    decode: list[str]
    extension: str
    input_format: str
    output_format: str
    qualities: tuple
    quality_range: tuple[float, float] | None
    quality_name: str
    version_command: list[str]
    version_pattern: str
    env_dir: str | None
    install_hint: str
    options: dict[str, Option] = field(default_factory=dict)


def _parse(path_text: str, raw: dict) -> Definition:
    def need(key, kind):
        if key not in raw:
            raise CodecSpecError(f"{path_text}: missing required key {key!r}")
        if not isinstance(raw[key], kind):
            raise CodecSpecError(f"{path_text}: {key!r} must be {kind.__name__}")
        return raw[key]

    cmds = need("commands", dict)
    version = raw.get("version", {})
    options = {
        key: Option(str(o["default"]), tuple(map(str, o["choices"])) if "choices" in o else None, o.get("help", ""))
        for key, o in raw.get("options", {}).items()
    }
    definition = Definition(
        name=need("name", str),
        source=path_text,
        description=raw.get("description", ""),
        binaries=need("binaries", list),
        encode=cmds.get("encode") or [],
        decode=cmds.get("decode") or [],
        extension=need("extension", str),
        input_format=raw.get("input_format", "png"),
        output_format=raw.get("output_format", "png"),
        qualities=tuple(need("qualities", list)),
        quality_range=tuple(raw["quality_range"]) if "quality_range" in raw else None,
        quality_name=raw.get("quality_name", "quality"),
        version_command=version.get("command", []),
        version_pattern=version.get("pattern", r"(\S+)"),
        env_dir=raw.get("env_dir"),
        install_hint=raw.get("install_hint", ""),
        options=options,
    )
    if not definition.encode or not definition.decode:
        raise CodecSpecError(f"{path_text}: [commands] needs both encode and decode")
    for fmt in (definition.input_format, definition.output_format):
        if fmt not in ("png", "ppm"):
            raise CodecSpecError(f"{path_text}: image format {fmt!r} (expected png or ppm)")
    allowed = {"input", "output", "quality", *definition.binaries, *definition.options}
    for template in (definition.encode, definition.decode, definition.version_command):
        for arg in template:
            for key in re.findall(r"{(\w+)}", arg):
                if key not in allowed:
                    raise CodecSpecError(f"{path_text}: placeholder {{{key}}} is not one of {sorted(allowed)}")
    return definition


def load_definition(path: Path) -> Definition:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CodecSpecError(f"{path}: {exc}") from exc
    return _parse(str(path), raw)


def _spec_files() -> list[tuple[str, str]]:
    """(origin, TOML text) of every codec spec: packaged ones first, then RDBENCH_CODECS_PATH."""
    found = []
    packaged = codec_specs_folder()
    for item in sorted(packaged.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".toml"):
            found.append((f"codecs/{item.name}", item.read_text()))
    for folder in filter(None, os.environ.get("RDBENCH_CODECS_PATH", "").split(os.pathsep)):
        for path in sorted(Path(folder).glob("*.toml")):
            found.append((str(path), path.read_text()))
    return found


def definitions() -> list[Definition]:
    """Every codec spec (packaged, then RDBENCH_CODECS_PATH); the registry turns each into a factory."""
    found = []
    for origin, text in _spec_files():
        try:
            found.append(_parse(origin, tomllib.loads(text)))
        except tomllib.TOMLDecodeError as exc:
            raise CodecSpecError(f"{origin}: {exc}") from exc
    return found


def _scratch_dir() -> str | None:
    return str(_SHM) if _SHM.is_dir() and os.access(_SHM, os.W_OK) else None


class ExternalCodec(Codec):
    def __init__(self, definition: Definition, spec: Spec | str | None = None):
        self.definition = definition
        self.name = definition.name
        self.description = definition.description
        self.extension = definition.extension
        self.qualities = definition.qualities
        self.quality_range = definition.quality_range
        self.quality_name = definition.quality_name
        self.options = definition.options
        self.timeout_s = DEFAULT_TIMEOUT_S
        super().__init__(spec or definition.name)

    @cached_property
    def paths(self) -> dict[str, str | None]:
        """Where each binary is: the folder in env_dir (e.g. RDBENCH_BPG_DIR) first, then PATH."""
        env_folder = os.environ.get(self.definition.env_dir or "")
        found = {}
        for binary in self.definition.binaries:
            path = None
            if env_folder:
                candidate = Path(env_folder) / binary
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    path = str(candidate)
            found[binary] = path or shutil.which(binary)
        return found

    def availability(self):
        missing = [b for b, p in self.paths.items() if p is None]
        if not missing:
            return None
        where = f"${self.definition.env_dir} or PATH" if self.definition.env_dir else "PATH"
        return f"{', '.join(missing)} not found (looked in {where}). {self.definition.install_hint}".strip()

    def _args(self, template: list[str], **values) -> list[str]:
        mapping = {**self.opts, **self.paths, **values}
        return [arg.format(**mapping) for arg in template]

    @cached_property
    def version(self) -> str:
        cmd = self.definition.version_command
        if not cmd:
            return "unknown"
        try:
            done = subprocess.run(self._args(cmd), capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unknown ({exc})"
        text = (done.stdout + done.stderr).strip()
        match = re.search(self.definition.version_pattern, text)
        if match:
            return f"{self.name} {match.group(1)}"
        return f"{self.name} {text.splitlines()[0] if text else 'unknown'}"

    def _run(self, args: list[str], what: str) -> None:
        try:
            done = subprocess.run(args, capture_output=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise CodecError(f"{self.spec.text}: {what} timed out after {self.timeout_s:g} s") from exc
        except OSError as exc:
            raise CodecError(f"{self.spec.text}: cannot run {args[0]}: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-3:]
            raise CodecError(f"{self.spec.text}: {what} exited with {done.returncode}: {' / '.join(tail)}")

    def encode(self, image: np.ndarray, quality) -> bytes:
        with tempfile.TemporaryDirectory(prefix="rdbench-", dir=_scratch_dir()) as tmp:
            src = Path(tmp) / f"in.{self.definition.input_format}"
            dst = Path(tmp) / f"out.{self.extension}"
            src.write_bytes(encode_ppm(image) if self.definition.input_format == "ppm" else encode_png(image))
            self._run(self._args(self.definition.encode, input=src, output=dst, quality=quality), "encoder")
            if not dst.is_file():
                raise CodecError(f"{self.spec.text}: encoder wrote no output file")
            return dst.read_bytes()

    def decode(self, data: bytes) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="rdbench-", dir=_scratch_dir()) as tmp:
            src = Path(tmp) / f"in.{self.extension}"
            dst = Path(tmp) / f"out.{self.definition.output_format}"
            src.write_bytes(data)
            self._run(self._args(self.definition.decode, input=src, output=dst), "decoder")
            if not dst.is_file():
                raise CodecError(f"{self.spec.text}: decoder wrote no output file")
            try:
                return decode_rgb(dst.read_bytes(), name=f"{self.spec.text} decoder output").pixels
            except ImageError as exc:
                raise CodecError(str(exc)) from exc
