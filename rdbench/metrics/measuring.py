"""Measuring reconstructions of one original with a chosen set of metrics."""

from __future__ import annotations

import math

import numpy as np

from rdbench.metrics.registry import DEFAULT, Metric, format_versions, parse_versions


def merge_versions(stored: str, added: str) -> str:
    """A row's `metric_versions` after metrics were added to it (an added metric's entry wins)."""
    return format_versions({**parse_versions(stored), **parse_versions(added)})


class Reference:
    """An original image, and each chosen metric prepared on it (statistics reused by every
    reconstruction). A metric that cannot run on this image (too small, its library or weights
    missing) gives NaN in its columns, and the reason is in `reasons` (for the row's note)."""

    def __init__(self, pixels: np.ndarray, metrics: tuple[Metric, ...] = DEFAULT):
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected uint8 H x W x 3, got {pixels.dtype} {pixels.shape}")
        self.pixels = pixels
        self.metrics = tuple(metrics)
        self._prepared: dict[str, object] = {}
        self._unavailable: dict[str, str] = {}
        self.failures: list[str] = []  # metrics that failed on the last reconstruction measured, and why
        for metric in self.metrics:
            problem = metric.missing()
            if problem is None:
                try:
                    self._prepared[metric.name] = metric.load()(pixels)
                except Exception as exc:  # weights absent, a binary broken: the metric's reason, not a crash
                    problem = f"{metric.name}: {type(exc).__name__}: {exc}"
            if problem:
                self._unavailable[metric.name] = problem

    @property
    def reasons(self) -> list[str]:
        """Why some columns are NaN on this image, one line per metric."""
        found = [getattr(p, "reason", None) for p in self._prepared.values()]
        return [r for r in found if r] + list(self._unavailable.values())

    def versions(self) -> str:
        """The `metric_versions` cell of a row measured here: each metric that ran, with its implementation."""
        return format_versions({m.name: m.identity() for m in self.metrics if m.name in self._prepared})

    @property
    def ms_ssim_reason(self) -> str | None:
        prepared = self._prepared.get("ms_ssim")
        return getattr(prepared, "reason", None)

    def ms_ssim(self, decoded: np.ndarray) -> float:
        from rdbench.metrics.classic import MsSsim

        prepared = self._prepared.get("ms_ssim") or MsSsim(self.pixels)
        return prepared.value(decoded)

    def measure(self, decoded: np.ndarray) -> dict:
        """Every column of the chosen metrics for one reconstruction."""
        if decoded.shape != self.pixels.shape or decoded.dtype != np.uint8:
            raise ValueError(
                f"decoded image is {decoded.dtype} {decoded.shape}, original is uint8 {self.pixels.shape}"
            )
        scratch: dict = {}  # what several metrics of this reconstruction share (the PSNRs' moments)
        row = {}
        self.failures = []
        for metric in self.metrics:
            prepared = self._prepared.get(metric.name)
            row.update(dict.fromkeys(metric.column_names, math.nan))
            if prepared is None:
                continue
            try:
                row.update(prepared.measure(decoded, scratch))
            except Exception as exc:  # one metric's failure leaves its columns NaN, not the item failed
                self.failures.append(f"{metric.name} failed: {type(exc).__name__}: {exc}")
        return row
