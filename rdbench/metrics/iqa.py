"""VIF, FSIM, NLPD, IW-SSIM (JPEG AI's metrics) and DISTS, through the libraries that agree best.

Which library computes each, and why (figures in README's metrics table, tests in
tests/test_metric_iqa.py):

- `vif`: VIFp, the pixel-domain VIF of Sheikh & Bovik 2006 (LIVE's `vifp_mscale.m`: 4 scales,
  sigma_n^2 = 2, on 0..255), the variant JPEG AI's common test conditions report as "VIF":
  IQA_pytorch's `VIFs`, the implementation JPEG AI's quality framework runs. It agrees with the
  MATLAB algorithm (written out step by step in float64 in the test) to 3e-5 on the test's three
  Kodak crops but only to 1.04e-3 over all 24 (kodim06 at JPEG quality 10: it works in float32,
  whose variances cancel in flat regions); piq's `vif_p`, in float64, agrees to 8.7e-7 on all 72
  pairs (`benchmarks/iqa_agreement.py --images 24`), not the 0.018 written here before.
- `fsim`: FSIMc (Zhang et al. 2011, chromatic, on RGB): piq's `fsim`, as JPEG AI's framework
  runs it, float64; it equals the authors' MATLAB values published with pyiqa's calibration images to
  their 4 decimals.
- `nlpd`: Laparra et al. 2016 (6-level normalised Laplacian pyramid): IQA_pytorch's `NLPD`, the
  implementation JPEG AI's framework runs (piq has none; pyiqa pulls OpenCV 5 and transformers,
  which conflict with rdbench's pins). It is not the MATLAB reference: on pyiqa's calibration
  images it is off from the published MATLAB values by up to 0.028 (pyiqa's own port by 0.0056).
- `iw_ssim`: Wang & Li 2011: piq's `information_weighted_ssim` (5 scales), float64; it equals
  the MATLAB value (iwssim.m) that piq's authors publish for goldhill to 1e-15. pyiqa has none.
- `dists`: Ding et al. 2020: the authors' `DISTS_pytorch` with its packaged alpha/beta and
  torchvision's VGG16 ImageNet weights, read from rdbench's metric-weights folder (fetched once,
  checksum checked: rdbench/metrics/weights.py), float32, on RGB in [0, 1], full resolution.

Colour: JPEG AI's framework computes VIF, NLPD, IW-SSIM (and MS-SSIM) on the luma plane Y of its
YCbCr conversion, FSIM on RGB; rdbench does the same, with Y = BT.709 full-range luma in [0, 1],
unrounded (the conversion of `psnr_ycbcr`). DISTS is defined on RGB.

Memory: each runs on the whole image in torch (pyramids, phase congruency, VGG features); their
pyramids and global pooling span the image, so they cannot be cut into bands without changing
the value. Measured growth of peak memory per pixel (`benchmarks/metric_memory.py`, a 2-Mpx
image): `BYTES_PER_PIXEL`, from 72 (FSIM, which downsamples first) to ~1,400 (DISTS), against the
default set's ~20-30. Each is given at most `MEMORY_BUDGET` (what issue 22's goal, 60 bytes per
pixel, allows the default set on a 64-Mpx image): above `max_pixels(name)` the metric is NaN with
the reason in `note`, never a worker swapping or killed.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from rdbench.metrics import registry, weights
from rdbench.metrics.classic import YCBCR_BT709

# peak memory per pixel of one measurement, rounded up (benchmarks/metric_memory.py; DISTS with
# random VGG16 weights of the same shapes, as no weights were reachable where it was measured)
BYTES_PER_PIXEL = {"vif": 170, "fsim": 80, "nlpd": 270, "iw_ssim": 1050, "dists": 1400}
MEMORY_BUDGET = 60 * 64_000_000  # bytes: 3.84 GB


def max_pixels(name: str) -> int:
    """The largest image (in pixels) metric `name` is computed on."""
    return MEMORY_BUDGET // BYTES_PER_PIXEL[name]

LUMA_BT709 = tuple(float(w) for w in YCBCR_BT709[0])  # metrics/classic.py's BT.709 luma
# the smallest side each accepts (its pyramid's or window's need; below it the library raises)
MIN_SIDE = {"vif": 41, "fsim": 2, "nlpd": 65, "iw_ssim": 161, "dists": 32}


def _luma(pixels: np.ndarray):
    import torch

    x = pixels.astype(np.float64) / 255.0
    y = LUMA_BT709[0] * x[..., 0] + LUMA_BT709[1] * x[..., 1] + LUMA_BT709[2] * x[..., 2]
    return torch.from_numpy(y)[None, None]


def _rgb(pixels: np.ndarray, dtype=None):
    import torch

    return torch.from_numpy(pixels.astype(dtype or np.float64) / 255.0).permute(2, 0, 1)[None]


@functools.cache  # one per worker process
def _vif_model():
    from IQA_pytorch import VIFs

    return VIFs(channels=1).eval()


def _vif(x, y) -> float:
    # float32: the package builds its Gaussian windows in float32 and refuses float64 input
    return _vif_model()(y.float(), x.float(), as_loss=False).item()  # its order: (distorted, reference)


def _fsim(x, y) -> float:
    import piq

    return piq.fsim(y, x, data_range=1.0, chromatic=True).item()  # piq's order: (distorted, reference)


def _iw_ssim(x, y) -> float:
    import piq

    # piq's order is (distorted, reference): the information weights come from the reference, as iwssim.m's
    return piq.information_weighted_ssim(y, x, data_range=1.0).item()


@functools.cache  # one model per worker process
def _nlpd_model():
    from IQA_pytorch import NLPD

    return NLPD(channels=1).double().eval()


def _nlpd(x, y) -> float:
    return _nlpd_model()(y, x, as_loss=False).item()  # IQA_pytorch's order: (distorted, reference)


@contextlib.contextmanager
def _hub_holding(path: Path):
    """torch.hub's folder set, for the `with` block, to a temporary one whose checkpoints/ holds
    `path`: torchvision then loads that checked file instead of downloading its own copy."""
    import torch

    before = torch.hub.get_dir()
    with tempfile.TemporaryDirectory(prefix="rdbench-hub-") as tmp:
        (Path(tmp) / "checkpoints").mkdir()
        os.symlink(path, Path(tmp) / "checkpoints" / path.name)
        torch.hub.set_dir(tmp)
        try:
            yield
        finally:
            torch.hub.set_dir(before)


@functools.cache  # one network per worker process
def _dists_model():
    import importlib.resources
    import warnings

    import torch
    from DISTS_pytorch import DISTS

    file = registry.get("dists").weight_files[0]
    path = weights.cached(file)
    if path is None:
        raise weights.WeightsUnavailable(f"weights {file.name} are not in {weights.weights_dir()} (run `rdbench run "
                                         f"--metric dists` online once, or put the file there)")
    with _hub_holding(path), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation of `pretrained=`, which DISTS_pytorch passes
        model = DISTS(load_weights=False)
    # alpha and beta as the package ships them (its own loader looks for them in sys.prefix)
    packaged = importlib.resources.files("DISTS_pytorch") / "weights.pt"
    with importlib.resources.as_file(packaged) as local:
        trained = torch.load(local, map_location="cpu", weights_only=True)
    model.alpha.data, model.beta.data = trained["alpha"], trained["beta"]
    return model.eval()


def _dists(x, y) -> float:
    return _dists_model()(x, y).item()


# name -> (input conversion, score function)
_HOW = {
    "vif": (_luma, _vif),
    "fsim": (_rgb, _fsim),
    "nlpd": (_luma, _nlpd),
    "iw_ssim": (_luma, _iw_ssim),
    "dists": (lambda p: _rgb(p, np.float32), _dists),
}


class TorchMetric:
    """One of these metrics prepared on an original: its input tensor, kept for every reconstruction."""

    def __init__(self, name: str, original: np.ndarray):
        self.name = name
        self.convert, self.score = _HOW[name]
        h, w = original.shape[:2]
        self.reason = None
        if h * w > max_pixels(name):
            self.reason = (f"{name} is not computed on images above {max_pixels(name) / 1e6:.1f} Mpx (it takes "
                           f"~{BYTES_PER_PIXEL[name]} bytes per pixel on the whole image, over "
                           f"{MEMORY_BUDGET / 1e9:.2f} GB here); image is {w}x{h}")
        elif min(h, w) < MIN_SIDE[name]:
            self.reason = f"{name} needs both sides >= {MIN_SIDE[name]} px; image is {w}x{h}"
        if self.reason:
            return
        if name == "dists":
            _dists_model()  # weights absent: raised here, so the metric is unavailable with the reason
        self.x = self.convert(original)

    def measure(self, decoded: np.ndarray, scratch: dict) -> dict:
        if self.reason:
            return {self.name: math.nan}
        import torch

        with torch.no_grad():
            value = float(self.score(self.x, self.convert(decoded)))
        return {self.name: value if math.isfinite(value) else math.nan}


def prepare_vif(original: np.ndarray) -> TorchMetric:
    return TorchMetric("vif", original)


def prepare_fsim(original: np.ndarray) -> TorchMetric:
    return TorchMetric("fsim", original)


def prepare_nlpd(original: np.ndarray) -> TorchMetric:
    return TorchMetric("nlpd", original)


def prepare_iw_ssim(original: np.ndarray) -> TorchMetric:
    return TorchMetric("iw_ssim", original)


def prepare_dists(original: np.ndarray) -> TorchMetric:
    return TorchMetric("dists", original)
