"""Distortion metrics: one registry (`registry.py`) and their implementations.

- `registry.py`: every metric's name, columns, direction, unit, library and implementation
  identity; standard library only, read by `bench/columns.py` and the command line.
- `classic.py`: the default set (PSNR RGB, PSNR Y, PSNR YCbCr, MS-SSIM), exact in float64,
  computed in bands so that memory does not grow with the image beyond its pooled scales.
- `measuring.py`: `Reference(original, metrics)`, which measures reconstructions of one original.

Importing this package loads neither NumPy nor OpenCV; the names of the implementations
(`Reference`, `psnr_rgb`, `ms_ssim`, ...) are imported on first use.
"""

from __future__ import annotations

from rdbench.conventions import MS_SSIM_MIN_SIDE
from rdbench.metrics.registry import DEFAULT, REGISTRY, Metric, MetricColumn, UnknownMetric, get, parse

_LAZY = {
    "Reference": "rdbench.metrics.measuring",
    **dict.fromkeys(("psnr_rgb", "psnr_y", "psnr_ycbcr", "psnr_ycbcr_planes", "ms_ssim", "ms_ssim_to_db",
                     "mse_to_psnr", "YCBCR_BT709", "YCBCR_WEIGHTS", "LUMA_BT601"), "rdbench.metrics.classic"),
}

__all__ = ["DEFAULT", "MS_SSIM_MIN_SIDE", "REGISTRY", "Metric", "MetricColumn", "UnknownMetric", "get", "parse",
           *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rdbench.metrics' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
