"""Complexity of a LatentModel (the paper's fourth question): MACs, parameters, decode time.

`macs(model, height, width)`
    Multiply-accumulates of each box for one image of height x width pixels, counted by torch's
    FlopCounterMode (MACs = FLOPs / 2) while the box runs on tensors of the shapes the coder gives
    it: the image padded as coding.py pads it (to a multiple of coding.PAD = 64), y at 1/16 of
    that, z at 1/4 of y. The boxes run on the meta device (shapes only, no arithmetic), so any
    size is instant. Per pixel means per pixel of the image itself (height * width): padding's
    extra work is charged to the image's pixels.

    What is counted: every convolution and transposed convolution (weights x inputs; bias
    additions are not MACs and are not counted), and GDN / inverse GDN, which CompressAI computes
    as a 1x1 convolution of x^2 over the channels (F.conv2d, N^2 MACs per position): it is
    counted, and reported on its own too (`<part>_gdn_kmac_px`). Not counted: activations, GDN's
    square root and division, the gain units of variable-rate models, rounding: elementwise work
    of a few operations per value, not MACs.

    context_prediction: FlopCounterMode counts its dense k x k kernel, but the type-A mask zeroes
    all taps but the k*k // 2 causal ones (12 of 25 for k = 5), and exact.ExactContext, which the
    coder runs, multiplies only those. `context_prediction_kmac_px`, and the encoder and decoder
    totals, use the CAUSAL taps; `context_prediction_dense_kmac_px` is the dense count (what a
    plain masked convolution computes, as CompressAI's float model does).

    Totals: `enc_kmac_px` = g_a + h_a + h_s + context_prediction + entropy_parameters (the encoder
    computes the distribution parameters too, to code with them); `dec_kmac_px` = h_s +
    context_prediction + entropy_parameters + g_s. Boxes a variant lacks are left out. The entropy
    coding itself (range coding, probability tables) is not a MAC count: `decode_time_split`
    measures it in seconds.

`decode_time_split(coder, data, repeats)`
    Seconds of one decode, split as LatentCoder.timings splits it (coding.py): transforms (h_s,
    g_s), entropy_parameters (context_prediction and entropy_parameters, group by group; without
    a context model only reading ψ), entropy_coding (symbol decoding of z and y with their
    probability tables), other (parsing, buffers, the output image).

`profile_checkpoint(path, images, rate)`
    The above for one checkpoint, as one flat JSON-able dict.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from compressai.layers import GDN, MaskedConv2d
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rdbench.learned.coding import LatentCoder, latent_size
from rdbench.learned.models import Y_STRIDE, Z_STRIDE, LatentModel, parameter_count

PARTS = ("g_a", "h_a", "h_s", "context_prediction", "entropy_parameters", "g_s")
ENCODER_PARTS = ("g_a", "h_a", "h_s", "context_prediction", "entropy_parameters")
DECODER_PARTS = ("h_s", "context_prediction", "entropy_parameters", "g_s")
DEFAULT_SIZE = (512, 768)  # height, width: Kodak's landscape images
TIME_PARTS = ("transforms", "entropy_parameters", "entropy_coding")


def _layer_macs(layer: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    """MACs of one layer on x (meta tensors), and its output."""
    with FlopCounterMode(display=False) as counter:
        out = layer(x)
    return counter.get_total_flops() // 2, out


def box_macs(box: nn.Module, shape: tuple[int, ...]) -> dict:
    """{"macs", "gdn_macs", "shape" (of the output)} of a box run on a zeros tensor of `shape`."""
    box = copy.deepcopy(box).to("meta")
    x = torch.zeros(shape, device="meta")
    total = gdn = 0
    with torch.no_grad():
        for layer in box if isinstance(box, nn.Sequential) else (box,):
            n, x = _layer_macs(layer, x)
            total += n
            gdn += n if isinstance(layer, GDN) else 0
    return {"macs": total, "gdn_macs": gdn, "shape": tuple(x.shape)}


def causal_taps(layer: MaskedConv2d) -> tuple[int, int]:
    """(taps the mask keeps, k * k) of a masked convolution: (k*k // 2, k*k) for type A."""
    mask = layer.mask[0, 0]
    return int(mask.count_nonzero()), mask.numel()


def macs(model: LatentModel, height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1]) -> dict:
    """MACs of each box, in thousands per image pixel, and the parameter counts (see the module
    docstring for what is counted). Keys: height, width, padded_height, padded_width,
    `<part>_kmac_px`, `<part>_gdn_kmac_px` (g_a, g_s), `<part>_params`, context_prediction_taps,
    context_prediction_dense_kmac_px, enc_kmac_px, dec_kmac_px, params (all parameters,
    models.parameter_count: gains and the entropy bottleneck's included)."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive (got {height}x{width})")
    cfg = model.config
    M, N = cfg.M, cfg.N
    h, w = latent_size(height, width)
    pixels = height * width
    out: dict = {"height": height, "width": width, "padded_height": h * Y_STRIDE, "padded_width": w * Y_STRIDE}
    shapes = {
        "g_a": (1, 3, out["padded_height"], out["padded_width"]),
        "h_a": (1, M, h, w),
        "h_s": (1, N, h // Z_STRIDE, w // Z_STRIDE),
        "context_prediction": (1, M, h, w),
        "entropy_parameters": (1, cfg.entropy_parameters_channels, h, w) if cfg.has_context else None,
        "g_s": (1, M, h, w),
    }
    counted = {}
    for part in PARTS:
        box = getattr(model, part, None)
        if box is None:
            continue
        result = box_macs(box, shapes[part])
        counted[part] = result["macs"]
        out[f"{part}_params"] = parameter_count(box)
        if part in ("g_a", "g_s"):
            out[f"{part}_gdn_kmac_px"] = result["gdn_macs"] / pixels / 1e3
    if "context_prediction" in counted:
        taps, kernel = causal_taps(model.context_prediction)
        dense = counted["context_prediction"]
        counted["context_prediction"] = dense // kernel * taps  # dense = C_in C_out k^2 h w exactly
        out["context_prediction_taps"] = taps
        out["context_prediction_dense_kmac_px"] = dense / pixels / 1e3
    for part, n in counted.items():
        out[f"{part}_kmac_px"] = n / pixels / 1e3
    out["enc_kmac_px"] = sum(counted.get(p, 0) for p in ENCODER_PARTS) / pixels / 1e3
    out["dec_kmac_px"] = sum(counted.get(p, 0) for p in DECODER_PARTS) / pixels / 1e3
    out["params"] = parameter_count(model)
    return out


def decode_time_split(coder: LatentCoder, data: bytes, repeats: int = 1) -> dict:
    """Mean seconds of decoding `data`, over `repeats` decodes: {"transforms_s",
    "entropy_parameters_s", "entropy_coding_s", "other_s", "total_s"} (other = total - the three).
    Sets coder.timings for the duration and puts the previous value back."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1 (got {repeats})")
    previous = coder.timings
    coder.timings = timings = {}
    total = 0.0
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            coder.decode(data)
            total += time.perf_counter() - start
    finally:
        coder.timings = previous
    out = {f"{part}_s": timings.get(part, 0.0) / repeats for part in TIME_PARTS}
    out["total_s"] = total / repeats
    out["other_s"] = out["total_s"] - sum(out[f"{part}_s"] for part in TIME_PARTS)
    return {key: out[key] for key in ("transforms_s", "entropy_parameters_s", "entropy_coding_s", "other_s", "total_s")}


def profile_checkpoint(path, images: list[np.ndarray], rate: int | None = None, device: str = "cpu") -> dict:
    """One checkpoint's complexity as a flat JSON-able dict: its configuration, `macs` at the
    images' mean size (512x768 without images), and the mean decode-time split (keys
    `decode_<part>_s`) over the images, each encoded once at `rate` (default: the middle rate
    index, len(rates) // 2), then decoded once untimed (warm-up) and once timed. Also the mean
    bits per pixel of those streams."""
    from rdbench.learned.checkpoint import load

    loaded = load(path, device)
    model = loaded.model
    cfg = model.config
    rate = len(cfg.rates) // 2 if rate is None else rate
    if not 0 <= rate < len(cfg.rates):
        raise ValueError(f"{path}: rate index {rate} outside its {len(cfg.rates)} rate(s)")
    if images:
        height = round(float(np.mean([im.shape[0] for im in images])))
        width = round(float(np.mean([im.shape[1] for im in images])))
    else:
        height, width = DEFAULT_SIZE
    out = {"checkpoint": str(path), "model_id": loaded.model_id.hex(), "label": cfg.label(), **cfg.to_dict(),
           "rates": list(cfg.rates), "rate": rate, "images": len(images), "device": device}
    out.update(macs(model, height, width))
    if images:
        coder = LatentCoder(model, loaded.model_id, device)
        splits, bpp = [], []
        for image in images:
            data = coder.encode(image, rate)
            coder.decode(data)  # warm-up: caches, allocator, first-call costs
            splits.append(decode_time_split(coder, data))
            bpp.append(8 * len(data) / (image.shape[0] * image.shape[1]))
        for key in splits[0]:
            out[f"decode_{key}"] = float(np.mean([s[key] for s in splits]))
        out["bpp"] = float(np.mean(bpp))
    return out
