"""PSNR-HVS and PSNR-HVS-M through the `psnr_hvsm` package (PyPI, MIT; its NumPy backend).

The reference (Ponomarenko's psnrhvsm.m, and TID2013's published values, which psnr_hvsm's
authors cross-check against) works on 8-bit BT.601 luma, rounded to code values, normalised to
[0, 1], over whole 8 x 8 blocks: rdbench passes exactly that (`bt601ycbcr` of the package,
precision '8-bit'), cropping an image whose side is not a multiple of 8 to whole blocks (the
reference's loops stop at the last whole block). Identical images give inf, as rdbench's other
PSNRs (the package's own convention is 100).
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np


def _package():
    # psnr_hvsm prints to stdout on import when its optional torch backend is incomplete
    with contextlib.redirect_stdout(io.StringIO()):
        from psnr_hvsm.numpy import bt601ycbcr, hvs_hvsm_mse
    return bt601ycbcr, hvs_hvsm_mse


def _psnr(mse: float) -> float:
    return math.inf if mse <= 0 else 10.0 * math.log10(1.0 / mse)


class PsnrHvs:
    def __init__(self, original: np.ndarray, which: str):
        self.which = which  # "psnr_hvs" or "psnr_hvs_m"
        h, w = original.shape[:2]
        self.h, self.w = h - h % 8, w - w % 8
        self.reason = None
        if not (self.h and self.w):
            self.reason = f"{which} needs both sides >= 8 px (8x8 DCT blocks); image is {w}x{h}"
            return
        self._luma, self._mse = _package()
        self.y = self._y(original)

    def _y(self, pixels: np.ndarray) -> np.ndarray:
        return self._luma(np.ascontiguousarray(pixels[: self.h, : self.w]))[0]

    def measure(self, decoded: np.ndarray, scratch: dict) -> dict:
        if self.reason:
            return {self.which: math.nan}
        both = scratch.get("hvs_hvsm_mse")
        if both is None:  # PSNR-HVS and PSNR-HVS-M come from one pass
            with np.errstate(invalid="ignore", divide="ignore"):  # flat blocks: the package masks them itself
                both = scratch["hvs_hvsm_mse"] = tuple(float(m) for m in self._mse(self.y, self._y(decoded)))
        return {self.which: _psnr(both[0] if self.which == "psnr_hvs" else both[1])}


def prepare_psnr_hvs(original: np.ndarray) -> PsnrHvs:
    return PsnrHvs(original, "psnr_hvs")


def prepare_psnr_hvs_m(original: np.ndarray) -> PsnrHvs:
    return PsnrHvs(original, "psnr_hvs_m")
