"""LPIPS (Zhang et al. 2018) through the authors' `lpips` package: v0.1, AlexNet features.

The package ships its linear layers (lpips/weights/v0.1/alex.pth); the AlexNet features are
torchvision's published ImageNet weights, which rdbench reads from its metric-weights folder
(rdbench/metrics/weights.py: fetched once, checksum checked) rather than letting torchvision
download them on first use in every worker. The network runs in float32 on the CPU on the whole
image, RGB scaled to [-1, 1] as the package's `im2tensor` does.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from rdbench.metrics import registry, weights


@functools.cache  # one network per worker process, whatever the number of originals
def _model():
    import warnings

    import lpips
    import torch

    path = weights.cached(registry.get("lpips").weight_files[0])
    if path is None:
        file = registry.get("lpips").weight_files[0]
        raise weights.WeightsUnavailable(f"weights {file.name} are not in {weights.weights_dir()} (run `rdbench run "
                                         f"--metric lpips` online once, or put the file there)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation of `pretrained=`, which lpips passes
        model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    features = torch.load(path, map_location="cpu", weights_only=True)
    state = model.state_dict()
    for key in state:
        if key.startswith("net.slice"):  # net.slice2.3.weight is AlexNet's features.3.weight
            _, _, index, param = key.split(".")
            state[key] = features[f"features.{index}.{param}"]
    model.load_state_dict(state)
    return model.eval()


def _tensor(pixels: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float() / 127.5 - 1.0


class Lpips:
    reason = None

    def __init__(self, original: np.ndarray):
        self.model = _model()
        self.x = _tensor(original)

    def measure(self, decoded: np.ndarray, scratch: dict) -> dict:
        import torch

        with torch.no_grad():
            value = float(self.model(self.x, _tensor(decoded)).item())
        return {"lpips": value if math.isfinite(value) else math.nan}


def prepare_lpips(original: np.ndarray) -> Lpips:
    return Lpips(original)
