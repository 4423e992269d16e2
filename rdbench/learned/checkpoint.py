"""Checkpoints: the state dict plus everything needed to rebuild the model, and CompressAI imports.

An rdbench checkpoint is a torch file holding a dict:

    format: "rdbench-checkpoint", format_version: 1,
    config: ModelConfig.to_dict() (variant, N, M, k, K, rates),
    state_dict: the weights, with the entropy bottleneck's CDF tables already built,
    training: {lambda(s), metric, steps, data, crop, batch, lr, seed, rdbench_version, ...},
    optimizer, aux_optimizer, rng: the training state (for resume).

A CompressAI checkpoint (a bare state dict, or one nested under "state_dict") of
bmshj2018-factorized, bmshj2018-hyperprior, mbt2018-mean or mbt2018 loads too: the boxes it has
(h_a, context_prediction) and the shapes of its weights give N, M, k, K and, through
ModelConfig.from_boxes, the variant.

CompressAI 1.2.7 renamed the entropy bottleneck's parameters (`_matrix0`, `_bias0`, `_factor0`
became `matrices.0`, `biases.0`, `factors.0`); 1.2.7 and 1.2.8 read the old names, 1.2.6 refuses
the new ones. `translate_compressai_keys` makes either load under either, and `model_id` hashes
the 1.2.6 names, so one set of weights has one id whichever CompressAI is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rdbench.learned.config import ModelConfig
from rdbench.learned.models import LatentModel

FORMAT = "rdbench-checkpoint"
FORMAT_VERSION = 1


# An entropy bottleneck's parameter under either naming; the prefix is the module's path.
_ATTRIBUTE_KEY = re.compile(r"(?P<prefix>(?:.+\.)?)_(?P<kind>matrix|bias|factor)(?P<index>\d+)")
_LIST_KEY = re.compile(r"(?P<prefix>(?:.+\.)?)(?P<kind>matrices|biases|factors)\.(?P<index>\d+)")
_PLURAL = {"matrix": "matrices", "bias": "biases", "factor": "factors"}
_SINGULAR = {v: k for k, v in _PLURAL.items()}
LIST_NAMING_SINCE = (1, 2, 7)  # the first CompressAI whose EntropyBottleneck holds nn.ParameterLists


def _other_naming(key: str) -> str | None:
    """`x._matrix0` <-> `x.matrices.0` (and bias, factor); None for any other key."""
    if m := _ATTRIBUTE_KEY.fullmatch(key):
        return f"{m['prefix']}{_PLURAL[m['kind']]}.{m['index']}"
    if m := _LIST_KEY.fullmatch(key):
        return f"{m['prefix']}_{_SINGULAR[m['kind']]}{m['index']}"
    return None


def _installed_uses_lists() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("compressai")
    except PackageNotFoundError:
        return True
    parts = tuple(int(p) for p in re.findall(r"\d+", text)[:3])
    return parts >= LIST_NAMING_SINCE


def translate_compressai_keys(state_dict: Mapping, target_keys: Iterable[str] | None = None) -> dict:
    """`state_dict` with its entropy bottleneck keys in the naming the loading model expects.

    target_keys: the keys of the model that will load it (`model.state_dict().keys()`); a key is
    renamed only where its other name is one of them and its own is not, which is exact for any
    model. Without target_keys, every `_matrix<i>`/`matrices.<i>` (bias, factor) key takes the
    naming of the installed CompressAI (1.2.7 and later: lists). Values are not copied, and torch
    is not imported. Old CompressAI 1.1 names (`_matrices.0`) are `compressai.zoo.load_pretrained`'s
    business and pass through.
    """
    if target_keys is not None:
        target = set(target_keys)
        out = {}
        for key, value in state_dict.items():
            other = _other_naming(key)
            out[other if key not in target and other in target else key] = value
        return out
    lists = _installed_uses_lists()
    out = {}
    for key, value in state_dict.items():
        other = _other_naming(key)
        if other is not None and (_LIST_KEY.fullmatch(key) is None) == lists:
            key = other
        out[key] = value
    return out


def _canonical_key(key: str) -> str:
    """The 1.2.6 name of a state dict key (what model_id hashes)."""
    return _other_naming(key) if _LIST_KEY.fullmatch(key) else key


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint; the message names the file and the problem."""


@dataclass
class LoadedModel:
    model: LatentModel
    model_id: bytes
    source: str
    training: dict = field(default_factory=dict)


def model_id(model: LatentModel) -> bytes:
    """8 bytes of SHA-256 over the configuration and every tensor of the state dict, under the
    1.2.6 key names whichever CompressAI is installed."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    state = {_canonical_key(name): tensor for name, tensor in model.state_dict().items()}
    for name, tensor in sorted(state.items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.digest()[:8]


def prepare_for_coding(model: LatentModel) -> LatentModel:
    """Build the entropy bottleneck's CDF tables (fixed buffers the coder reads). Not the Gaussian
    conditional's (CompressAI's `update` builds both): rdbench's coder never reads them (symbols.py
    codes Gaussians with constriction), and they are 800 KB in every checkpoint."""
    eb = getattr(model, "entropy_bottleneck", None)
    if eb is not None:
        eb.update(force=True)
    return model


def save(path: str | Path, model: LatentModel, training: dict, extra: dict | None = None) -> None:
    """Write atomically (temporary file, then rename)."""
    from rdbench import __version__

    prepare_for_coding(model)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training": {"rdbench_version": __version__, **training},
        **(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def export_rate(src: str | Path, rate: int, dest: str | Path) -> ModelConfig:
    """Write one rate point of a checkpoint as a single-rate rdbench checkpoint whose state dict
    CompressAI's classes also load (gains folded into the weights)."""
    from rdbench.learned.models import fold_gains

    loaded = load(src)
    n = len(loaded.model.config.rates)
    if not 0 <= rate < n:
        raise CheckpointError(f"{src}: no rate point {rate + 1}; it has {n} (1..{n})")
    single = fold_gains(loaded.model, rate)
    save(dest, single, {**loaded.training, "exported_from": str(src), "rate_index": rate})
    return single.config


def _read(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: holds a {type(payload).__name__}, not a checkpoint dict")
    return payload


# The way out for a checkpoint of another architecture: the generic model adapters (codecs/).
OTHER_FAMILY = ("not a model of the Minnen/Ballé family that the `learned` codec reads; measure another "
                "architecture with `compressai:arch=NAME,checkpoint=FILE` (a CompressAI model) or "
                "`model:class=MODULE:CLASS,checkpoint=FILE` (your own model class with CompressAI's "
                "compress/decompress)")


def infer_config(state_dict: dict, source: str = "state dict") -> ModelConfig:
    """The ModelConfig of a CompressAI-style state dict, from the boxes it has and their shapes."""
    try:
        N = state_dict["g_a.0.weight"].shape[0]
        M = state_dict["g_a.6.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"{source}: no {exc.args[0]}; {OTHER_FAMILY}") from exc
    hyperprior = "h_a.0.weight" in state_dict
    context = "context_prediction.weight" in state_dict
    k = state_dict["context_prediction.weight"].shape[-1] if context else 5
    # y's distribution parameters come out of entropy_parameters, or else out of h_s
    params = "entropy_parameters.4.weight" if context else "h_s.4.weight" if hyperprior else None
    rates = (0.0,) * state_dict["gain"].shape[0] if "gain" in state_dict else (0.0,)
    try:
        return ModelConfig.from_boxes(N, M, hyperprior=hyperprior, context=context, k=k, rates=rates,
                                      param_channels=None if params is None else state_dict[params].shape[0])
    except KeyError as exc:
        raise CheckpointError(f"{source}: no {exc.args[0]}; {OTHER_FAMILY}") from exc
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from exc


def _compressai_state_dict(payload: dict) -> dict:
    from compressai.zoo.pretrained import load_pretrained

    for key in ("state_dict", "model", "network"):
        if isinstance(payload.get(key), dict):
            payload = payload[key]
            break
    return load_pretrained(payload)


def load(path: str | Path, device: str = "cpu") -> LoadedModel:
    """An rdbench or CompressAI checkpoint, ready to code (CDF tables built, eval mode)."""
    path = Path(path)
    payload = _read(path)
    training = {}
    if payload.get("format") == FORMAT:
        if payload.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format version {payload.get('format_version')}, expected {FORMAT_VERSION}")
        try:
            config = ModelConfig.from_dict(payload["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: bad model configuration ({exc})") from exc
        state_dict = payload["state_dict"]
        training = payload.get("training", {})
    else:
        state_dict = _compressai_state_dict(payload)
        config = infer_config(state_dict, str(path))
        training = {"source": "compressai"}
    model = LatentModel(config)
    state_dict = translate_compressai_keys(state_dict, model.state_dict().keys())
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit a {config.label()} model ({exc})") from exc
    if config.has_entropy_bottleneck and model.entropy_bottleneck._offset.numel() == 0:
        prepare_for_coding(model)  # a CompressAI checkpoint saved before update()
    model.to(device).eval()
    return LoadedModel(model, model_id(model), str(path), training)
