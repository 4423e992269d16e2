"""Any model with CompressAI's compress/decompress/forward contract as a codec (DESIGN.md seam 9).

- `compressai:arch=NAME,checkpoint=FILE`: an architecture of CompressAI's model registry
  (`bmshj2018-factorized`, `cheng2020-anchor`, `mbt2018-vbr`, ... and whatever `register_model`
  added: `import=MODULE` imports a module first). `checkpoints=DIR`: one checkpoint per rate
  point, quality i the i-th file by name. Without a checkpoint: CompressAI's zoo weights,
  qualities as the zoo numbers them, `metric=mse|ms-ssim`, fetched and verified by codecs/zoo.py.
  The `-vbr` architectures have one model and a continuous quality: eval_model's quantization
  step (`--vbr_quantstep`, 1 = the finest the models were trained for, 10 = the coarsest).
- `model:class=MODULE:CLASS,checkpoint=FILE` (or `checkpoints=DIR`): a researcher's own class,
  importable from PYTHONPATH, or `class=NAME` for an entry point NAME in the group
  `rdbench.models`. Built with the class's `from_state_dict` when it has one, else `CLASS()`
  then `load_state_dict` (learned/any_model.py).

This module: the two spec families, which class and which checkpoints. What is done with them
(loading, the contract check, coding, bpp_estimated, complexity): codecs/model_codec.py.

Bitstreams are the model's own strings in learned/container.py's container (bpp counts every byte).
Padding is eval_model's by default (`padding=zero`: zeros, centred, to a multiple of `stride=64`);
`padding=edge` repeats the border pixels instead. Reconstructions are eval_model's too:
round(clamp(x_hat, 0, 1) x 255).

What these codecs do NOT promise, unlike rdbench's own family (`learned:`, exact integer
coding): CompressAI computes its entropy parameters in floating point, which can differ between
thread counts, CPUs and GPUs, so a stream may not decode where it was not made. `rdbench run
--check-decode` measures whether it does.

Everything is checked when the codec is loaded, before any work: the module imports, the class
or architecture exists, each checkpoint fits it, and the model's compress and decompress return
what the contract says on a small image.
"""

from __future__ import annotations

import difflib
import importlib

from rdbench.codecs.base import Option, Spec
from rdbench.codecs.model_codec import (  # noqa: F401 (public names of this module before the split)
    CONTRACT_SIDE, FORMAT_NAME, MODEL_OPTIONS, VBR_QUANT_STEPS, VBR_RANGE, ModelCodec, _RatePoint,
)

MODEL_ENTRY_POINTS = "rdbench.models"

NOT_IMAGE_MODELS = ("compressai.models.video", "compressai.models.pointcloud")


def architectures() -> dict:
    """The image models of CompressAI's model registry, {name: class} (importing
    compressai.models fills it; a user's `register_model` adds to it). Its video and point-cloud
    models are left out: they do not code an RGB image."""
    import compressai.models  # noqa: F401
    from compressai.registry import MODELS

    return {name: cls for name, cls in MODELS.items() if not cls.__module__.startswith(NOT_IMAGE_MODELS)}


class CompressAICodec(ModelCodec):
    name = "compressai"
    description = "any architecture of CompressAI's registry: checkpoint(s) or zoo weights, CompressAI's own entropy coding"
    options = {
        "arch": Option("", help="a CompressAI registry name (see `rdbench codecs`)"),
        "metric": Option("mse", ("mse", "ms-ssim"), help="zoo weights (no checkpoint): what they were trained for"),
        "import": Option("", help="a module to import first (one that calls compressai's register_model)"),
        **MODEL_OPTIONS,
    }

    def __init__(self, spec: Spec | str | None = None):
        super().__init__(spec)
        if self.opts["import"]:
            _import(self.opts["import"], self._error)
        known = architectures()
        arch = self.opts["arch"]
        if not arch:
            raise self._error(f"give arch=NAME, one of: {', '.join(sorted(known))}")
        if arch not in known:
            close = difflib.get_close_matches(arch, list(known), n=1, cutoff=0.6)
            guess = f"did you mean {close[0]}? " if close else ""
            raise self._error(f"arch={arch!r} is not in CompressAI's model registry; {guess}known: {', '.join(sorted(known))}")
        self.arch, self._cls = arch, known[arch]
        self._model_name = f"compressai {arch}"
        paths = self._checkpoint_paths(required=False)
        if paths:
            if self.vbr and len(paths) > 1:
                raise self._error(f"a -vbr model has one checkpoint for every rate; {self.opts['checkpoints']} holds {len(paths)}")
            self._points = [_RatePoint(str(p), lambda p=p: p) for p in paths]
        else:
            self._zoo = True
            self._points = self._zoo_points()

    def _zoo_points(self) -> list[_RatePoint]:
        from rdbench.codecs.zoo import fetch_weights, zoo_qualities

        metric = self.opts["metric"]
        qualities = zoo_qualities(self.arch, metric)
        if not qualities:
            raise self._error(f"CompressAI's zoo has no {self.arch} weights for metric {metric}; give checkpoint=FILE")
        return [_RatePoint(f"zoo {self.arch} {metric} {q}", lambda q=q: fetch_weights(self.arch, metric, q)) for q in qualities]

    def prefetch(self, qualities) -> None:
        """Have the zoo weights a run needs in the cache before any work (CodecUnavailable if not)."""
        if not self._zoo:
            return
        indexes = {0} if self.vbr else {int(self.check_quality(q)) - 1 for q in (qualities or self.qualities)}
        for i in sorted(indexes):
            self._points[i].path()


class UserModelCodec(ModelCodec):
    name = "model"
    description = "a researcher's own model class with CompressAI's compress/decompress/forward contract"
    options = {
        "class": Option("", help=f"MODULE:CLASS importable from PYTHONPATH, or an entry point of {MODEL_ENTRY_POINTS}"),
        **MODEL_OPTIONS,
    }

    def __init__(self, spec: Spec | str | None = None):
        super().__init__(spec)
        target = self.opts["class"]
        if not target:
            raise self._error(f"give class=MODULE:CLASS (or the name of an entry point in {MODEL_ENTRY_POINTS})")
        if ":" not in target:
            target = self._entry_point(target)
        module_name, _, class_name = target.partition(":")
        module = _import(module_name, self._error)
        obj = module
        for part in class_name.split("."):
            if not hasattr(obj, part):
                names = [n for n in dir(module) if not n.startswith("_")]
                close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
                raise self._error(f"module {module_name} has no {class_name}" + (f"; did you mean {close[0]}?" if close else ""))
            obj = getattr(obj, part)
        if not isinstance(obj, type):
            raise self._error(f"{target} is a {type(obj).__name__}, not a class")
        missing = [m for m in ("compress", "decompress", "forward") if not callable(getattr(obj, m, None))]
        if missing:
            raise self._error(f"{target} has no {', '.join(missing)}: not CompressAI's model contract")
        self._cls = obj
        self._model_name = f"model {target}"
        self._points = [_RatePoint(str(p), lambda p=p: p) for p in self._checkpoint_paths(required=True)]

    def _entry_point(self, name: str) -> str:
        from importlib.metadata import entry_points

        found = {ep.name: ep.value for ep in entry_points(group=MODEL_ENTRY_POINTS)}
        if name not in found:
            close = difflib.get_close_matches(name, list(found), n=1, cutoff=0.6)
            raise self._error(f"class={name!r}: not MODULE:CLASS, and no entry point of that name in {MODEL_ENTRY_POINTS}"
                              + (f" (there: {', '.join(sorted(found))})" if found else "")
                              + (f"; did you mean {close[0]}?" if close else ""))
        return found[name]


def _import(module_name: str, error):
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises as it runs
        raise error(f"cannot import module {module_name} ({type(exc).__name__}: {exc})") from None
