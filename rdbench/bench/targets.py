"""Measuring at a target: the quality that reaches a target rate (bpp) or PSNR on each image.

`rdbench run --target-bpp 0.25,0.5` asks, for each image and codec, for the quality whose coded
file is closest to 0.25 bpp, as CompressAI's `find_close` does: a bisection over the codec's
quality scale, keeping the probe closest to the target. How a scale is searched:

- integer scale (a `quality_range` and an integral ladder: JPEG 1..100, BPG/HM QP 0..51, VTM QP
  0..63): bisection over the integers, ending at the two neighbours that bracket the target;
- continuous scale (`continuous_quality = True`: JPEG 2000's target dB or bpp): bisection until
  the bracket is `CONTINUOUS_TOLERANCE` of the range wide, then the closer end;
- discrete ladder (no `quality_range`: a learned codec's models): every point of the ladder.

Either way the chosen quality is the probed one closest to the target, or with `below=True` the
closest that does not exceed it (a rate budget: `bpp<=0.25`). A target out of the codec's reach
gives the quality at the bound, and the row's `target_bound` says which bound and what it reached.

The chosen quality is then measured as an ordinary row (`measure`, timed as every row is), with
`target` naming the search ('bpp=0.25', 'bpp<=0.25', 'psnr_rgb=32'): one row per image, codec
and target, keyed by the target, not by the quality it found. Probes are not timed and not stored.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np

from rdbench.bench.measure import Item, Settings, _loaded, _reference, error_row, measure

# What a target can be: the option, the row's text, the quantity each probe measures.
TARGET_METRICS = {"bpp": "bpp", "psnr": "psnr_rgb"}
CONTINUOUS_TOLERANCE = 1e-3  # of the quality range, for codecs with a continuous scale
_TEXT = re.compile(r"(bpp|psnr_rgb)(<?=)([0-9.eE+-]+)")


@dataclass(frozen=True)
class Target:
    metric: str  # a result column: "bpp" or "psnr_rgb"
    value: float
    below: bool = False  # the closest that does not exceed the value

    @property
    def text(self) -> str:
        return f"{self.metric}{'<=' if self.below else '='}{self.value:g}"


def parse_target(text: str) -> Target:
    """The inverse of `Target.text` ('bpp=0.25', 'bpp<=0.25', 'psnr_rgb=32')."""
    match = _TEXT.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"target {text!r}: expected bpp=V, bpp<=V, psnr_rgb=V or psnr_rgb<=V")
    return Target(match.group(1), float(match.group(3)), match.group(2) == "<=")


def targets_from_options(bpp: list[float], psnr: list[float], below: bool = False) -> list[Target]:
    """The targets of `--target-bpp` / `--target-psnr`, checked: positive, finite, each once."""
    found = []
    for option, metric, values in (("--target-bpp", "bpp", bpp), ("--target-psnr", "psnr_rgb", psnr)):
        for v in values:
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{option} {v!r}: expected a positive number")
            if metric == "bpp" and v > 48:
                raise ValueError(f"{option} {v:g}: more than 48 bpp (twice 8-bit RGB) is no target")
            if metric == "psnr_rgb" and v > 100:
                raise ValueError(f"{option} {v:g} dB: above 100 dB no lossy 8-bit codec can be asked for")
            found.append(Target(metric, float(v), below))
    return list(dict.fromkeys(found))


def quality_scale(codec) -> tuple[str, tuple]:
    """("integer", (lo, hi)), ("continuous", (lo, hi)) or ("discrete", ladder): how `codec`'s quality is searched."""
    if codec.quality_range is None:
        return "discrete", tuple(sorted(codec.qualities))
    lo, hi = codec.quality_range
    if getattr(codec, "continuous_quality", False):
        return "continuous", (float(lo), float(hi))
    if all(float(q).is_integer() for q in codec.qualities):
        return "integer", (math.ceil(lo), math.floor(hi))
    return "continuous", (float(lo), float(hi))


class _Probe:
    """The metric at each quality on one image, each quality coded once."""

    def __init__(self, codec, original: np.ndarray, metric: str):
        self.codec, self.original, self.metric = codec, original, metric
        self.values: dict = {}

    def __call__(self, quality) -> float:
        quality = codec_quality(quality)
        if quality not in self.values:
            data = self.codec.encode(self.original, quality)
            if self.metric == "bpp":
                value = 8.0 * len(data) / (self.original.shape[0] * self.original.shape[1])
            else:
                from rdbench.metrics import psnr_rgb

                value = float(psnr_rgb(self.original, self.codec.decode(data)))
            self.values[quality] = value
        return self.values[quality]


def codec_quality(q):
    from rdbench.codecs.base import canonical_quality

    return canonical_quality(q)


def _choose(probe: _Probe, target: Target, candidates) -> object:
    """The probed quality closest to the target (from below: the closest not above it; when none
    is, the one with the lowest value)."""
    values = {q: probe.values[codec_quality(q)] for q in candidates}
    if target.below:
        under = {q: v for q, v in values.items() if v <= target.value}
        if under:
            return max(under, key=lambda q: (under[q], -abs(float(q))))
        return min(values, key=values.get)
    return min(values, key=lambda q: (abs(values[q] - target.value), values[q]))


def search(codec, original: np.ndarray, target: Target) -> tuple[object, str, dict]:
    """(quality, bound, probes): the quality of `codec` that reaches `target` on `original`.

    `bound` is empty when the target lies within what the codec reaches on this image, else it
    names the bound of the quality scale that was hit and the value reached there."""
    probe = _Probe(codec, original, target.metric)
    kind, scale = quality_scale(codec)
    if kind == "discrete":
        for q in scale:
            probe(q)
        ends = (scale[0], scale[-1])
        candidates = scale
    else:
        lo, hi = scale
        ends = (lo, hi)
        v_lo, v_hi = probe(lo), probe(hi)
        rising = v_hi >= v_lo  # the metric grows with the quality (JPEG) or falls (a QP)
        a, b = lo, hi  # invariant: the target lies between probe(a) and probe(b)
        if min(v_lo, v_hi) <= target.value <= max(v_lo, v_hi):
            while (b - a > 1) if kind == "integer" else (b - a > CONTINUOUS_TOLERANCE * (hi - lo)):
                mid = (a + b) // 2 if kind == "integer" else (a + b) / 2
                if (probe(mid) < target.value) == rising:
                    a = mid
                else:
                    b = mid
        candidates = sorted({*probe.values})
        if kind == "continuous":  # the bracket's ends and the best of the earlier probes
            candidates = sorted({codec_quality(a), codec_quality(b), *probe.values})
    quality = _choose(probe, target, candidates)
    reached = [probe.values[codec_quality(e)] for e in ends]
    bound = ""
    lowest, highest = min(reached), max(reached)
    name = target.metric
    if target.value < lowest:
        end = ends[reached.index(lowest)]
        bound = (f"below reach: {name} {target.value:g} < {lowest:.4g}, the least {codec.spec.text} reaches "
                 f"(at its bound {codec.quality_name} {end:g})")
    elif target.value > highest:
        end = ends[reached.index(highest)]
        bound = (f"above reach: {name} {target.value:g} > {highest:.4g}, the most {codec.spec.text} reaches "
                 f"(at its bound {codec.quality_name} {end:g})")
    return codec_quality(quality), bound, dict(probe.values)


@dataclass(frozen=True)
class TargetItem:
    """One image x codec x target; the quality is what `measure_target` finds."""

    item: Item  # its quality is None until found
    target: Target


def target_error_row(job: TargetItem, message: str) -> dict:
    row = error_row(job.item, message)
    row["target"] = job.target.text
    return row


def measure_target(job: TargetItem, settings: Settings) -> dict:
    """Search the quality for the job's target, then measure it as an ordinary row. Never raises."""
    try:
        codec = _loaded(job.item.codec)
        codec.configure(timeout_s=settings.timeout_s)
        original = _reference(job.item.image).pixels
        quality, bound, _ = search(codec, original, job.target)
    except Exception as exc:  # a codec's failure is data, as in measure()
        return target_error_row(job, f"target search: {type(exc).__name__}: {exc}")
    row = measure(replace(job.item, quality=quality), settings)
    row["target"] = job.target.text
    row["target_bound"] = bound
    return row
