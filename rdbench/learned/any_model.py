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
    differ between machines: the id must not)."""
    h = hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}".encode())
    for name, tensor in sorted(state_dict.items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes())
    return h.digest()[:8]


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
