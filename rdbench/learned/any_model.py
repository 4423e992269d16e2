"""Any model with CompressAI's contract: reading its checkpoint, building it, running it.

The contract (what the `compressai:` and `model:` codecs of codecs/models.py need):

    compress(x) -> {"strings": [[bytes], ...], "shape": ...}      x: float32 1x3xHxW in [0, 1]
    decompress(strings, shape) -> {"x_hat": 1x3xHxW}
    forward(x) -> {"x_hat": ..., "likelihoods": {name: tensor}}   (for bpp_estimated)

Checkpoints come in every shape CompressAI's tools save: `{"state_dict": ...}` (examples/train.py,
with epoch, optimizer and the rest beside it), `{"network": ...}` / `{"model_state_dict": ...}`
(as eval_model accepts), a bare state dict, and keys prefixed `module.` by DataParallel.
`state_dict_of` unwraps them; CompressAI's `load_pretrained` then renames its historical keys.

Building follows eval_model's `load_checkpoint`: the class's `from_state_dict` when it has one
(the variable-rate hyperprior and mean-scale models with `vr_entbttlnck=True`, as eval_model
builds them), else `CLASS()` then `load_state_dict`; then `update(force=True)` builds the
entropy coders' CDF tables. A checkpoint that does not fit the class is a ModelError naming the
missing and unexpected keys.
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import torch

WRAPPER_KEYS = ("state_dict", "network", "model_state_dict", "model")
# eval_model builds these with a variable-rate entropy bottleneck
VR_BOTTLENECK = ("bmshj2018-hyperprior-vbr", "mbt2018-mean-vbr")


class ModelError(ValueError):
    """A checkpoint or model class that cannot be used; the message names the file or class."""


def read_checkpoint(path: str | Path) -> dict:
    """The state dict in the torch file at `path`, unwrapped (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from None
    return state_dict_of(payload, str(path))


def state_dict_of(payload, source: str) -> dict:
    if not isinstance(payload, dict):
        raise ModelError(f"{source}: holds a {type(payload).__name__}, not a checkpoint dict")
    for key in WRAPPER_KEYS:
        if isinstance(payload.get(key), dict):
            payload = payload[key]
            break
    tensors = {k: v for k, v in payload.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelError(f"{source}: no tensors (keys: {', '.join(map(str, list(payload)[:8]))})")
    from compressai.zoo.pretrained import load_pretrained

    # DataParallel's `module.` prefix, then CompressAI's historical renames (load_pretrained strips
    # the prefix too, but only from keys it renames: strip it everywhere first)
    tensors = {k[len("module."):] if k.startswith("module.") else k: v for k, v in tensors.items()}
    return load_pretrained(tensors)


def build(cls, state_dict: dict, source: str, arch: str = "") -> torch.nn.Module:
    """An instance of `cls` holding `state_dict`, CDF tables built, in eval mode; ModelError if
    the weights do not fit (missing/unexpected keys, wrong shapes)."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    state_dict = dict(state_dict)
    try:
        if hasattr(cls, "from_state_dict"):
            kwargs = {"vr_entbttlnck": True} if arch in VR_BOTTLENECK else {}
            model = cls.from_state_dict(state_dict, **kwargs)
        else:
            if [p for p in inspect.signature(cls).parameters.values()
                    if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]:
                raise ModelError(f"{name} has no from_state_dict and cannot be built as {cls.__name__}() "
                                 f"(its constructor needs arguments{_sig(cls)})")
            model = cls()
            model.load_state_dict(state_dict)
    except ModelError:
        raise
    except KeyError as exc:
        raise ModelError(f"{source} does not fit {name}: no key {exc.args[0]!r} in the checkpoint") from None
    except Exception as exc:  # torch's load_state_dict names the missing and unexpected keys
        detail = " ".join(str(exc).split())
        detail = detail.replace(f"Error(s) in loading state_dict for {cls.__name__}: ", "")
        raise ModelError(f"{source} does not fit {name}: {detail[:800]}") from None
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{name}.from_state_dict returned a {type(model).__name__}, not a torch module")
    update = getattr(model, "update", None)
    if callable(update):
        update(force=True)
    return model.eval()


def _sig(cls) -> str:
    try:
        return f": {cls.__name__}{inspect.signature(cls)}"
    except (TypeError, ValueError):
        return ""


def model_id(cls, state_dict: dict) -> bytes:
    """8 bytes of SHA-256 over the class's qualified name and every tensor of the state dict as
    read from the checkpoint (before `update` builds CDF tables, a float computation that may
    differ between machines: the id must not), under CompressAI 1.2.6's key names whichever
    CompressAI is installed (1.2.7 renamed the entropy bottleneck's `_matrix0` to `matrices.0`)."""
    from rdbench.learned.checkpoint import _canonical_key

    h = hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}".encode())
    for name, tensor in sorted((_canonical_key(k), v) for k, v in state_dict.items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes())
    return h.digest()[:8]


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- bpp_estimated ---------------------------------------------------------------------------------
class _NoSynthesis(torch.nn.Module):
    """Stands in for g_s while only the likelihoods of a forward pass are wanted: zeros of the
    padded image's shape, no arithmetic."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, y):
        return y.new_zeros(self.shape)


def _likelihood_bits(out) -> float | None:
    likelihoods = out.get("likelihoods", {}) if isinstance(out, dict) else {}
    if not likelihoods:
        return None
    return sum(float(-torch.log2(v).sum()) for v in likelihoods.values())


def _forward_bits(model, x, kwargs: dict, skip_synthesis: bool) -> float | None:
    g_s = model.g_s
    if skip_synthesis:
        model.g_s = _NoSynthesis(x.shape)
    try:
        with torch.no_grad():
            return _likelihood_bits(model(x, **kwargs))
    finally:
        model.g_s = g_s


def synthesis_is_skippable(model, kwargs: dict | None = None, side: int = 64) -> bool:
    """Whether `estimated_bits` may skip the model's synthesis transform: it has a `g_s` module,
    and a forward pass on a side x side image gives bit-identical likelihoods with g_s replaced by
    zeros (true of every CompressAI image model, whose likelihoods come before g_s; a model whose
    entropy model reads g_s's output fails the check and keeps its full forward pass)."""
    if not isinstance(getattr(model, "g_s", None), torch.nn.Module):
        return False
    device = next(model.parameters()).device
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1)).to(device)
    try:
        full = _forward_bits(model, x, kwargs or {}, skip_synthesis=False)
        return full is not None and _forward_bits(model, x, kwargs or {}, skip_synthesis=True) == full
    except Exception:  # the model's forward needs its real g_s output
        return False


def estimated_bits(model, x, kwargs: dict | None = None, skip_synthesis: bool = False) -> float | None:
    """-log2 of the likelihoods of `model`'s forward pass on x, in bits (None when its forward
    returns no likelihoods). `skip_synthesis` (see `synthesis_is_skippable`) leaves out g_s, whose
    reconstruction the estimate does not use: half of a forward pass of a g_a/g_s model."""
    return _forward_bits(model, x, kwargs or {}, skip_synthesis)


# -- complexity -------------------------------------------------------------------------------------
ENCODER_BOXES = ("g_a", "h_a", "h_s", "context_prediction", "entropy_parameters")
DECODER_BOXES = ("h_s", "context_prediction", "entropy_parameters", "g_s")
COMPLEXITY_SIDE = 256  # px: the square image the MACs are counted on (they scale with pixels)


def complexity(model: torch.nn.Module, compress_kwargs: dict | None = None, side: int = COMPLEXITY_SIDE) -> dict:
    """Parameters and kMAC per pixel of a model with CompressAI's contract.

    Counted by torch's FlopCounterMode (MACs = FLOPs / 2: convolutions, transposed convolutions,
    matrix products; GDN's 1x1 convolution over x^2 included) on a side x side image.
    - A model with the paper's boxes (g_a and g_s; h_a, h_s, context_prediction,
      entropy_parameters when it has them): one forward pass, counted box by box
      (`<box>_kmac_px`); the encoder is g_a + h_a + h_s + context_prediction +
      entropy_parameters (it computes the parameters it codes with), the decoder h_s +
      context_prediction + entropy_parameters + g_s. context_prediction is counted dense
      (CompressAI's masked convolution multiplies the masked taps too).
    - Any other model: whatever its compress and decompress run, counted whole.
    """
    from torch.utils.flop_counter import FlopCounterMode

    compress_kwargs = dict(compress_kwargs or {})
    device = next(model.parameters()).device
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device)
    pixels = side * side
    out = {"parameters": parameter_count(model)}
    prefix = type(model).__name__ + "."
    if hasattr(model, "g_a") and hasattr(model, "g_s"):
        forward_kwargs = {k: v for k, v in compress_kwargs.items() if k != "s"}
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x, **forward_kwargs)
        boxes = {name[len(prefix):]: sum(ops.values()) / 2 for name, ops in counter.get_flop_counts().items()
                 if name.startswith(prefix) and "." not in name[len(prefix):]}
        out.update({f"{box}_kmac_px": macs / pixels / 1e3 for box, macs in boxes.items()})
        out["enc_kmac_px"] = sum(boxes.get(b, 0.0) for b in ENCODER_BOXES) / pixels / 1e3
        out["dec_kmac_px"] = sum(boxes.get(b, 0.0) for b in DECODER_BOXES) / pixels / 1e3
        return out
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            encoded = model.compress(x, **compress_kwargs)
        out["enc_kmac_px"] = counter.get_total_flops() / 2 / pixels / 1e3
        with FlopCounterMode(display=False) as counter:
            model.decompress(encoded["strings"], encoded["shape"], **compress_kwargs)
        out["dec_kmac_px"] = counter.get_total_flops() / 2 / pixels / 1e3
    return out
