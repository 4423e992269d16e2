"""`rdbench run --check-decode`: decode every learned stream a second time, elsewhere.

CompressAI computes its entropy parameters and synthesis in floating point, and the last bits of
those computations can change with the thread count, the CPU's kernels, or a GPU (CompressAI
issues #279 and #309): a stream can decode to other pixels, or fail to decode, where it was not
made. Each measuring worker therefore keeps one helper process (started on first use, ended when
the worker's stdin closes) that decodes the worker's streams with ANOTHER torch thread count
(1 when the worker uses several, else 2) and on the CPU (when the worker codes on a GPU), and the
row's `decode_check` column says what it found:

    identical                          the same pixels
    mismatch: P pixels differ (max D)  another decode, P pixel values off by up to D
    error: ...                         the helper could not decode it at all

rdbench's own family (`learned:`, exact integer entropy parameters) promises `identical` by
construction; the check shows it. The helper's work is outside the timed spans.

Protocol on the helper's stdin/stdout: 4-byte little-endian lengths, then pickled
(spec text, stream bytes) in, (pixels bytes and shape, or an error text) out.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys

import numpy as np

from rdbench.codecs.base import Codec, Spec, parse_spec

_LEN = struct.Struct("<I")
IDENTICAL = "identical"


def check_spec(codec: Codec) -> str:
    """The codec's spec as the helper loads it: another thread count, on the CPU."""
    import torch

    spec = codec.spec if isinstance(codec.spec, Spec) else parse_spec(codec.spec)
    here = torch.get_num_threads()
    options = dict(spec.options)
    options["threads"] = "1" if here > 1 else "2"
    if "device" in codec.options:
        options["device"] = "cpu"
    return f"{spec.name}:" + ",".join(f"{k}={v}" for k, v in options.items())


def compare(decoded: np.ndarray, again: np.ndarray) -> str:
    if again.shape != decoded.shape:
        return f"mismatch: decoded to {again.shape}, not {decoded.shape}"
    diff = np.abs(again.astype(np.int16) - decoded.astype(np.int16))
    differ = int(np.count_nonzero(diff))
    return IDENTICAL if not differ else f"mismatch: {differ} pixel values differ (max {int(diff.max())})"


class DecodeChecker:
    """One helper process; `check(codec, data, decoded)` -> the decode_check text."""

    def __init__(self):
        self._proc = None

    def _start(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = subprocess.Popen([sys.executable, "-m", "rdbench.bench.decode_check"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env)

    def check(self, codec: Codec, data: bytes, decoded: np.ndarray) -> str:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        try:
            _send(self._proc.stdin, (check_spec(codec), data))
            answer = _receive(self._proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            self.close()
            return f"error: the decode-check helper died ({type(exc).__name__}: {exc})"
        if isinstance(answer, str):
            return f"error: {answer}"
        pixels, shape = answer
        return compare(decoded, np.frombuffer(pixels, np.uint8).reshape(shape))

    def close(self):
        if self._proc is not None:
            try:
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except Exception:
                self._proc.kill()
            self._proc = None


def _send(stream, value) -> None:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LEN.pack(len(payload)) + payload)
    stream.flush()


def _receive(stream):
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        raise EOFError("no answer")
    (n,) = _LEN.unpack(head)
    body = stream.read(n)
    if len(body) < n:
        raise EOFError("truncated answer")
    return pickle.loads(body)


def _serve() -> None:
    from rdbench.codecs import load

    codecs: dict[str, Codec] = {}
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            spec, data = _receive(stdin)
        except EOFError:
            return
        try:
            codec = codecs.get(spec) or codecs.setdefault(spec, load(spec))
            pixels = codec.decode(data)
            answer = (np.ascontiguousarray(pixels).tobytes(), pixels.shape)
        except Exception as exc:
            answer = f"{type(exc).__name__}: {exc}"
        _send(stdout, answer)


if __name__ == "__main__":
    _serve()
