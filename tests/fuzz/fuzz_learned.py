"""Fuzz target: learned bitstream decode, every variant (the golden checkpoints: factorized,
hyperprior, mean-scale, context, joint; K = 1 and 2); and the model container of the
`compressai:` / `model:` codecs (rdbench/learned/container.py) around CompressAI's own strings:
targets `container-factorized` and `container-mean-scale`, seeded untrained CompressAI models
(bmshj2018-factorized, mbt2018-mean at N = M = 16) made in a temporary folder at start.

Each input is a mutation of a real stream (tests/golden/streams) that its model's codec decodes
through `rdbench.codecs.load("learned:checkpoint=...").decode`, in a child process, so that a
crash (a signal such as SIGSEGV) or a hang (past --timeout) is caught and counted, and the child
restarted. Each outcome is one of: ok (an image), BitstreamError, CodecError (rdbench's own,
named errors), other (any other exception: a bug), crash, hang. Inputs that end in other, crash
or hang are written to --save (default tests/fuzz/failures/) for the regression set.

Mutations (mutate()): header fields set to edge or random values (checksum resealed, or not),
payload bit flips and byte changes with the checksum resealed, truncations, extensions, random
payloads under a valid header, splices of two streams, random bytes. Input i of a target is a
pure function of (--seed, target, i), so `--only I` replays it.

    python tests/fuzz/fuzz_learned.py --inputs 1250 --seed 2026  # the long campaign: 10,000 inputs over the 8 models
    python tests/fuzz/fuzz_learned.py --inputs 16 --json out.json  # the CI budget (tests/test_fuzz_learned.py)
    python tests/fuzz/fuzz_learned.py --replay tests/fuzz/regressions  # decode saved inputs

The codecs run with max_pixels=2^20 (MAX_PIXELS). A header may claim up to that many pixels
over a few bytes of payload, and the decoder then does the work of a real image that size: a
context model decodes wavefront by wavefront, (k//2 + 1) * rows + columns of them, so a tall
1-megapixel image costs several seconds even for these tiny models. The limit, not the default
2^28, keeps every input within seconds; that is what max_pixels is for.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GOLDEN = REPO / "tests" / "golden"
MAX_PIXELS = 2**20
OUTCOMES = ("ok", "BitstreamError", "ContainerError", "CodecError", "other", "crash", "hang")
# the container targets: a smaller pixel limit, since a header may declare an image whose latent
# grids CompressAI's coder then decodes symbol by symbol (seconds per megapixel for these models)
CONTAINER_MAX_PIXELS = 2**16
CONTAINER_ARCHS = {"container-factorized": "bmshj2018-factorized", "container-mean-scale": "mbt2018-mean"}
# container fields: (name, offset, struct format) in container version 1
CONTAINER_FIELDS = (("magic", 0, "4s"), ("version", 4, "B"), ("model", 5, "8s"), ("height", 13, "I"), ("width", 17, "I"),
                    ("quality", 21, "d"), ("shape_depth", 29, "B"), ("shape_count", 30, "B"), ("shape_0", 31, "I"),
                    ("shape_1", 35, "I"), ("groups", 39, "B"), ("group_count", 40, "H"), ("length_0", 42, "I"))

# header fields: (name, offset, struct format) in format version 2 (rdbench/learned/bitstream.py)
FIELDS = (("magic", 0, "4s"), ("version", 4, "B"), ("contract", 5, "4s"), ("model", 9, "8s"),
          ("height", 17, "I"), ("width", 21, "I"), ("rate", 25, "B"), ("symbol_range", 26, "H"),
          ("z_length", 28, "I"), ("crc", 32, "I"))
HEADER = 36


def targets() -> dict[str, dict]:
    """{checkpoint stem: {"spec": codec spec, "streams": [bytes, ...]}} from the golden vectors,
    and the container targets."""
    out: dict[str, dict] = {}
    for v in json.loads((GOLDEN / "vectors.json").read_text())["vectors"]:
        stem = Path(v["checkpoint"]).stem
        spec = f"learned:checkpoint={GOLDEN / v['checkpoint']},max_pixels={MAX_PIXELS}"
        entry = out.setdefault(stem, {"spec": spec, "streams": []})
        entry["streams"].append((GOLDEN / v["stream"]).read_bytes())
    return {**out, **container_targets()}


_container_targets: dict = {}


def container_targets() -> dict[str, dict]:
    """Seeded untrained CompressAI models saved in a temporary folder, and their containers of
    three small deterministic images (sizes that need padding)."""
    if _container_targets:
        return _container_targets
    import tempfile

    import numpy as np
    import torch
    from compressai.models import FactorizedPrior, MeanScaleHyperprior

    sys.path.insert(0, str(REPO))
    from rdbench.codecs import load

    folder = Path(tempfile.mkdtemp(prefix="rdbench-fuzz-"))
    for name, arch in CONTAINER_ARCHS.items():
        torch.manual_seed(0)
        net = (FactorizedPrior if arch == "bmshj2018-factorized" else MeanScaleHyperprior)(16, 16)
        path = folder / f"{name}.pth.tar"
        torch.save({"state_dict": net.state_dict()}, path)
        spec = f"compressai:arch={arch},checkpoint={path},max_pixels={CONTAINER_MAX_PIXELS},threads=1"
        codec = load(spec)
        rng = np.random.default_rng(0)
        streams = [codec.encode(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), 1) for h, w in ((40, 72), (64, 64), (97, 33))]
        _container_targets[name] = {"spec": spec, "streams": streams}
    return _container_targets


# -- mutations ---------------------------------------------------------------------------------
def reseal(data: bytes) -> bytes:
    from rdbench.learned.bitstream import reseal as _reseal

    return _reseal(data)


def _edge_values(fmt: str, current: int, rng: random.Random) -> int:
    bits = struct.calcsize(fmt) * 8
    top = 2**bits - 1
    picks = [0, 1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 65, 127, 128, 129, 255, 256, top, top - 1, top // 2, top // 2 + 1,
             current + 1, current - 1, current * 2, current // 2, current + 4, current - 4, rng.randrange(top + 1),
             rng.randrange(min(top, 4096) + 1), 1 << rng.randrange(bits)]
    if bits == 32:
        picks += [2**11, 2**16, 2**20, 2**21 + 1, 4095, 65535, 65536, 1 << 31]
    return min(max(rng.choice(picks), 0), top)


def mutate_container(streams: list[bytes], rng: random.Random) -> tuple[str, bytes]:
    """(what was done, the mutated container): fields, payload flips and bytes (checksum resealed
    or not), truncations, extensions, splices, random bytes."""
    from rdbench.learned.container import reseal as reseal_container

    data = bytearray(rng.choice(streams))
    kind = rng.choices(["field", "flip", "bytes", "truncate", "extend", "splice", "random"],
                       weights=[40, 20, 10, 12, 8, 5, 5])[0]
    if kind == "field":
        name, offset, fmt = rng.choice(CONTAINER_FIELDS)
        if fmt.endswith("s"):
            size = struct.calcsize(fmt)
            data[offset: offset + size] = rng.randbytes(size) if rng.random() < 0.7 else bytes(size)
        elif fmt == "d":
            struct.pack_into("<d", data, offset, rng.choice([0.0, -1.0, 1.0, 2.5, 10.0, 1e308, float("nan"), float("inf")]))
        else:
            (current,) = struct.unpack_from("<" + fmt, data, offset)
            struct.pack_into("<" + fmt, data, offset, _edge_values(fmt, current, rng))
        out = bytes(data)
        return f"field {name}", reseal_container(out) if rng.random() < 0.9 else out
    if kind in ("flip", "bytes"):
        start = 46  # past the header, the shape and the first lengths: the strings
        for _ in range(rng.choice([1, 1, 2, 3, 8])):
            if len(data) > start + 4:
                i = rng.randrange(start, len(data) - 4)
                data[i] = data[i] ^ (1 << rng.randrange(8)) if kind == "flip" else rng.randrange(256)
        return f"payload {kind}", reseal_container(bytes(data))
    if kind == "truncate":
        out = bytes(data[: rng.randrange(0, len(data))])
        return "truncated", reseal_container(out) if rng.random() < 0.5 else out
    if kind == "extend":
        out = bytes(data) + rng.randbytes(rng.choice([1, 3, 4, 8, 64]))
        return "extended", reseal_container(out) if rng.random() < 0.8 else out
    if kind == "splice":
        other = rng.choice(streams)
        cut = rng.randrange(5, max(6, min(len(data), len(other))))
        return "splice", reseal_container(bytes(data[:cut]) + other[cut:])
    out = rng.randbytes(rng.choice([0, 1, 5, 36, 37, 64, 300]))
    if rng.random() < 0.5 and len(out) >= 5:
        out = b"RDBC\x01" + out[5:]
    return "random bytes", reseal_container(out) if rng.random() < 0.5 else out


def mutate(streams: list[bytes], rng: random.Random) -> tuple[str, bytes]:
    """(what was done, the mutated input)."""
    if streams[0][:4] == b"RDBC":
        return mutate_container(streams, rng)
    data = bytearray(rng.choice(streams))
    kind = rng.choices(["field", "flip", "bytes", "truncate", "extend", "random-payload", "splice", "random"],
                       weights=[30, 20, 10, 12, 8, 10, 5, 5])[0]
    if kind == "field":
        name, offset, fmt = rng.choice(FIELDS[:-1] + (("height+width", 17, "II"),))
        if name == "height+width":  # a size within the fuzz limit, so decoding really runs
            h = rng.randrange(1, 2049)
            w = rng.randrange(1, max(2, MAX_PIXELS // h + 1))
            struct.pack_into("<II", data, offset, h, w)
        elif fmt.endswith("s"):
            size = struct.calcsize(fmt)
            data[offset : offset + size] = rng.randbytes(size) if rng.random() < 0.7 else bytes(size)
        else:
            (current,) = struct.unpack_from("<" + fmt, data, offset)
            struct.pack_into("<" + fmt, data, offset, _edge_values(fmt, current, rng))
        out = bytes(data)
        return f"field {name}", reseal(out) if rng.random() < 0.9 else out
    if kind == "flip":
        for _ in range(rng.choice([1, 1, 1, 2, 3, 8, 32])):
            if len(data) > HEADER:
                data[rng.randrange(HEADER, len(data))] ^= 1 << rng.randrange(8)
        return "payload bit flips", reseal(bytes(data))
    if kind == "bytes":
        for _ in range(rng.choice([1, 2, 4, 16])):
            if len(data) > HEADER:
                data[rng.randrange(HEADER, len(data))] = rng.randrange(256)
        return "payload bytes", reseal(bytes(data))
    if kind == "truncate":
        cut = rng.randrange(0, len(data))
        out = bytes(data[:cut])
        if rng.random() < 0.5:
            out = reseal(out)
        return "truncated", out
    if kind == "extend":
        extra = rng.randbytes(rng.choice([1, 3, 4, 8, 64, 1024]))
        out = bytes(data) + extra
        return "extended", reseal(out) if rng.random() < 0.8 else out
    if kind == "random-payload":
        n = rng.choice([0, 4, 8, 16, 64, 256, 4096]) + rng.choice([0, 0, 0, 1, 2, 3])
        payload = rng.randbytes(n) if rng.random() < 0.8 else bytes([rng.randrange(256)]) * n
        z_len = rng.choice([0, rng.randrange(n + 1) & ~3, struct.unpack_from("<I", data, 28)[0]])
        struct.pack_into("<I", data, 28, min(z_len, n) if rng.random() < 0.9 else z_len)
        return "random payload", reseal(bytes(data[:HEADER]) + payload)
    if kind == "splice":
        other = rng.choice(streams)
        cut = rng.randrange(HEADER, max(HEADER + 1, min(len(data), len(other))))
        return "splice", reseal(bytes(data[:cut]) + other[cut:])
    n = rng.choice([0, 1, 5, 35, 36, 37, 64, 300])
    out = rng.randbytes(n)
    if rng.random() < 0.5 and n >= 5:
        out = b"RDBL\x02" + out[5:]
    return "random bytes", reseal(out) if rng.random() < 0.5 else out


def input_for(seed: int, target: str, i: int, streams: list[bytes]) -> tuple[str, bytes]:
    return mutate(streams, random.Random(f"{seed}:{target}:{i}"))


# -- the child: decodes what it is sent ---------------------------------------------------------
def worker() -> None:
    """Read (target, checkpoint, length, bytes) records on stdin; write one JSON line per input."""
    sys.path.insert(0, str(REPO))
    from rdbench.codecs import load
    from rdbench.errors import CodecError
    from rdbench.learned.bitstream import BitstreamError
    from rdbench.learned.container import ContainerError

    codecs = {}
    stdin, stdout = sys.stdin.buffer, sys.stdout
    stdout.write(json.dumps({"ready": True}) + "\n")
    stdout.flush()
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        meta = json.loads(stdin.read(struct.unpack("<I", head)[0]))
        data = stdin.read(meta["length"])
        if meta["spec"] not in codecs:
            codecs[meta["spec"]] = load(meta["spec"])
        t0 = time.perf_counter()
        try:
            image = codecs[meta["spec"]].decode(data)
            outcome, detail = "ok", f"{image.shape}"
        except BitstreamError as exc:
            outcome, detail = "BitstreamError", str(exc)
        except ContainerError as exc:
            outcome, detail = "ContainerError", str(exc)
        except CodecError as exc:
            outcome, detail = "CodecError", f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # noqa: B036  (what this target exists to find)
            outcome, detail = "other", f"{type(exc).__name__}: {exc}"
        stdout.write(json.dumps({"outcome": outcome, "detail": detail[:300], "seconds": time.perf_counter() - t0}) + "\n")
        stdout.flush()


class Child:
    """The decoding child process; restarted after a crash or a hang."""

    def __init__(self):
        self.proc = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "RUST_BACKTRACE": "0"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        line = self._read_line(300)
        if line is None or not json.loads(line).get("ready"):
            raise RuntimeError("the fuzz worker did not start")

    def _read_line(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return line or None

    def run(self, spec: str, data: bytes, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        meta = json.dumps({"spec": spec, "length": len(data)}).encode()
        t0 = time.perf_counter()
        try:
            self.proc.stdin.write(struct.pack("<I", len(meta)) + meta + data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._read_line(timeout)
        if line is not None:
            return json.loads(line)
        if self.proc.poll() is None:
            try:  # its output closed: it is dying, not hanging
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:  # still running: a hang
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            return {"outcome": "hang", "detail": f"no result after {timeout:g} s", "seconds": time.perf_counter() - t0}
        code = self.proc.wait()
        self.proc = None
        name = signal.Signals(-code).name if code < 0 else f"exit status {code}"
        return {"outcome": "crash", "detail": f"child died: {name}", "seconds": time.perf_counter() - t0}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


# -- the campaign -----------------------------------------------------------------------------------
def campaign(args) -> dict:
    all_targets = targets()
    chosen = args.target or sorted(all_targets)
    child = Child()
    report = {"command": " ".join(["python", *sys.argv]), "seed": args.seed, "max_pixels": MAX_PIXELS,
              "timeout_s": args.timeout, "targets": {}}
    save = Path(args.save)
    try:
        for name in chosen:
            entry = all_targets[name]
            counts, kinds, worst = Counter(), Counter(), 0.0
            failures = []
            t0 = time.perf_counter()
            indices = [args.only] if args.only is not None else range(args.inputs)
            for i in indices:
                what, data = input_for(args.seed, name, i, entry["streams"])
                result = child.run(entry["spec"], data, args.timeout)
                counts[result["outcome"]] += 1
                kinds[f"{what}: {result['outcome']}"] += 1
                worst = max(worst, result["seconds"])
                if result["outcome"] in ("other", "crash", "hang"):
                    save.mkdir(parents=True, exist_ok=True)
                    path = save / f"{name}--seed{args.seed}-{i}.{'rdbc' if name in CONTAINER_ARCHS else 'rdbl'}"
                    path.write_bytes(data)
                    failures.append({"input": i, "mutation": what, **result, "saved": str(path)})
                if args.only is not None:
                    print(json.dumps({"input": i, "mutation": what, **result}))
            seconds = time.perf_counter() - t0
            report["targets"][name] = {"inputs": len(indices), **{o: counts[o] for o in OUTCOMES},
                                       "seconds": round(seconds, 1), "slowest_input_s": round(worst, 3),
                                       "by_mutation": dict(sorted(kinds.items())), "failures": failures}
            row = report["targets"][name]
            print(f"{name:<16} {row['inputs']:>6} inputs  " + "  ".join(f"{o} {row[o]}" for o in OUTCOMES)
                  + f"  {seconds:.1f} s (slowest {worst:.2f} s)", flush=True)
    finally:
        child.close()
    totals = {o: sum(t[o] for t in report["targets"].values()) for o in ("inputs", *OUTCOMES)}
    report["totals"] = totals
    print("total            " + f"{totals['inputs']:>6} inputs  " + "  ".join(f"{o} {totals[o]}" for o in OUTCOMES))
    return report


def replay(args) -> dict:
    """Decode every saved input in a folder (named TARGET--anything.rdbl) in the child."""
    all_targets = targets()
    child = Child()
    results = {}
    try:
        for path in sorted([*Path(args.replay).glob("*.rdbl"), *Path(args.replay).glob("*.rdbc")]):
            target = path.name.split("--", 1)[0]
            results[path.name] = child.run(all_targets[target]["spec"], path.read_bytes(), args.timeout)
            print(f"{path.name:<60} {results[path.name]['outcome']:<15} {results[path.name]['detail'][:100]}")
    finally:
        child.close()
    return {"replay": str(args.replay), "results": results}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=1250, help="inputs per target (model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", action="append", help="a golden checkpoint stem (default: all)")
    ap.add_argument("--only", type=int, help="replay input ONLY of each target, printing its outcome")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds an input may take before it counts as a hang")
    ap.add_argument("--save", default=str(HERE / "failures"), help="where failing inputs are written")
    ap.add_argument("--replay", help="decode the saved inputs in this folder instead")
    ap.add_argument("--json", help="write the report here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker()
        return 0
    sys.path.insert(0, str(REPO))
    return finish(args, replay(args) if args.replay else campaign(args))


def finish(args, report: dict) -> int:
    """Write the report where --json says; exit status 1 when any input crashed, hung or raised an
    error that is not rdbench's own (shared by the fuzz drivers of this folder)."""
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.replay:
        bad = [r for r in report["results"].values() if r["outcome"] in ("other", "crash", "hang")]
    else:
        bad = [t for t in report["targets"].values() if t["other"] or t["crash"] or t["hang"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
