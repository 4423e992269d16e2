"""Fuzz targets: every parser of outside input other than learned bitstreams (fuzz_learned.py).

Targets (each input is a mutation of a real, valid input; input i of a target is a pure function
of (--seed, target, i), so `--only I` replays it):

- images:    rdbench.data.images.load_rgb, and folder_dataset over the file: PNG (RGB, L, P,
             RGBA, 16-bit), JPEG, PPM/PGM, TIFF (raw, LZW), BMP, WebP made here; truncations,
             bit flips, byte changes, inserts, header fields (PNG IHDR with its CRC redone, PPM
             header, JPEG SOF, TIFF width/length tags, BMP size), decompression bombs (headers
             declaring up to 100000 x 100000 or 2^32-1 pixels a side).
             Named error: ImageError whose message contains the file's path.
- specs:     codec spec strings through rdbench.codecs.base.parse_spec and registry.load (every
             registered name, options, values, separators, whitespace, unicode, control bytes).
             Named errors: ValueError raised by rdbench's own code (load's documented error for
             an unknown name or option: the innermost frame of the traceback is in rdbench/, so
             a ValueError from float() or numpy is not one), CodecUnavailable, CodecSpecError.
- toml:      codec TOML specs (codecs/*.toml) mutated (values replaced by every TOML type,
             keys renamed or dropped, lines dropped or repeated, bytes flipped, truncations) and
             loaded as the registry loads them: from a folder in RDBENCH_CODECS_PATH, through
             external.definitions(), registry.load(name) and the codec's ladder (check_quality).
             Named errors: CodecSpecError naming the TOML file; for load, ValueError raised in
             rdbench (an option's default outside its choices, as for a spec string).
- manifests: dataset manifests (datasets/kodak.toml, trimmed to 3 images) mutated likewise and
             read by datasets.load_manifest, then verified against a local copy (verify_copy;
             the manifest's files are made here). Named error: DatasetError naming the manifest
             (or, from verification, the image file).
- results:   results.csv (the head of results/kodak/results.csv) with torn lines, dropped or
             foreign columns, wrong field counts, junk values, binary junk, NUL bytes, invalid
             UTF-8, empty file, header only; read by store.read_results (raw, as bdrate reads
             it), then opened and closed as a ResultStore (which repairs it), then read again.
             Named error: StoreError naming the file.
- compressai: CompressAI-style JSON (rdbench/reference/bpg_444_x265_ycbcr.json and an
             rdbench-written one with meta) mutated: invalid JSON, wrong types, missing keys,
             NaN/Infinity, lists of other lengths; read by published.read_compressai_json.
             Named error: ValueError raised by rdbench naming the file.
- bd:        rdbench.analysis.bd.bd on curves with NaN, inf, zero or negative rates,
             duplicates, unsorted, non-monotonic, 0-8 points, huge and tiny values, bad
             method/kind; every 10th input also runs the `rdbench bdrate` command path on a
             results.csv holding the two curves. Named: BDError (bd) or exit status 0 / 2 with
             a message (the command); the only warning allowed is LowOverlapWarning, and a
             returned BD value must be finite.

Each input runs in a child process with an address-space limit (--memory-mb), so a crash (a
signal), a hang (past --timeout) or unbounded memory (MemoryError, or the child killed) is
counted and the child restarted. Outcomes: ok, named (rdbench's own error), other (anything
else: a bug), crash, hang. Inputs that end in other, crash or hang are written to --save.

    python tests/fuzz/fuzz_inputs.py --target all --examples 10000 --seed 2026   # the long campaign (nice -n 19)
    python tests/fuzz/fuzz_inputs.py --target images --examples 300              # one target
    python tests/fuzz/fuzz_inputs.py --target images --only 17 --seed 2026       # replay one input
    python tests/fuzz/fuzz_inputs.py --replay tests/fuzz/regressions/inputs      # the regression inputs

The CI budget is tests/test_fuzz_inputs.py (250 inputs per target, about 20 s in all).

The long campaign, seed 2026, 10,000 inputs per target, one target at a time under nice -n 19 on
2 busy cores (2026-12-01): 0 crashes, 0 hangs, 0 other errors in every target; ok / named and
wall time: images 2740 / 7260, 75 s (slowest input 9.4 s: a header declaring just under Pillow's
bomb limit, child peak RSS 1.9 GB); specs 1560 / 8440, 2 s; toml 1475 / 8525, 50 s; manifests
1805 / 8195, 31 s; results 5516 / 4484, 114 s; compressai 2654 / 7346, 44 s; bd 1003 / 8997, 52 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
RDBENCH_SRC = str(REPO / "rdbench") + os.sep
REGRESSIONS = HERE / "regressions" / "inputs"
OUTCOMES = ("ok", "named", "other", "crash", "hang")
TARGETS = ("images", "specs", "toml", "manifests", "results", "compressai", "bd")


class Other(Exception):
    """A result that is wrong without an exception (an undocumented warning, a non-finite BD)."""


# -- generic mutations ----------------------------------------------------------------------------
INTERESTING_INTS = [0, 1, 2, 3, 7, 8, 15, 16, 63, 64, 127, 128, 255, 256, 1023, 4096, 65535, 65536, 100000,
                    2**24, 2**31 - 1, 2**31, 2**32 - 1]


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    data = bytearray(data)
    kind = rng.choice(["flip", "set", "insert", "delete", "truncate", "duplicate", "zero", "extend"])
    n = rng.choice([1, 1, 2, 4, 16])
    if not data:
        return "random", rng.randbytes(rng.randrange(64))
    for _ in range(n):
        i = rng.randrange(len(data)) if data else 0
        if kind == "flip" and data:
            data[i] ^= 1 << rng.randrange(8)
        elif kind == "set" and data:
            data[i] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif kind == "insert":
            data[i:i] = rng.randbytes(rng.choice([1, 2, 4, 8]))
        elif kind == "delete" and data:
            del data[i : i + rng.choice([1, 2, 4, 16])]
        elif kind == "duplicate" and data:
            data[i:i] = data[i : i + rng.choice([4, 16, 64])]
        elif kind == "zero" and data:
            data[i : i + 8] = bytes(len(data[i : i + 8]))
    if kind == "truncate":
        data = data[: rng.randrange(len(data) + 1)]
    if kind == "extend":
        data += rng.randbytes(rng.choice([1, 16, 1024]))
    return f"bytes {kind}", bytes(data)


def toml_value(rng: random.Random) -> str:
    return rng.choice([
        '""', '"x"', '"{input}"', '"{nope}"', '"{"', '"a b"', '"\\u00e9"', "0", "-1", "1", "51", "1e308", "-1e308",
        "nan", "inf", "-inf", "true", "false", "[]", "[1, 2]", '["a", "b"]', "[[1], [2]]", '[1, "a"]', "{}",
        '{a = 1}', '{default = "x"}', "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00", "0x7f", "1.5",
        str(rng.randrange(-10**6, 10**6)), '"' + "x" * rng.choice([1, 100, 10000]) + '"', "'''multi\nline'''",
    ])


def mutate_text(text: str, rng: random.Random, value=toml_value) -> tuple[str, str]:
    """Line- and token-level mutations of a TOML or CSV text."""
    lines = text.splitlines(keepends=True)
    kind = rng.choice(["value", "value", "value", "key", "drop-line", "dup-line", "swap-lines", "truncate", "insert",
                       "bytes", "section"])
    if kind == "value":
        idx = [i for i, line in enumerate(lines) if "=" in line]
        if idx:
            i = rng.choice(idx)
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {value(rng)}\n"
    elif kind == "key":
        idx = [i for i, line in enumerate(lines) if "=" in line]
        if idx:
            i = rng.choice(idx)
            key, rest = lines[i].split("=", 1)
            new = rng.choice(["x", "name", "default", "choices", "images", "file", "qualities", '"a.b"', "1", "é"])
            lines[i] = f"{new} ={rest}"
    elif kind == "drop-line" and lines:
        for _ in range(rng.choice([1, 1, 3, 10])):
            if lines:
                del lines[rng.randrange(len(lines))]
    elif kind == "dup-line" and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif kind == "swap-lines" and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "truncate":
        joined = "".join(lines)
        return "text truncate", joined[: rng.randrange(len(joined) + 1)]
    elif kind == "insert":
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["[x]\n", "[[images]]\n", "[options.q]\n", "= 1\n",
                                                              "x = \n", "\x00\n", "[commands]\n", "name = 1\n"]))
    elif kind == "section":
        idx = [i for i, line in enumerate(lines) if line.startswith("[")]
        if idx:
            i = rng.choice(idx)
            lines[i] = rng.choice(["[x]\n", "[[commands]]\n", "[options]\n", "[images]\n", "[[version]]\n", "\n"])
    out = "".join(lines)
    if kind == "bytes":
        what, raw = mutate_bytes(out.encode(), rng)
        return "text " + what, raw.decode("utf-8", errors="replace") if rng.random() < 0.7 else raw.decode("latin-1")
    return f"text {kind}", out


def raised_in_rdbench(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and last.tb_frame.f_code.co_filename.startswith(RDBENCH_SRC)


def named(exc: BaseException, types: tuple, names: tuple[str, ...] = (), own: bool = True) -> bool:
    """Whether exc is one of rdbench's own named errors for this target."""
    return (isinstance(exc, types) and (not own or raised_in_rdbench(exc))
            and (not names or any(n in str(exc) for n in names)))


# -- target: images ---------------------------------------------------------------------------------
def image_seeds() -> list[tuple[str, bytes]]:
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:6, 0:8]
    rgb = np.stack([x * 30, y * 40, (x + y) * 15], axis=-1).astype(np.uint8)
    seeds = []

    def save(im, fmt, suffix, **kw):
        buf = io.BytesIO()
        im.save(buf, format=fmt, **kw)
        seeds.append((suffix, buf.getvalue()))

    im = Image.fromarray(rgb)
    save(im, "PNG", ".png")
    save(im.convert("L"), "PNG", ".png")
    save(im.convert("P"), "PNG", ".png")
    save(im.convert("RGBA"), "PNG", ".png")
    save(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG", ".png")
    save(im, "JPEG", ".jpg", quality=80)
    save(im, "JPEG", ".jpg", quality=80, progressive=True)
    save(im, "PPM", ".ppm")
    save(im.convert("L"), "PPM", ".pgm")
    save(im, "TIFF", ".tif")
    save(im, "TIFF", ".tiff", compression="tiff_lzw")
    save(im, "BMP", ".bmp")
    save(im, "WEBP", ".webp", quality=80)
    return seeds


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def image_bomb(rng: random.Random) -> tuple[str, str, bytes]:
    w = rng.choice([100000, 65535, 46341, 20000, 2**31 - 1, 2**32 - 1, 1, 0])
    h = rng.choice([100000, 65535, 46341, 20000, 2**31 - 1, 2**32 - 1, 1, 0])
    fmt = rng.choice(["png", "ppm", "tiff", "bmp"])
    if fmt == "png":
        ihdr = struct.pack(">IIBBBBB", w, h, 8, rng.choice([0, 2, 3, 6]), 0, 0, 0)
        body = zlib.compress(bytes(rng.choice([0, 1000, 100000])))
        data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")
        return f"bomb png {w}x{h}", ".png", data
    if fmt == "ppm":
        return f"bomb ppm {w}x{h}", ".ppm", b"P6\n%d %d\n255\n" % (w, h) + bytes(rng.choice([0, 3, 3000]))
    if fmt == "bmp":
        w, h = min(w, 2**31 - 1), min(h, 2**31 - 1)
        header = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 0, 0, 0, 0)
        return f"bomb bmp {w}x{h}", ".bmp", header + bytes(64)
    # a minimal little-endian TIFF: width, length, bits, compression 1, photometric 2, strips
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2), (273, 4, 1, 8),
               (277, 3, 1, 3), (279, 4, 1, 64)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
    data = b"II*\x00" + struct.pack("<I", 8 + 64) + bytes(64) + ifd
    return f"bomb tiff {w}x{h}", ".tif", data


def mutate_header(suffix: str, data: bytes, rng: random.Random) -> tuple[str, bytes]:
    data = bytearray(data)
    value = rng.choice(INTERESTING_INTS + [rng.randrange(1, 5000)])
    if suffix == ".png" and data[12:16] == b"IHDR":
        field, offset, fmt = rng.choice([("width", 16, ">I"), ("height", 20, ">I"), ("depth", 24, ">B"),
                                         ("colour", 25, ">B"), ("interlace", 28, ">B")])
        struct.pack_into(fmt, data, offset, value % (256 if fmt == ">B" else 2**32))
        if rng.random() < 0.8:
            struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
        return f"png {field}={value}", bytes(data)
    if suffix in (".ppm", ".pgm"):
        text = bytes(data)
        magic, w, h, maxval, rest = text.split(maxsplit=4) if len(text.split(maxsplit=4)) == 5 else (b"P6", b"1", b"1", b"255", b"")
        field = rng.choice(["w", "h", "maxval", "magic"])
        w, h = (str(value).encode() if field == "w" else w), (str(value).encode() if field == "h" else h)
        maxval = rng.choice([b"0", b"1", b"65535", b"65536", b"-1", b"x"]) if field == "maxval" else maxval
        magic = rng.choice([b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7", b"PF", b"Pf", b"P0"]) if field == "magic" else magic
        return f"pnm {field}", magic + b"\n" + w + b" " + h + b"\n" + maxval + b"\n" + rest
    if suffix == ".jpg":
        sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        if sof > 0:
            field, offset = rng.choice([("height", sof + 5), ("width", sof + 7), ("components", sof + 9)])
            if field == "components":
                data[offset] = value % 256
            else:
                struct.pack_into(">H", data, offset, value % 65536)
            return f"jpeg {field}={value}", bytes(data)
    if suffix in (".tif", ".tiff") and data[:2] == b"II":
        (ifd,) = struct.unpack_from("<I", data, 4)
        if ifd + 2 <= len(data):
            (count,) = struct.unpack_from("<H", data, ifd)
            if count and ifd + 2 + 12 * count <= len(data):
                k = rng.randrange(count)
                tag = struct.unpack_from("<H", data, ifd + 2 + 12 * k)[0]
                struct.pack_into("<I", data, ifd + 2 + 12 * k + 8, value)
                return f"tiff tag {tag}={value}", bytes(data)
    if suffix == ".bmp":
        field, offset = rng.choice([("width", 18), ("height", 22), ("bits", 28), ("offset", 10)])
        struct.pack_into("<I", data, offset, value)
        return f"bmp {field}={value}", bytes(data)
    return mutate_bytes(bytes(data), rng)


class Images:
    def __init__(self, tmp: Path):
        self.seeds = image_seeds()
        self.tmp = tmp

    def make(self, rng):
        suffix, data = rng.choice(self.seeds)
        kind = rng.choices(["bytes", "header", "bomb", "cross"], weights=[50, 30, 15, 5])[0]
        if kind == "bomb":
            return image_bomb(rng)
        if kind == "header":
            what, out = mutate_header(suffix, data, rng)
        elif kind == "cross":  # one format's bytes under another's suffix
            what, out = "cross-suffix", data
            suffix = rng.choice([s for s, _ in self.seeds])
        else:
            what, out = mutate_bytes(data, rng)
            if rng.random() < 0.3:
                what, out = mutate_bytes(out, rng)
        return what, suffix, out

    def run(self, payload):
        from rdbench.data.datasets import folder_dataset
        from rdbench.data.images import load_rgb
        from rdbench.errors import ImageError

        _, suffix, data = payload
        folder = Path(tempfile.mkdtemp(dir=self.tmp))
        path = folder / f"input{suffix}"
        path.write_bytes(data)
        try:
            try:
                load_rgb(path)
                outcome = "ok"
            except Exception as exc:
                if not named(exc, (ImageError,), (str(path),)):
                    raise
                outcome = "named"
            refs = folder_dataset(folder).images  # what `rdbench run` does with a folder
            if len(refs) != 1 or (refs[0].error is None) != (outcome == "ok"):
                raise Other(f"folder_dataset disagrees with load_rgb: {refs}")
            return outcome
        finally:
            path.unlink()
            folder.rmdir()


# -- target: spec strings ---------------------------------------------------------------------------
class Specs:
    def __init__(self, tmp: Path):
        from rdbench.codecs.registry import _entries, codec_names, load

        # compressai: and model: import torch and CompressAI to check an architecture or a class,
        # which the child's address-space limit (--memory-mb) does not allow; their bad-input
        # cases are tests of their own (tests/test_models.py)
        self.names = [n for n in codec_names() if n not in ("compressai", "model")]
        needs_options = ("learned", "compressai", "model")  # no default configuration: their keys are listed here
        self.options = sorted({k for n in self.names if n not in needs_options and not n.startswith(("mbt", "bmshj"))
                               for k in load(n, check_available=False).options}
                              | {"checkpoint", "checkpoints", "max_pixels", "device", "threads", "arch", "class", "padding",
                                 "stride", "metric"})
        _entries()

    def make(self, rng):
        pieces = []
        name = rng.choice(self.names + ["", " ", "JPEG", "jpeg2", "x" * 300, "é", "\x00", "jpeg ", ":"])
        pieces.append(name)
        if rng.random() < 0.8:
            pieces.append(rng.choice([":", ":", ": ", "::", ""]))
            opts = []
            for _ in range(rng.choice([0, 1, 1, 2, 3, 6])):
                key = rng.choice(self.options + ["", " ", "x", "=", "quality"])
                val = rng.choice(["", "0", "1", "444", "420", "-1", "1e9", "nan", "x", "=", "a=b", ":", "cuda",
                                  "/nonexistent.pt", "2**40", str(rng.randrange(10**6)), "../../etc/passwd", " 9 "])
                opts.append(rng.choice([f"{key}={val}", f"{key}={val}", key, f"{key}=", f"={val}", f" {key} = {val} "]))
            pieces.append(rng.choice([",", ", ", ",,", ";"]).join(opts))
        text = "".join(pieces)
        if rng.random() < 0.15:
            _, raw = mutate_bytes(text.encode(), rng)
            text = raw.decode("utf-8", errors="replace")
        return "spec", text

    def run(self, payload):
        from rdbench.codecs.base import CodecUnavailable, parse_spec, split_spec_list
        from rdbench.codecs.external import CodecSpecError
        from rdbench.codecs.registry import load

        text = payload[1]
        try:
            split_spec_list([text])
            spec = parse_spec(text)
            codec = load(spec, check_available=rng_bool(text))
            codec.configuration  # noqa: B018  (what a run compares codecs by)
            return "ok"
        except Exception as exc:
            if named(exc, (ValueError,)) or named(exc, (CodecUnavailable, CodecSpecError), own=False):
                return "named"
            raise


def rng_bool(text: str) -> bool:
    return zlib.crc32(text.encode("utf-8", "replace")) % 2 == 0


# -- target: codec TOML specs --------------------------------------------------------------------------
class Toml:
    def __init__(self, tmp: Path):
        self.seeds = [p.read_text() for p in sorted((REPO / "codecs").glob("*.toml"))]
        self.tmp = tmp

    def make(self, rng):
        text = rng.choice(self.seeds)
        what = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            w, text = mutate_text(text, rng)
            what.append(w)
        return "; ".join(what), text

    def run(self, payload):
        from rdbench.codecs import external, registry
        from rdbench.codecs.external import CodecSpecError

        folder = Path(tempfile.mkdtemp(dir=self.tmp))
        path = folder / "fuzz.toml"
        path.write_text(payload[1], encoding="utf-8", errors="surrogateescape")
        old = os.environ.get("RDBENCH_CODECS_PATH")
        os.environ["RDBENCH_CODECS_PATH"] = str(folder)
        try:
            try:
                definitions = external.definitions()
            except Exception as exc:
                if named(exc, (CodecSpecError,), (str(path),)):
                    return "named"
                raise
            mine = [d for d in definitions if d.source == str(path)]
            if len(mine) != 1:
                raise Other(f"{len(mine)} definitions from one file")
            try:
                codec = registry.load(mine[0].name, check_available=False)
                codec.availability()
                codec.configuration  # noqa: B018
                for q in codec.qualities:
                    codec.check_quality(q)
            except Exception as exc:
                if named(exc, (ValueError,), (str(path), "codec spec")):
                    return "named"
                raise
            return "ok"
        finally:
            registry._discovered.cache_clear()
            if old is None:
                os.environ.pop("RDBENCH_CODECS_PATH", None)
            else:
                os.environ["RDBENCH_CODECS_PATH"] = old
            path.unlink()
            folder.rmdir()


# -- target: dataset manifests -------------------------------------------------------------------------
class Manifests:
    def __init__(self, tmp: Path):
        import numpy as np

        from rdbench.data.images import encode_png, pixels_sha256

        self.tmp = tmp
        text = (REPO / "datasets" / "kodak.toml").read_text()
        head, *blocks = text.split("[[images]]")
        self.copy = tmp / "copy"
        self.copy.mkdir()
        out = [head]
        for k, block in enumerate(blocks[:3]):
            pixels = np.full((4 + k, 5, 3), 40 * k, np.uint8)
            data = encode_png(pixels)
            name = f"kodim0{k + 1}.png"
            (self.copy / name).write_bytes(data)
            import hashlib

            block = re.sub(r'file_sha256 = "\w+"', f'file_sha256 = "{hashlib.sha256(data).hexdigest()}"', block)
            block = re.sub(r'pixels_sha256 = "\w+"', f'pixels_sha256 = "{pixels_sha256(pixels)}"', block)
            out.append(block)
        self.seed = "[[images]]".join(out)

    def make(self, rng):
        text = self.seed
        what = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            w, text = mutate_text(text, rng, value=lambda r: r.choice([toml_value(r), '"../x.png"', '"/etc/hostname"',
                                                                        '"kodim02.png"', '"a/b.png"', '"."', '""']))
            what.append(w)
        return "; ".join(what), text

    def run(self, payload):
        from rdbench.data import datasets
        from rdbench.errors import DatasetError

        folder = Path(tempfile.mkdtemp(dir=self.tmp))
        path = folder / "fuzz.toml"
        path.write_text(payload[1], encoding="utf-8", errors="surrogateescape")
        original = datasets.manifests_folder
        datasets.manifests_folder = lambda: folder
        try:
            try:
                manifest = datasets.load_manifest("fuzz")
            except Exception as exc:
                if named(exc, (DatasetError,), (str(path), "fuzz.toml")):
                    return "named"
                raise
            try:
                datasets.verify_copy(manifest, self.copy)
            except Exception as exc:
                if named(exc, (DatasetError,), (str(self.copy),)):
                    return "named"
                raise
            return "ok"
        finally:
            datasets.manifests_folder = original
            path.unlink()
            folder.rmdir()


# -- target: results.csv --------------------------------------------------------------------------------
def csv_value(rng: random.Random) -> str:
    return rng.choice(["", "nan", "NaN", "inf", "-inf", "x", "1e999", "-1", "0", '"', '""', '"a,b"', "\x00", "é",
                       "ok", "failed", "True", "2026-01-01", "1" * 400, "None", "\\", "\r"])


class Results:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        lines = (REPO / "results" / "kodak" / "results.csv").read_text().splitlines(keepends=True)
        self.seed = "".join(lines[:6] + lines[400:403] + lines[-3:])

    def make(self, rng):
        lines = self.seed.splitlines(keepends=True)
        kind = rng.choice(["cell", "cell", "torn", "foreign", "drop-column", "fields", "junk", "nul", "utf8", "empty",
                           "header-only", "text", "bom", "crlf", "rename"])
        if kind == "cell":
            for _ in range(rng.choice([1, 2, 5])):
                i = rng.randrange(len(lines))
                cells = lines[i].rstrip("\n").split(",")
                cells[rng.randrange(len(cells))] = csv_value(rng)
                lines[i] = ",".join(cells) + "\n"
        elif kind == "torn":
            cut = rng.randrange(len(lines[-1]))
            lines[-1] = lines[-1][:cut]
            if rng.random() < 0.5 and len(lines) > 2:  # torn in the middle too (a line written by an old crash)
                j = rng.randrange(1, len(lines) - 1)
                lines[j] = lines[j][: rng.randrange(len(lines[j]))] + "\n"
        elif kind == "foreign":
            lines[0] = lines[0].rstrip("\n") + rng.choice([",extra\n", ",bpp\n", ",\n"])
            if rng.random() < 0.7:
                lines[1:] = [line.rstrip("\n") + ",1\n" for line in lines[1:]]
        elif kind == "drop-column":
            k = rng.randrange(24)
            lines = [",".join(c for j, c in enumerate(line.rstrip("\n").split(",")) if j != k) + "\n" for line in lines]
        elif kind == "fields":
            i = rng.randrange(1, len(lines))
            lines[i] = lines[i].rstrip("\n") + rng.choice([",", ",,", ""]) + "\n" if rng.random() < 0.5 else \
                ",".join(lines[i].split(",")[: rng.randrange(24)]) + "\n"
        elif kind == "junk":
            junk = rng.randbytes(rng.choice([1, 16, 200])).decode("latin-1")
            lines.insert(rng.randrange(len(lines) + 1), junk + rng.choice(["\n", ""]))
        elif kind == "nul":
            i = rng.randrange(len(lines))
            p = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:p] + "\x00" + lines[i][p:]
        elif kind == "utf8":
            return "invalid utf-8", (self.seed.encode()[:300] + b"\xff\xfe\xc3(" + self.seed.encode()[300:])
        elif kind == "empty":
            return "empty", rng.choice([b"", b"\n", b"\n\n", b" ", b","])
        elif kind == "header-only":
            return "header only", lines[0].encode() if rng.random() < 0.7 else lines[0].rstrip("\n").encode()
        elif kind == "text":
            return "text", mutate_bytes(self.seed.encode(), rng)[1]
        elif kind == "bom":
            lines[0] = "\ufeff" + lines[0]
        elif kind == "crlf":
            lines = [line.replace("\n", "\r\n") for line in lines]
        elif kind == "rename":
            cells = lines[0].rstrip("\n").split(",")
            cells[rng.randrange(len(cells))] = rng.choice(["", "image", "Image", "bpp ", "x"])
            lines[0] = ",".join(cells) + "\n"
        return f"csv {kind}", "".join(lines).encode("utf-8", errors="surrogateescape")

    def run(self, payload):
        from rdbench.bench.store import ResultStore, StoreError, read_results

        folder = Path(tempfile.mkdtemp(dir=self.tmp))
        path = folder / "results.csv"
        path.write_bytes(payload[1])
        outcome = "ok"
        try:
            for step in ("read", "open", "read"):
                try:
                    if step == "read":
                        read_results(folder)
                    else:
                        store = ResultStore(folder)
                        store.open()
                        store.close()
                except Exception as exc:
                    if not named(exc, (StoreError,), (str(path),)):
                        raise
                    outcome = "named"
            return outcome
        finally:
            for p in folder.iterdir():
                p.unlink()
            folder.rmdir()


# -- target: CompressAI JSON ------------------------------------------------------------------------
def json_value(rng: random.Random):
    return rng.choice([None, 0, -1, 1.5, float("nan"), float("inf"), -float("inf"), "", "x", "nan", True, [], {}, [1],
                       [None], ["a"], [[1, 2]], {"a": 1}, 10**400 if rng.random() < 0.1 else 2**63, [float("nan")] * 3,
                       list(range(rng.randrange(20)))])


def mutate_json(obj, rng: random.Random):
    """(what, object) with one node replaced, dropped, or a list resized."""
    path, node = [], obj
    while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append(key)
        node = node[key]
    if not path:
        return "root", json_value(rng) if rng.random() < 0.5 else obj
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    kind = rng.choice(["replace", "replace", "drop", "resize"])
    if kind == "drop":
        del parent[key]
    elif kind == "resize" and isinstance(parent[key], list):
        parent[key] = parent[key][: rng.randrange(len(parent[key]) + 1)] if rng.random() < 0.6 else parent[key] * 2
    else:
        parent[key] = json_value(rng)
    return f"{kind} {'/'.join(map(str, path))}", obj


class CompressAI:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.seeds = [(REPO / "rdbench" / "reference" / "bpg_444_x265_ycbcr.json").read_text()]
        mine = sorted((REPO / "results" / "kodak" / "compressai-json").glob("*.json"))
        self.seeds += [p.read_text() for p in mine[:2]]

    def make(self, rng):
        text = rng.choice(self.seeds)
        kind = rng.choices(["structure", "text", "bytes"], weights=[70, 15, 15])[0]
        if kind == "structure":
            obj = json.loads(text)
            what = []
            for _ in range(rng.choice([1, 1, 2, 4])):
                w, obj = mutate_json(obj, rng)
                what.append(w)
            return "; ".join(what), json.dumps(obj, allow_nan=True).encode()
        if kind == "text":
            what, out = mutate_text(text, rng, value=lambda r: json.dumps(json_value(r)) + ",")
            return what, out.encode("utf-8", errors="surrogateescape")
        return mutate_bytes(text.encode(), rng)

    def run(self, payload):
        from rdbench.analysis.published import read_compressai_json

        path = self.tmp / "curve.json"
        path.write_bytes(payload[1])
        try:
            read_compressai_json(path)
            return "ok"
        except Exception as exc:
            if named(exc, (ValueError,), (str(path),)):
                return "named"
            raise


# -- target: BD inputs ------------------------------------------------------------------------------------
def bd_number(rng: random.Random) -> float:
    return rng.choice([float("nan"), float("inf"), -float("inf"), 0.0, -1.0, 1e308, 1e-308, 5e-324, 1e-300, 1e300,
                       1e15, 1e-15, 1.0, 1.0 + 2**-52])


def bd_curve(rng: random.Random) -> tuple[list, list]:
    n = rng.choice([0, 1, 2, 3, 4, 4, 5, 6, 8])
    base = rng.choice([1e-3, 0.1, 1.0, 1e6, 1e-200, 1e200])
    rate = sorted(base * (1 + rng.random() * 2) ** k for k in range(n))
    dist = sorted(rng.uniform(20, 45) * rng.choice([1, 1, 1e-10, 1e10, 1e300]) + k for k in range(n))
    kind = rng.choice(["clean", "nan", "dup", "unsorted", "nonmono", "flat", "number", "number", "tiny-steps"])
    if kind == "nan" and n:
        (rate if rng.random() < 0.5 else dist)[rng.randrange(n)] = bd_number(rng)
    elif kind == "dup" and n > 1:
        i = rng.randrange(n - 1)
        rate[i + 1] = rate[i]
        if rng.random() < 0.5:
            dist[i + 1] = dist[i]
    elif kind == "unsorted":
        pairs = list(zip(rate, dist))
        rng.shuffle(pairs)
        rate, dist = [p[0] for p in pairs], [p[1] for p in pairs]
    elif kind == "nonmono" and n > 1:
        dist[rng.randrange(n)] = rng.uniform(0, 50)
    elif kind == "flat":
        dist = [dist[0] if dist else 30.0] * n
    elif kind == "number" and n:
        for _ in range(rng.randrange(1, n + 1)):
            (rate if rng.random() < 0.5 else dist)[rng.randrange(n)] = bd_number(rng)
    elif kind == "tiny-steps" and n:
        dist = [30.0 + k * 1e-13 for k in range(n)]
    if rng.random() < 0.05 and n:  # curves of different lengths
        dist = dist[:-1]
    return rate, dist


class BD:
    def __init__(self, tmp: Path):
        self.tmp = tmp

    def make(self, rng):
        method = rng.choice(["pchip", "pchip", "cubic", "akima", "linear", ""])
        kind = rng.choice(["rate", "rate", "metric", "x"])
        anchor, test = bd_curve(rng), bd_curve(rng)
        if rng.random() < 0.2:
            test = (list(anchor[0]), [d + rng.choice([0.0, 0.1, 1.0, -1.0, 1e-9]) for d in anchor[1]])
        return f"bd {method} {kind}", {"anchor": anchor, "test": test, "method": method, "kind": kind,
                                        "command": rng.random() < 0.1}

    def run(self, payload):
        import math

        from rdbench.analysis.bd import BDError, LowOverlapWarning, bd

        p = payload[1]
        if p["command"]:
            return self.command(p)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = bd(*p["anchor"], *p["test"], kind=p["kind"], method=p["method"])
            except Exception as exc:
                if named(exc, (BDError,)):
                    outcome = "named"
                else:
                    raise
            else:
                if not math.isfinite(result.value):
                    raise Other(f"BD value {result.value}")
                outcome = "ok"
        undocumented = [w for w in caught if not issubclass(w.category, LowOverlapWarning)]
        if undocumented:
            raise Other(f"undocumented warning {undocumented[0].category.__name__}: {undocumented[0].message}")
        return outcome

    def command(self, p):
        import contextlib

        from rdbench import cli
        from rdbench.bench.store import ResultStore

        folder = Path(tempfile.mkdtemp(dir=self.tmp))
        try:
            with ResultStore(folder) as store:
                for codec, (rate, dist) in (("a", p["anchor"]), ("b", p["test"])):
                    for k, (r, d) in enumerate(zip(rate, dist)):
                        store.append({"dataset": "fuzz", "image": "i.png", "image_sha256": "0" * 64, "width": 8,
                                      "height": 8, "codec": codec, "codec_version": codec + " 1", "quality": k,
                                      "bytes": 1, "bpp": r, "psnr_rgb": d, "psnr_y": d, "psnr_ycbcr": d,
                                      "ms_ssim": 0.9, "ms_ssim_db": d, "status": "ok"})
            method = p["method"] if p["method"] in ("pchip", "cubic", "akima") else "pchip"
            out, err = io.StringIO(), io.StringIO()
            with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                warnings.simplefilter("ignore")
                try:
                    code = cli.main(["bdrate", str(folder), "--anchor", "a", "--method", method])
                except SystemExit as exc:  # argparse
                    code = exc.code
            if code not in (0, 2, 6):  # 6: no BD value could be computed, every row says why (issue 23)
                raise Other(f"rdbench bdrate exited with {code}: {err.getvalue()[-300:]}")
            return "ok" if code == 0 else "named"
        finally:
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()


CLASSES = {"images": Images, "specs": Specs, "toml": Toml, "manifests": Manifests, "results": Results,
           "compressai": CompressAI, "bd": BD}


def input_for(seed: int, target: str, i: int, instance) -> tuple:
    return instance.make(random.Random(f"{seed}:{target}:{i}"))


def save_payload(payload, target: str, name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{target}--{name}.json"
    body = payload[1:]
    record = {"target": target, "what": payload[0],
              "payload": [b.hex() if isinstance(b, bytes) else b for b in body],
              "bytes": [isinstance(b, bytes) for b in body]}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def load_payload(path: Path) -> tuple[str, tuple]:
    record = json.loads(path.read_text())
    body = [bytes.fromhex(b) if is_bytes else b for b, is_bytes in zip(record["payload"], record["bytes"])]
    return record["target"], (record["what"], *body)


# -- the child ------------------------------------------------------------------------------------------
def worker(memory_mb: int) -> None:
    """Read JSON requests on stdin ({target, seed, i} or {target, file}); write one JSON line each."""
    if memory_mb:
        import resource

        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, str(REPO))
    tmp = Path(tempfile.mkdtemp(prefix="rdbench-fuzz-"))
    instances: dict = {}
    # the replies go to a copy of fd 1; fd 1 itself goes to /dev/null, since C libraries print
    # there (LAPACK's "On entry to DLASCL ..." from numpy.polyfit)
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    real_stderr = sys.stderr
    for line in sys.stdin:
        request = json.loads(line)
        target = request["target"]
        if target not in instances:
            (tmp / target).mkdir(exist_ok=True)
            instances[target] = CLASSES[target](tmp / target)
        instance = instances[target]
        if "file" in request:
            payload = load_payload(Path(request["file"]))[1]
        else:
            payload = input_for(request["seed"], target, request["i"], instance)
        t0 = time.perf_counter()
        sys.stderr = io.StringIO()  # the store's notes on repaired files, Pillow's warnings
        try:
            outcome, detail = instance.run(payload), ""
        except BaseException as exc:  # noqa: B036  (what this exists to find)
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
            outcome, detail = "other", f"{type(exc).__name__}: {exc}"[:300] + where
        finally:
            sys.stderr = real_stderr
        replies.write(json.dumps({"outcome": outcome, "what": payload[0], "detail": detail,
                                  "seconds": time.perf_counter() - t0}) + "\n")
        replies.flush()


class Child:
    """The child that runs the inputs; restarted after a crash or a hang."""

    def __init__(self, memory_mb: int):
        self.proc = None
        self.memory_mb = memory_mb

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", "--memory-mb", str(self.memory_mb)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        line = self._read_line(120)
        if line is None or not json.loads(line).get("ready"):
            raise RuntimeError("the fuzz worker did not start")

    def _read_line(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self.proc.stdout.readline() or None

    def run(self, request: dict, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        t0 = time.perf_counter()
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._read_line(timeout)
        if line is not None:
            return json.loads(line)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            return {"outcome": "hang", "what": "", "detail": f"no result after {timeout:g} s",
                    "seconds": time.perf_counter() - t0}
        code = self.proc.wait()
        self.proc = None
        name = signal.Signals(-code).name if code < 0 else f"exit status {code}"
        return {"outcome": "crash", "what": "", "detail": f"child died: {name}", "seconds": time.perf_counter() - t0}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
            self.proc = None


_PARENT: dict = {}


def parent_instance(name: str):
    """A target in this (the parent) process, to remake an input that failed."""
    if name not in _PARENT:
        _PARENT[name] = CLASSES[name](Path(tempfile.mkdtemp(prefix=f"rdbench-fuzz-{name}-")))
    return _PARENT[name]


# -- the campaign ----------------------------------------------------------------------------------------
def campaign(args) -> dict:
    chosen = list(TARGETS) if "all" in args.target else args.target
    report = {"command": " ".join(["python", *sys.argv]), "seed": args.seed, "timeout_s": args.timeout,
              "memory_mb": args.memory_mb, "targets": {}}
    save = Path(args.save)
    for name in chosen:
        child = Child(args.memory_mb)  # a fresh child per target
        counts, worst, failures = Counter(), 0.0, []
        t0 = time.perf_counter()
        indices = [args.only] if args.only is not None else range(args.examples)
        try:
            for i in indices:
                result = child.run({"target": name, "seed": args.seed, "i": i}, args.timeout)
                counts[result["outcome"]] += 1
                worst = max(worst, result["seconds"])
                if result["outcome"] in ("other", "crash", "hang"):
                    failures.append({"input": i, **result})
                    if len(failures) <= 5 or args.only is not None:
                        print(f"  {name} input {i}: {result['outcome']}: {result['what']}: {result['detail']}", flush=True)
                    if args.save_failures:  # the input itself, remade here (the child may be dead)
                        save_payload(input_for(args.seed, name, i, parent_instance(name)), name, f"seed{args.seed}-{i}", save)
                if args.only is not None:
                    print(json.dumps({"input": i, **result}))
                    if args.keep:
                        path = save_payload(input_for(args.seed, name, i, parent_instance(name)), name,
                                            f"seed{args.seed}-{i}", REGRESSIONS)
                        print(f"kept as {path}")
        finally:
            child.close()
        seconds = time.perf_counter() - t0
        row = {"inputs": len(indices), **{o: counts[o] for o in OUTCOMES}, "seconds": round(seconds, 1),
               "slowest_input_s": round(worst, 3), "failures": failures[:50]}
        report["targets"][name] = row
        print(f"{name:<11} {row['inputs']:>6} inputs  ok {row['ok']}  named {row['named']}  crashes {row['crash']}  "
              f"hangs {row['hang']}  other errors {row['other']}  {seconds:.1f} s (slowest {worst:.2f} s)", flush=True)
    totals = {o: sum(t[o] for t in report["targets"].values()) for o in ("inputs", *OUTCOMES)}
    report["totals"] = totals
    return report


def replay(args) -> dict:
    """Run every saved input (TARGET--name.json) in a folder through its target, in the child."""
    child = Child(args.memory_mb)
    results = {}
    try:
        for path in sorted(Path(args.replay).glob("*.json")):
            target = json.loads(path.read_text())["target"]
            results[path.name] = child.run({"target": target, "file": str(path)}, args.timeout)
            r = results[path.name]
            print(f"{path.name:<50} {r['outcome']:<6} {r['detail'][:100]}")
    finally:
        child.close()
    return {"replay": str(args.replay), "results": results}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", action="append", choices=[*TARGETS, "all"], help="a target, or all (repeatable)")
    ap.add_argument("--examples", type=int, default=300, help="inputs per target")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", type=int, help="run input ONLY of each target, printing its outcome")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds an input may take before it counts as a hang")
    ap.add_argument("--memory-mb", type=int, default=3072, help="the child's address-space limit (0: none)")
    ap.add_argument("--save", default=str(HERE / "failures"), help="where failing inputs are described")
    ap.add_argument("--save-failures", action="store_true", help="write each failing input to --save (replayable)")
    ap.add_argument("--keep", action="store_true", help="with --only: add that input to the regression set")
    ap.add_argument("--replay", help="run the saved inputs in this folder instead")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.memory_mb)
        return 0
    sys.path.insert(0, str(REPO))
    if not args.replay and not args.target:
        ap.error("--target NAME (or all) is needed")
    from fuzz_learned import finish  # the same report and exit status as the learned-bitstream driver

    return finish(args, replay(args) if args.replay else campaign(args))


if __name__ == "__main__":
    sys.exit(main())
