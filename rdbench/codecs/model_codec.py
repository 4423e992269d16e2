"""The adapter that makes any model with CompressAI's contract a codec (DESIGN.md seam 9):
loading a rate point's model, checking the contract, coding into learned/container.py's
container, bpp_estimated and complexity, warm-up. The two spec families built on it, and the
grammar of their specs, are in codecs/models.py (`compressai:` and `model:`), which says which
class and which checkpoints; this module says what is done with them.

Padding is eval_model's by default (`padding=zero`: zeros, centred, to a multiple of `stride=64`);
`padding=edge` repeats the border pixels instead. Reconstructions are eval_model's too:
round(clamp(x_hat, 0, 1) x 255). Everything is checked when the codec is loaded, before any
work: each checkpoint fits the class, and the model's compress and decompress return what the
contract says on a small image.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np

from rdbench.codecs.base import Codec, CodecError, Option, Spec
from rdbench.data.download import sha256_file
from rdbench.codecs.learned import CHECKPOINT_SUFFIXES, RUNTIME_OPTIONS, _is_checkpoint, _LearnedBase
from rdbench.learned.container import VERSION as CONTAINER_VERSION

FORMAT_NAME = f"rdbench model container v{CONTAINER_VERSION}"
VBR_QUANT_STEPS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0)  # the default ladder of a -vbr model
VBR_RANGE = (1.0, 10.0)  # the Gain values the -vbr models are trained for (0.1..1), as steps
CONTRACT_SIDE = 64  # px: the image the contract is checked on at load time

MODEL_OPTIONS = {
    "checkpoint": Option("", help="one checkpoint file (one rate point)"),
    "checkpoints": Option("", help="a folder with one checkpoint per rate point (ordered by file name)"),
    "padding": Option("zero", ("zero", "edge"), help="zero: eval_model's (zeros, centred); edge: repeat the border"),
    "stride": Option("64", help="pad the image to a multiple of this (eval_model: 64)"),
    **RUNTIME_OPTIONS,
}



class _RatePoint:
    """One model the codec can code with: where its weights come from, built on first use."""

    def __init__(self, label: str, path_fn):
        self.label = label
        self._path_fn = path_fn  # () -> Path (a zoo weight is fetched when asked for)
        self.model = None
        self.model_id = b""

    def path(self) -> Path:
        return self._path_fn()


class ModelCodec(_LearnedBase):
    """The adapter: subclasses say which class and which rate points (`_cls`, `_points`)."""

    extension = "rdbc"

    def __init__(self, spec: Spec | str | None = None):
        super().__init__(spec)
        self._by_scale: dict = {}  # -vbr models with a variable-rate bottleneck: a copy per step
        self._complexity: dict = {}
        self._skip_synthesis: dict = {}  # (model id, knob): may bpp_estimated leave g_s out
        self._checked = False
        try:
            self.stride = int(self.opts["stride"])
            if self.stride < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"codec spec {self.spec.text!r}: stride={self.opts['stride']!r}, expected a positive integer") from None

    def _error(self, message: str) -> ValueError:
        return ValueError(f"codec spec {self.spec.text!r}: {message}")

    def _checkpoint_paths(self, required: bool) -> list[Path]:
        one, many = self.opts["checkpoint"], self.opts["checkpoints"]
        if one and many:
            raise self._error("give checkpoint=FILE or checkpoints=DIR, not both")
        if not (one or many):
            if required:
                raise self._error("give checkpoint=FILE or checkpoints=DIR")
            return []
        if one:
            if not Path(one).is_file():
                raise self._error(f"{one}: no such checkpoint file")
            return [Path(one)]
        folder = Path(many)
        if not folder.is_dir():
            raise self._error(f"{many}: no such folder")
        paths = sorted(p for p in folder.iterdir() if _is_checkpoint(p))
        if not paths:
            raise self._error(f"{many}: no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)})")
        return paths

    # -- what subclasses provide ----------------------------------------------------------------
    arch = ""  # a CompressAI registry name, when there is one
    _cls = None
    _points: list[_RatePoint]

    @property
    def vbr(self) -> bool:
        return self.arch.endswith("-vbr")

    # -- qualities ------------------------------------------------------------------------------
    @property
    def qualities(self):
        return VBR_QUANT_STEPS if self.vbr else tuple(range(1, len(self._points) + 1))

    @property
    def quality_range(self):
        return VBR_RANGE if self.vbr else (1, len(self._points))

    @property
    def quality_name(self):
        return "quantization step (eval_model's --vbr_quantstep)" if self.vbr else "rate point"

    @property
    def configuration(self) -> str:
        opts = {k: str(Path(v).resolve()) if k in ("checkpoint", "checkpoints") and v else v for k, v in self.opts.items()}
        return Spec(self.spec.text, self.name, opts).canonical

    # -- loading ----------------------------------------------------------------------------------
    def _load_point(self, point: _RatePoint):
        if point.model is None:
            from rdbench.learned.any_model import ModelError, build, model_id, read_checkpoint

            self._setup_torch()
            try:
                state_dict = read_checkpoint(point.path())
                point.model_id = model_id(self._cls, state_dict)
                model = build(self._cls, state_dict, point.label, self.arch)
            except ModelError as exc:
                raise self._error(str(exc)) from None
            if self.arch == "mbt2018-vbr":
                model.scl2ctx = True  # as eval_model sets it
            if self.vbr:
                model.no_quantoffset = False
            point.model = model.to(self.opts["device"])
            if self._latent_stride is None:
                self._latent_stride = self._measure_latent_stride(point)
        return point

    _latent_stride = None  # 0: the model's shapes follow no simple rule (only bounds are checked)

    def _measure_latent_stride(self, point) -> int:
        """How the model's `shape` follows the padded image: f when compress gives (H/f, W/f) on
        64 x 64 and 64 x 128 images (every CompressAI image model), else 0. decode then refuses
        a container whose shape is not the model's own for its image: CompressAI's decoders read
        past their strings on a shape they did not write (found by fuzzing: a process abort)."""
        import torch

        kwargs = {"stage": 2, "s": 0, "inputscale": torch.tensor(1.0, device=self.opts["device"])} if self.vbr else {}
        if self.vbr and self.arch in __import__("rdbench.learned.any_model", fromlist=["VR_BOTTLENECK"]).VR_BOTTLENECK:
            return 0  # the bottleneck is rebuilt per step; bounds only
        shapes = []
        try:
            for w in (64, 128):
                with torch.no_grad():
                    out = point.model.compress(torch.zeros(1, 3, 64, w, device=self.opts["device"]), **kwargs)
                shapes.append(tuple(int(v) for v in out["shape"]))
        except Exception:
            return 0  # the contract check names what is wrong
        (h1, w1), (h2, w2) = shapes if all(len(s) == 2 for s in shapes) else ((0, 0), (0, 0))
        if h1 and h1 == w1 == h2 and w2 == 2 * w1 and 64 % h1 == 0:
            return 64 // h1
        return 0

    def _model_for(self, quality):
        """(model, compress/decompress keyword arguments, the container's quality knob, model id)."""
        q = self.check_quality(quality)
        if not self.vbr:
            if q != int(q):
                raise ValueError(f"{self.spec.text}: rate point {q} is not an integer")
            point = self._load_point(self._points[int(q) - 1])
            return point.model, {}, 0.0, point.model_id
        return self._vbr_model(float(q))

    def _vbr_model(self, step: float):
        import torch

        from rdbench.learned.any_model import VR_BOTTLENECK

        point = self._load_point(self._points[0])
        scale = torch.tensor(1.0 / step, device=self.opts["device"])
        model = point.model
        if self.arch in VR_BOTTLENECK:  # the bottleneck's tables depend on the step: one copy each
            if step not in self._by_scale:
                import copy

                model = copy.deepcopy(point.model)
                model.update(force=True, scale=scale)
                self._by_scale[step] = model
            model = self._by_scale[step]
        return model, {"stage": 2, "s": 0, "inputscale": scale}, step, point.model_id

    def _point_by_id(self, model_id: bytes):
        for point in self._points:
            if point.model is not None and point.model_id == model_id:
                return point
        for point in self._points:  # a stream of a rate point not used yet in this process
            if point.model is None and self._load_point(point).model_id == model_id:
                return point
        return None

    def availability(self) -> str | None:
        problem = super().availability()
        if problem is None and not self._checked:
            self.check_contract()
        return problem

    def check_contract(self) -> None:
        """Load every model there is a checkpoint for and run compress and decompress once on a
        small image: a class, checkpoint or model that does not do what the contract says is a
        ValueError naming the spec and the problem, before any work."""
        qualities = self.qualities if not self.vbr else (self.qualities[0],)
        if self._zoo:
            qualities = ()  # fetched when the run needs them (runner.fetch_zoo_weights)
        image = np.zeros((CONTRACT_SIDE, CONTRACT_SIDE, 3), np.uint8)
        image[::3, ::5] = 200
        for q in qualities:
            try:
                data = self.encode(image, q)
                decoded = self.decode(data)
            except ValueError:
                raise
            except Exception as exc:
                raise self._error(f"the model fails on a {CONTRACT_SIDE}x{CONTRACT_SIDE} image at {self.quality_name} {q:g}: "
                                  f"{type(exc).__name__}: {exc}") from None
            if decoded.shape != image.shape:
                raise self._error(f"decompress gave a {decoded.shape} image for a {image.shape} one")
        self._checked = True

    _zoo = False

    # -- coding -----------------------------------------------------------------------------------
    def _padded(self, image: np.ndarray):
        import torch
        import torch.nn.functional as F
        from compressai.ops import compute_padding

        h, w = image.shape[:2]
        x = torch.from_numpy(np.array(image, np.uint8)).permute(2, 0, 1)[None].float().div(255)
        x = x.to(self.opts["device"])
        pad, unpad = compute_padding(h, w, min_div=self.stride)
        if any(pad):
            x = F.pad(x, pad, mode="constant", value=0) if self.opts["padding"] == "zero" else F.pad(x, pad, mode="replicate")
        return x, unpad

    def encode(self, image: np.ndarray, quality) -> bytes:
        import torch

        from rdbench.learned.container import Container

        model, kwargs, knob, mid = self._model_for(quality)
        x, _ = self._padded(image)
        with torch.no_grad():
            out = model.compress(x, **kwargs)
        strings, shape = self._contract_output(out)
        return Container(mid, image.shape[0], image.shape[1], knob, shape, strings).to_bytes()

    def _contract_output(self, out):
        what = f"{self.spec.text}: compress() returned"
        if not isinstance(out, dict) or "strings" not in out or "shape" not in out:
            keys = f"a dict with keys {sorted(map(str, out))}" if isinstance(out, dict) else f"a {type(out).__name__}"
            raise ValueError(f"{what} {keys}, not {{'strings': [[bytes], ...], 'shape': ...}} (CompressAI's contract)")
        strings = out["strings"]
        if not isinstance(strings, (list, tuple)) or not all(
                isinstance(g, (list, tuple)) and len(g) == 1 and isinstance(g[0], bytes) for g in strings):
            raise ValueError(f"{what} strings that are not a list of one-image lists of bytes "
                             f"(got {type(strings).__name__}: {str(strings)[:80]})")
        shape = out["shape"]
        try:
            if len(shape) and not isinstance(shape[0], (int,)) and not hasattr(shape[0], "__len__"):
                shape = [int(v) for v in shape]
            shape = tuple(tuple(int(v) for v in s) if hasattr(s, "__len__") else int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"{what} a shape that is not a sequence of integers: {shape!r}") from None
        return tuple(tuple(g) for g in strings), shape

    def decode(self, data: bytes) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        from rdbench.learned.bitstream import resolve_max_pixels
        from rdbench.learned.container import ContainerError, parse

        c = parse(data, resolve_max_pixels(self.opts["max_pixels"]))
        point = self._point_by_id(c.model_id)
        if point is None:
            raise ContainerError(f"stream was made by model {c.model_id.hex()}, which is not one of {self.spec.text}'s models")
        if self.vbr:
            if not VBR_RANGE[0] <= c.quality <= VBR_RANGE[1]:
                raise ContainerError(f"container damaged: quantization step {c.quality!r} outside {VBR_RANGE}")
            model, kwargs, _, _ = self._vbr_model(c.quality)
        else:
            model, kwargs = point.model, {}
        from compressai.ops import compute_padding

        pad, unpad = compute_padding(c.height, c.width, min_div=self.stride)
        if self._latent_stride:
            f = self._latent_stride
            expected = ((c.height + pad[2] + pad[3]) // f, (c.width + pad[0] + pad[1]) // f)
            if tuple(c.shape) != expected:
                raise ContainerError(f"container damaged: latent shape {tuple(c.shape)}, but this model's for a "
                                     f"{c.width}x{c.height} image is {expected}")
        shape = c.shape if not c.shape or isinstance(c.shape[0], int) else [torch.Size(s) for s in c.shape]
        if shape and isinstance(shape[0], int):
            shape = torch.Size(shape)
        try:
            with torch.no_grad():
                out = model.decompress([list(g) for g in c.strings], shape, **kwargs)
        except Exception as exc:  # a model's decoder on a stream it cannot read
            raise CodecError(f"{self.spec.text}: decompress failed: {type(exc).__name__}: {exc}") from None
        x_hat = out.get("x_hat") if isinstance(out, dict) else None
        if not isinstance(x_hat, torch.Tensor):
            raise CodecError(f"{self.spec.text}: decompress() returned {type(out).__name__} without an 'x_hat' tensor")
        x_hat = F.pad(x_hat, unpad)
        if tuple(x_hat.shape) != (1, 3, c.height, c.width):
            raise CodecError(f"{self.spec.text}: decompress() gave x_hat of shape {tuple(x_hat.shape)} for a "
                             f"{c.width}x{c.height} image")
        pixels = (x_hat[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0)
        return np.ascontiguousarray(pixels.cpu().numpy())

    def extra_measurements(self, image: np.ndarray, quality, data: bytes) -> dict:
        """bpp_estimated: -log2 of the forward pass's likelihoods over the padded image the stream
        codes, per pixel of the image itself (without the synthesis transform g_s where the model's
        likelihoods were shown not to depend on it: learned/any_model.estimated_bits)."""
        from rdbench.learned.any_model import estimated_bits, synthesis_is_skippable

        model, kwargs, knob, mid = self._model_for(quality)
        x, _ = self._padded(image)
        fwd = {k: v for k, v in kwargs.items() if k != "s"}
        key = (mid, knob)
        if key not in self._skip_synthesis:  # checked once per model and process, on a small image
            self._skip_synthesis[key] = synthesis_is_skippable(model, fwd)
        bits = estimated_bits(model, x, fwd, self._skip_synthesis[key])
        if bits is None:
            return {}
        return {"bpp_estimated": bits / (image.shape[0] * image.shape[1]), **self.complexity(quality)}

    def complexity(self, quality) -> dict:
        """parameters, enc_kmac_px, dec_kmac_px (and kMAC/px per box) of the model coding
        `quality` (learned/any_model.complexity), counted once per model and process."""
        from rdbench.learned.any_model import complexity

        model, kwargs, knob, mid = self._model_for(quality)
        key = (mid, knob)
        if key not in self._complexity:
            self._complexity[key] = complexity(model, kwargs)
        return {k: self._complexity[key][k] for k in ("parameters", "enc_kmac_px", "dec_kmac_px")}

    # -- timing -----------------------------------------------------------------------------------
    def warm_up_family(self, quality):
        q = self.check_quality(quality)
        return ("step", q) if self.vbr else self._points[int(q) - 1].label

    def warm_up(self, quality, image: np.ndarray | None = None) -> None:
        self._model_for(quality)
        Codec.warm_up(self, quality, image)
        self.synchronize()

    @cached_property
    def version(self) -> str:
        import compressai
        import torch

        h = hashlib.sha256()
        for point in self._points:
            h.update(point.label.encode() if self._zoo else sha256_file(point.path()).encode())
        return (f"{FORMAT_NAME}; {self._model_name}; compressai {compressai.__version__}, torch {torch.__version__}; "
                f"weights {h.hexdigest()[:16]}")
