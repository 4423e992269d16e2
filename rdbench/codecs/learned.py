"""Learned codecs as codec adapters: rdbench checkpoints, CompressAI checkpoints, CompressAI's zoo.

- `learned:checkpoint=FILE`: one checkpoint; a variable-rate one gives one quality per rate.
- `learned:checkpoints=DIR`: one checkpoint per rate point (*.pt, *.pth, *.pth.tar), ordered by
  their training lambda (or file name when unknown); quality i is the i-th.
- `mbt2018`, `mbt2018-mean`, `bmshj2018-hyperprior`, `bmshj2018-factorized`: CompressAI's
  pretrained weights, qualities 1-8, `metric=mse|ms-ssim`, fetched on first use (see zoo.py).

All code with rdbench's exact coder (rdbench/learned/coding.py and symbols.py). `device=cuda`
runs the transforms on a GPU; the parameters that feed the entropy coder are always computed
exactly on the CPU, so a bitstream encoded on a GPU decodes on a CPU.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import numpy as np

from rdbench.codecs.base import Codec, CodecError, Option, Spec
from rdbench.learned.bitstream import DEFAULT_MAX_PIXELS, FORMAT_VERSION, MAX_PIXELS_ENV
from rdbench.learned.contract import CONTRACT_NAME

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".pth.tar", ".ckpt")
FORMAT_NAME = f"rdbench-learned bitstream v{FORMAT_VERSION}, {CONTRACT_NAME}"
MAX_PIXELS_OPTION = Option("", help=f"largest image a bitstream may declare, in pixels (default ${MAX_PIXELS_ENV} or {DEFAULT_MAX_PIXELS:,})")


def _check_max_pixels(codec) -> None:
    from rdbench.learned.bitstream import resolve_max_pixels

    try:
        resolve_max_pixels(codec.opts["max_pixels"])
    except ValueError as exc:
        raise ValueError(f"codec spec {codec.spec.text!r}: {exc}") from None


def _is_checkpoint(path: Path) -> bool:
    return path.is_file() and path.name.endswith(CHECKPOINT_SUFFIXES)


# Options every learned codec has: where it runs and what a bitstream may ask of it.
RUNTIME_OPTIONS = {
    "device": Option("cpu", ("cpu", "cuda")),
    "threads": Option("0", help="torch threads (0: torch's default)"),
    "max_pixels": MAX_PIXELS_OPTION,
}


class _LearnedBase(Codec):
    learned = True
    # `import compressai` alone costs ~5 s of CPU (it imports its video and point-cloud code, and
    # torch_geometric): once in the fork server, not once per worker
    worker_preload = ("torch", "compressai")
    extension = "rdbl"
    quality_name = "rate point"

    def __init__(self, spec: Spec | str | None = None):
        super().__init__(spec)
        _check_max_pixels(self)

    def availability(self) -> str | None:
        from rdbench.codecs.registry import missing_learned_packages

        missing = missing_learned_packages()
        if missing:
            return f"needs {', '.join(missing)}: pip install 'rdbench[learned]'"
        if self.opts.get("device") == "cuda":
            import torch

            if not torch.cuda.is_available():
                return "device=cuda, but torch sees no CUDA device"
        return None

    def _setup_torch(self) -> None:
        import torch

        if self.opts.get("threads", "0") != "0":
            torch.set_num_threads(int(self.opts["threads"]))

    # subclasses: _coder_for(quality) -> (LatentCoder, rate index); _coder_by_id(model_id) for decode
    _coders: dict

    def encode(self, image: np.ndarray, quality) -> bytes:
        coder, rate = self._coder_for(self.check_quality(quality))
        return coder.encode(image, rate)

    def decode(self, data: bytes) -> np.ndarray:
        from rdbench.learned.bitstream import BitstreamError, parse

        header = parse(data)
        coder = self._coder_by_id(header.model_id)
        if coder is None:
            raise BitstreamError(f"bitstream was made by model {header.model_id.hex()}, which is not one of {self.spec.text}'s models")
        return coder.decode(data)

    def extra_measurements(self, image: np.ndarray, quality, data: bytes) -> dict:
        coder, rate = self._coder_for(self.check_quality(quality))
        bits = coder.estimated_bits(image, rate)
        return {"bpp_estimated": bits / (image.shape[0] * image.shape[1])}

    # -- timing ---------------------------------------------------------------------------------
    def warm_up_family(self, quality):
        """The model that codes `quality`: each model is loaded and warmed up once per worker."""
        return self._coder_for(self.check_quality(quality))[0].model_id

    warm_up_side = None  # the whole image (see Codec.warm_up_side)

    def warm_up(self, quality, image: np.ndarray | None = None) -> None:
        """Load the rate point's model (torch and CompressAI imported, checkpoint read, coder
        built), encode and decode the image once, and wait for the device: none of it is timed."""
        self._coder_for(self.check_quality(quality))
        super().warm_up(quality, image)
        self.synchronize()

    def synchronize(self) -> None:
        if self.opts.get("device") == "cuda":
            import torch

            torch.cuda.synchronize()


class LearnedCodec(_LearnedBase):
    name = "learned"
    description = "rdbench or CompressAI checkpoints of the Minnen 2018 family, exact entropy coding"
    options = {
        "checkpoint": Option("", help="one checkpoint file (a variable-rate one gives one quality per rate)"),
        "checkpoints": Option("", help="a folder with one checkpoint per rate point"),
        **RUNTIME_OPTIONS,
    }

    def __init__(self, spec: Spec | str | None = None):
        super().__init__(spec)
        one, many = self.opts["checkpoint"], self.opts["checkpoints"]
        if bool(one) == bool(many):
            raise ValueError(f"codec spec {self.spec.text!r}: give exactly one of checkpoint=FILE or checkpoints=DIR")
        if one:
            if not Path(one).is_file():
                raise ValueError(f"codec spec {self.spec.text!r}: {one}: no such checkpoint file")
            self.paths = [Path(one)]
        else:
            folder = Path(many)
            if not folder.is_dir():
                raise ValueError(f"codec spec {self.spec.text!r}: {many}: no such folder")
            self.paths = sorted(p for p in folder.iterdir() if _is_checkpoint(p))
            if not self.paths:
                raise ValueError(f"codec spec {self.spec.text!r}: {many}: no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)})")
        self._coders = {}

    @cached_property
    def _models(self) -> list:
        """Loaded models in rate order, each with its rate index: [(LoadedModel, rate), ...]."""
        from rdbench.learned.checkpoint import load

        self._setup_torch()
        loaded = [load(p, self.opts["device"]) for p in self.paths]
        if len(loaded) > 1:
            loaded.sort(key=lambda m: (m.model.config.rates[0] or float("inf"), m.source))
        return [(m, r) for m in loaded for r in range(len(m.model.config.rates))]

    @property
    def qualities(self) -> tuple[int, ...]:
        return tuple(range(1, len(self._models) + 1))

    @property
    def configuration(self) -> str:
        """As Codec's, with checkpoint paths made absolute (a.pt and ./a.pt are one model)."""
        opts = {k: str(Path(v).resolve()) if k in ("checkpoint", "checkpoints") and v else v for k, v in self.opts.items()}
        return Spec(self.spec.text, self.name, opts).canonical

    @property
    def quality_range(self) -> tuple[float, float]:
        return (1, len(self._models))

    @cached_property
    def version(self) -> str:
        ids = b"".join(m.model_id for m, _ in self._models)
        return f"{FORMAT_NAME}; models {hashlib.sha256(ids).hexdigest()[:16]}"

    def _coder(self, loaded):
        from rdbench.learned.coding import LatentCoder

        key = loaded.model_id
        if key not in self._coders:
            self._coders[key] = LatentCoder(loaded.model, loaded.model_id, self.opts["device"], self.opts["max_pixels"])
        return self._coders[key]

    def _coder_for(self, quality):
        if quality != int(quality):
            raise ValueError(f"{self.spec.text}: rate point {quality} is not an integer")
        loaded, rate = self._models[int(quality) - 1]
        return self._coder(loaded), rate

    def _coder_by_id(self, model_id: bytes):
        for loaded, _ in self._models:
            if loaded.model_id == model_id:
                return self._coder(loaded)
        return None


class ZooCodec(_LearnedBase):
    description = "CompressAI pretrained weights (qualities 1-8), coded by rdbench's exact coder"
    qualities = tuple(range(1, 9))
    quality_range = (1, 8)
    options = {
        "metric": Option("mse", ("mse", "ms-ssim")),
        **RUNTIME_OPTIONS,
    }

    def __init__(self, spec: Spec | str | None = None):
        super().__init__(spec)
        self._coders = {}

    @property
    def version(self) -> str:
        from rdbench.codecs.zoo import weights_url

        names = []
        for q in self.qualities:
            try:
                names.append(weights_url(self.name, self.opts["metric"], q).rsplit("/", 1)[1])
            except ValueError:
                names.append("-")
        names = ",".join(names)
        return f"{FORMAT_NAME}; compressai zoo {self.name} {self.opts['metric']} weights {hashlib.sha256(names.encode()).hexdigest()[:12]}"

    def _coder_for(self, quality):
        from rdbench.learned.checkpoint import load
        from rdbench.learned.coding import LatentCoder
        from rdbench.codecs.zoo import fetch_weights

        q = int(quality)
        if q not in self._coders:
            self._setup_torch()
            try:
                loaded = load(fetch_weights(self.name, self.opts["metric"], q), self.opts["device"])
            except Exception as exc:
                raise CodecError(str(exc)) from exc
            self._coders[q] = LatentCoder(loaded.model, loaded.model_id, self.opts["device"], self.opts["max_pixels"])
        return self._coders[q], 0

    def _coder_by_id(self, model_id: bytes):
        for coder in self._coders.values():
            if coder.model_id == model_id:
                return coder
        for q in self.qualities:  # a bitstream of a quality not used yet in this process
            coder, _ = self._coder_for(q)
            if coder.model_id == model_id:
                return coder
        return None


def zoo_codec(spec: Spec) -> ZooCodec:
    codec_cls = type(f"Zoo_{spec.name}", (ZooCodec,), {"name": spec.name})
    return codec_cls(spec)
