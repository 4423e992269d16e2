"""Codecs driven through external command-line binaries, described by TOML files.

Each `*.toml` in the repository's `codecs/` folder (shipped in the wheel) and in the folders of
RDBENCH_CODECS_PATH (os.pathsep-separated) describes one codec: its binaries, the encode and
decode command templates, file formats, quality ladder, options and how to read its version.
See codecs/README.md for the format.

Encode time is the wall time of the encoder process (start-up included), decode likewise; the
temporary files live in /dev/shm when it exists, so file I/O costs little.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import signal
import subprocess
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from rdbench.codecs.base import Codec, CodecError, Option, Spec
from rdbench.conventions import DEFAULT_TIMEOUT_S, kill_tree, max_image_pixels, owned_process, scratch_dir
from rdbench.data.images import decode_rgb, encode_png, encode_ppm
from rdbench.errors import ImageError
from rdbench.packaged import codec_specs_folder

# What a binary reads and writes: image files, or raw planar 4:4:4 8-bit frames (a reference
# encoder's YUV; the conversion is the spec's `colour`, codecs/yuv.py; {width} and {height} name the size)
IMAGE_FORMATS = ("png", "ppm", "yuv444p")
_SIZES_KEPT = 64  # bitstreams whose image size this codec remembers, for decoding raw YUV output
# What rdbench keeps of a binary's stdout and stderr: the last bytes of each, for the error message
# of a failed call. The rest is read and dropped as it comes (a binary printing gigabytes costs no
# memory), and the pipes never fill up, so the binary never blocks on them.
OUTPUT_TAIL_BYTES = 64 * 1024


def max_output_bytes(pixels: int) -> int:
    """The largest file a binary may write for an image of `pixels` pixels: four times a 16-bit RGB
    copy, plus 1 MiB of headers. A bitstream or decoded file past it is not an image codec's output
    (a runaway binary, a loop): the kernel stops the binary there (RLIMIT_FSIZE) and the file is
    refused by its size, before it is read."""
    return 4 * 6 * pixels + 2**20


def _raise_file_limit(pid: int, limit: int) -> None:
    """Cap the size of any file process `pid` writes (Linux's prlimit; elsewhere the size is only
    checked after the binary exits)."""
    try:
        import resource

        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, limit))
    except (AttributeError, ImportError, OSError, ValueError):
        pass


def _bounded_communicate(proc: subprocess.Popen, timeout: float) -> tuple[bytes, bytes]:
    """Like Popen.communicate, keeping only the last OUTPUT_TAIL_BYTES of stdout and of stderr."""
    import selectors
    import time

    tails = {proc.stdout.fileno(): bytearray(), proc.stderr.fileno(): bytearray()}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for fd in tails:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                tail = tails[key.fd]
                tail += chunk
                if len(tail) > OUTPUT_TAIL_BYTES:
                    del tail[:-OUTPUT_TAIL_BYTES]
    proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
    return bytes(tails[proc.stdout.fileno()]), bytes(tails[proc.stderr.fileno()])


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
    colour: str = ""  # the RGB <-> YUV conversion of yuv444p formats (codecs/yuv.py)
    # files the commands need beside the binaries ({config}): name -> (file name, folders to
    # search relative to the first binary's folder); each is also an option (default "auto")
    files: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # seconds one encode or decode call may take unless `rdbench run --timeout` says otherwise
    # (a reference encoder: minutes per image)
    timeout_s: float = DEFAULT_TIMEOUT_S
    # [check]: a command whose output must contain a text for the build to be the one the spec's
    # commands need (HM with the SCM extension, bpgenc with the chosen encoder); (command, text,
    # problem) or None; all three may hold placeholders
    check: tuple[tuple[str, ...], str, str] | None = None


def _parse(path_text: str, raw: dict) -> Definition:
    def fail(message):
        raise CodecSpecError(f"{path_text}: {message}")

    def need(key, kind):
        if key not in raw:
            fail(f"missing required key {key!r}")
        if not isinstance(raw[key], kind):
            fail(f"{key!r} must be {kind.__name__}")
        return raw[key]

    def optional(table, key, kind, default, where=""):
        value = table.get(key, default)
        if not isinstance(value, kind):
            fail(f"{where}{key!r} must be {kind.__name__ if isinstance(kind, type) else ' or '.join(k.__name__ for k in kind)}")
        return value

    def strings(value, what):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            fail(f"{what} must be a list of strings")
        return value

    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    cmds = need("commands", dict)
    version = optional(raw, "version", dict, {})
    options = {}
    for key, o in optional(raw, "options", dict, {}).items():
        if not isinstance(o, dict) or "default" not in o or not isinstance(o["default"], (str, int, float)):
            fail(f"[options.{key}] needs a default (a string or number)")
        choices = o.get("choices")
        if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, (str, int, float)) for c in choices)):
            fail(f"[options.{key}] choices must be a list of strings or numbers")
        option = Option(str(o["default"]), tuple(map(str, choices)) if choices is not None else None,
                        optional(o, "help", str, "", f"[options.{key}] "))
        if option.choices is not None and option.default not in option.choices:
            fail(f"[options.{key}] default {option.default!r} is not one of its choices {list(option.choices)}")
        options[key] = option
    qualities = need("qualities", list)
    if not all(number(q) for q in qualities):
        fail("'qualities' must be a list of finite numbers")
    quality_range = raw.get("quality_range")
    if quality_range is not None:
        if not (isinstance(quality_range, list) and len(quality_range) == 2 and all(number(q) for q in quality_range)
                and quality_range[0] <= quality_range[1]):
            fail("'quality_range' must be [low, high], two finite numbers")
        if not all(quality_range[0] <= q <= quality_range[1] for q in qualities):
            fail(f"'qualities' {qualities} outside 'quality_range' {quality_range}")
    files = {}
    for key, f in optional(raw, "files", dict, {}).items():
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
            fail(f"[files.{key}] needs a file 'name'")
        search = f.get("search", ["."])
        if not isinstance(search, list) or not all(isinstance(d, str) for d in search):
            fail(f"[files.{key}] 'search' must be a list of folders (relative to the binaries' folder)")
        files[key] = (f["name"], tuple(search))
        if key in options:
            fail(f"[files.{key}] and [options.{key}] share a name")
        options[key] = Option("auto", None, optional(f, "help", str, "", f"[files.{key}] ")
                              + f" (default auto: {f['name']} found beside the binaries)")
    timeout = raw.get("timeout", DEFAULT_TIMEOUT_S)
    if not number(timeout) or timeout <= 0:
        fail("'timeout' must be a number of seconds above 0")
    check = optional(raw, "check", dict, {})
    if check:
        for key in ("contains", "problem"):
            if not isinstance(check.get(key), str) or not check[key]:
                fail(f"[check] needs {key!r}, a non-empty string")
        check = (tuple(strings(check.get("command"), "[check] command")), check["contains"], check["problem"])
    pattern = optional(version, "pattern", str, r"(\S+)", "[version] ")
    try:
        re.compile(pattern)
    except re.error as exc:
        fail(f"[version] pattern {pattern!r}: {exc}")
    definition = Definition(
        name=need("name", str),
        source=path_text,
        description=optional(raw, "description", str, ""),
        binaries=strings(need("binaries", list), "'binaries'"),
        encode=strings(cmds.get("encode") or [], "[commands] encode"),
        decode=strings(cmds.get("decode") or [], "[commands] decode"),
        extension=need("extension", str),
        input_format=optional(raw, "input_format", str, "png"),
        output_format=optional(raw, "output_format", str, "png"),
        qualities=tuple(qualities),
        quality_range=tuple(quality_range) if quality_range is not None else None,
        quality_name=optional(raw, "quality_name", str, "quality"),
        version_command=strings(version.get("command", []), "[version] command"),
        version_pattern=pattern,
        env_dir=optional(raw, "env_dir", (str, type(None)), None),
        install_hint=optional(raw, "install_hint", str, ""),
        options=options,
        colour=optional(raw, "colour", str, ""),
        files=files,
        timeout_s=float(timeout),
        check=check or None,
    )
    if not definition.name.strip():
        fail("'name' is empty")
    if not definition.encode or not definition.decode:
        fail("[commands] needs both encode and decode")
    for fmt in (definition.input_format, definition.output_format):
        if fmt not in IMAGE_FORMATS:
            fail(f"image format {fmt!r} (expected one of {', '.join(IMAGE_FORMATS)})")
    if "yuv444p" in (definition.input_format, definition.output_format):
        from rdbench.codecs.yuv import COLOURS

        if definition.colour not in COLOURS:
            fail(f"'colour' {definition.colour!r}: a yuv444p format needs one of {', '.join(COLOURS)}")
    allowed = {"input", "output", "quality", "width", "height", *definition.binaries, *definition.options}
    for template in (definition.encode, definition.decode, definition.version_command,
                     [*definition.check[0], *definition.check[1:]] if definition.check else []):
        for arg in template:
            for key in re.findall(r"{(\w+)}", arg):
                if key not in allowed:
                    fail(f"placeholder {{{key}}} is not one of {sorted(allowed)}")
            try:  # what _args will do: every other brace, index or attribute is an error too
                arg.format(**dict.fromkeys(allowed, ""))
            except (KeyError, IndexError, ValueError, AttributeError) as exc:
                fail(f"template argument {arg!r} is not a valid placeholder string ({type(exc).__name__}: {exc})")
    return definition


def load_definition(path: Path) -> Definition:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
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
            try:
                found.append((str(path), path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise CodecSpecError(f"{path}: cannot read it as UTF-8 text ({exc})") from exc
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
        self.timeout_s = definition.timeout_s
        super().__init__(spec or definition.name)

    def configure(self, *, timeout_s: float | None) -> None:
        """`rdbench run --timeout` when given, else the spec's `timeout` (600 s unless it says)."""
        self.timeout_s = timeout_s if timeout_s is not None else self.definition.timeout_s

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

    @cached_property
    def file_paths(self) -> dict[str, str | None]:
        """Each [files] entry: the option's path when given, else the first match of its search
        folders around the first binary (VTM's cfg/encoder_intra_vtm.cfg beside bin/)."""
        found = {}
        binary = next(iter(self.paths.values()), None)
        for key, (name, search) in self.definition.files.items():
            given = self.opts.get(key, "auto")
            if given != "auto":
                found[key] = given if Path(given).is_file() else None
                continue
            found[key] = None
            if binary:
                base = Path(binary).resolve().parent
                for folder in search:
                    candidate = (base / folder / name).resolve()
                    if candidate.is_file():
                        found[key] = str(candidate)
                        break
        return found

    def availability(self):
        missing = [b for b, p in self.paths.items() if p is None]
        where = f"${self.definition.env_dir} or PATH" if self.definition.env_dir else "PATH"
        if missing:
            return f"{', '.join(missing)} not found (looked in {where}). {self.definition.install_hint}".strip()
        for key, path in self.file_paths.items():
            if path is None:
                name, search = self.definition.files[key]
                given = self.opts.get(key, "auto")
                if given != "auto":
                    return f"{key}={given}: no such file"
                folders = ", ".join(search)
                return (f"{name} not found beside {next(iter(self.paths.values()))} (looked in {folders}); give it "
                        f"as {self.name}:{key}=PATH or set ${self.definition.env_dir or 'PATH'} to the build's "
                        f"binaries. {self.definition.install_hint}").strip()
        return self._check_problem

    @cached_property
    def _check_problem(self) -> str | None:
        """The spec's [check]: its command's output (stdout and stderr, any exit status) must contain
        its text, else the build is not the one the commands need and the problem says so. The text
        and the problem may name options ({encoder}: bpgenc lists the encoders it was built with)."""
        if not self.definition.check:
            return None
        command, text, problem = self.definition.check
        args = self._args(list(command))
        text, problem = self._args([text, problem])
        try:
            done = subprocess.run(args, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(args)}: {exc}. {problem}"
        if text.encode() in done.stdout + done.stderr:
            return None
        return f"{args[0]}: {' '.join(args[1:])} does not mention {text!r}: {problem}"

    def _args(self, template: list[str], **values) -> list[str]:
        mapping = {**self.opts, **self.paths, **self.file_paths, **values}
        return [arg.format(**mapping) for arg in template]

    @cached_property
    def _sizes(self) -> dict:
        return {}

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

    def _run(self, args: list[str], what: str, max_bytes: int) -> None:
        try:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise CodecError(f"{self.spec.text}: cannot run {args[0]}: {exc}") from exc
        _raise_file_limit(proc.pid, max_bytes)
        with proc, owned_process(proc.pid):
            try:
                stdout, stderr = _bounded_communicate(proc, self.timeout_s)
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid)  # the binary and whatever it started: no orphan goes on running
                proc.wait()
                raise CodecError(f"{self.spec.text}: {what} timed out after {self.timeout_s:g} s (killed)") from None
            except BaseException:
                kill_tree(proc.pid)
                raise
        if proc.returncode != 0:
            tail = (stderr or stdout).decode(errors="replace").strip().splitlines()[-3:]
            if proc.returncode < 0:
                try:
                    how = f"was killed by {signal.Signals(-proc.returncode).name}"
                except ValueError:
                    how = f"was killed by signal {-proc.returncode}"
            else:
                how = f"exited with {proc.returncode}"
            raise CodecError(f"{self.spec.text}: {what} {how}" + (f": {' / '.join(tail)}" if tail else ""))

    def _output(self, path: Path, what: str, max_bytes: int) -> bytes:
        if not path.is_file():
            raise CodecError(f"{self.spec.text}: {what} wrote no output file")
        size = path.stat().st_size
        if size > max_bytes:
            raise CodecError(f"{self.spec.text}: {what} wrote {size:,} bytes, over the {max_bytes:,} bytes an "
                             "image's file may have (not read)")
        data = path.read_bytes()
        if not data:
            raise CodecError(f"{self.spec.text}: {what} wrote an empty file")
        return data

    def _input_bytes(self, image: np.ndarray) -> bytes:
        fmt = self.definition.input_format
        if fmt == "yuv444p":
            from rdbench.codecs.yuv import rgb_to_planes

            return rgb_to_planes(image, self.definition.colour)
        return encode_ppm(image) if fmt == "ppm" else encode_png(image)

    def encode(self, image: np.ndarray, quality) -> bytes:
        height, width = image.shape[:2]
        with scratch_dir() as tmp:
            src = tmp / f"in.{self.definition.input_format}"
            dst = tmp / f"out.{self.extension}"
            src.write_bytes(self._input_bytes(image))
            limit = max_output_bytes(height * width)
            self._run(self._args(self.definition.encode, input=src, output=dst, quality=quality, width=width,
                                 height=height), "encoder", limit)
            data = self._output(dst, "encoder", limit)
        if self.definition.output_format == "yuv444p":
            # a raw YUV file does not say its size: remember it for this bitstream's decode
            if len(self._sizes) >= _SIZES_KEPT:
                self._sizes.pop(next(iter(self._sizes)))
            self._sizes[hashlib.sha256(data).digest()] = (height, width)
        return data

    def decode_output(self, data: bytes) -> bytes:
        """The decoder's output file for a bitstream, as it wrote it: raw Y, Cb, Cr planes for a
        yuv444p decoder (what a published run's own conversion back to RGB starts from), else an image file."""
        with scratch_dir() as tmp:
            src = tmp / f"in.{self.extension}"
            dst = tmp / f"out.{self.definition.output_format}"
            src.write_bytes(data)
            # the image is not known here: the largest one rdbench reads bounds the decoder's file
            limit = max_output_bytes(max_image_pixels())
            self._run(self._args(self.definition.decode, input=src, output=dst), "decoder", limit)
            return self._output(dst, "decoder", limit)

    def decode(self, data: bytes) -> np.ndarray:
        size = None
        if self.definition.output_format == "yuv444p":
            size = self._sizes.get(hashlib.sha256(data).digest())
            if size is None:
                raise CodecError(f"{self.spec.text}: its decoder writes raw YUV, whose size only the encode call "
                                 "knows: decode bitstreams this codec object encoded")
        try:
            output = self.decode_output(data)
            if size is not None:
                from rdbench.codecs.yuv import planes_to_rgb

                try:
                    return planes_to_rgb(output, size[0], size[1], self.definition.colour)
                except ValueError as exc:
                    raise CodecError(f"{self.spec.text}: {exc}") from exc
            return decode_rgb(output, name=f"{self.spec.text} decoder output").pixels
        except ImageError as exc:
            raise CodecError(str(exc)) from exc
