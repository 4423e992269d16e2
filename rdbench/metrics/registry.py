"""The registry of distortion metrics: one entry per metric, and nothing else names them.

Each `Metric` declares its name (what `--metric` takes), the result columns it fills, which
direction is better, its unit, the library that computes it and the implementation identity
written into result rows (`implementation`, part of a value's identity as a codec's version is),
what it needs (Python modules, torch, network weights) with an install hint, and where its code
is (`factory`, "module:function", imported only when the metric is used).

This module imports nothing but the standard library: `bench/columns.py` builds the column table
from it, and the command line lists metrics without loading any of them.

A factory is called once per original image, `factory(original) -> Prepared`, and the prepared
object measures any number of reconstructions of it: `prepared.measure(decoded) -> {column: value}`
(a value NaN when the metric cannot be computed, with the reason in `prepared.reason`).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass


@functools.cache
def installed_version(distribution: str) -> str:
    """The installed version of a Python distribution, of a Debian package ('deb:NAME'), or of a
    program that prints it ('program:NAME [ARGS]': the first 'N.N[.N]' in its output); '?' if unknown."""
    if distribution.startswith("program:"):
        try:
            done = subprocess.run(distribution[8:].split(), capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return "?"
        found = re.search(r"\b([0-9]+\.[0-9]+(?:\.[0-9]+)?)\b", done.stdout + done.stderr)
        return found.group(1) if found else "?"
    if distribution.startswith("deb:"):
        try:
            done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", distribution[4:]], capture_output=True,
                                  text=True, timeout=30)
            return done.stdout.strip() or "?"
        except (OSError, subprocess.SubprocessError):
            return "?"
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


@dataclass(frozen=True)
class MetricColumn:
    name: str
    unit: str  # "" for a ratio without unit
    label: str  # axis label or table heading
    title: str  # the short name in prose
    description: str


@dataclass(frozen=True)
class WeightFile:
    name: str  # the file name in the weights folder
    url: str  # where its authors publish it
    sha256: str  # its SHA-256, or the published prefix of it


@dataclass(frozen=True)
class Metric:
    name: str
    columns: tuple[MetricColumn, ...]  # the first is the metric's own value
    direction: str  # "higher" or "lower": which values are better
    library: str  # what computes it, in words
    implementation: str  # written into result rows: two implementations are never mixed
    factory: str  # "module:function" building a prepared measurer from an original image
    reference: str  # the paper or tool that defines it
    requires: tuple[str, ...] = ()  # Python modules it imports
    binaries: tuple[str, ...] = ()  # programs it runs (found on PATH)
    distribution: str = ""  # the PyPI (or Debian) package whose version is part of `identity`
    needs_torch: bool = False
    weight_files: tuple[WeightFile, ...] = ()  # network weights it loads (rdbench/metrics/weights.py)
    install: str = ""  # how to get what `requires` names
    default: bool = False  # in the default set of `rdbench run`

    @property
    def weights(self) -> bool:
        return bool(self.weight_files)

    @property
    def unit(self) -> str:
        return self.columns[0].unit

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def missing(self) -> str | None:
        """None when this metric can run here, else why not (with the install hint)."""
        absent = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if absent:
            return f"metric {self.name!r} needs the Python module(s) {', '.join(absent)}: {self.install}"
        absent = [b for b in self.binaries if shutil.which(b) is None]
        if absent:
            return f"metric {self.name!r} needs the program(s) {', '.join(absent)} on PATH: {self.install}"
        return None

    def identity(self) -> str:
        """The implementation and the installed version of its library ('psnr_hvsm 0.3.0 (...)')."""
        if not self.distribution:
            return self.implementation
        return f"{self.implementation} {installed_version(self.distribution)}"

    def load(self):
        """The factory function (imports the metric's implementation)."""
        module, _, function = self.factory.partition(":")
        return getattr(importlib.import_module(module), function)


def parse_versions(text: str) -> dict[str, str]:
    """{metric name: implementation} from a `metric_versions` cell ('psnr_rgb=rdbench-psnr/1; ...')."""
    pairs = (part.partition("=") for part in str(text or "").split("; ") if "=" in part)
    return {name.strip(): identity.strip() for name, _, identity in pairs}


def format_versions(versions: dict[str, str]) -> str:
    return "; ".join(f"{name}={identity}" for name, identity in versions.items())


REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if metric.name in REGISTRY:
        raise ValueError(f"metric {metric.name!r} registered twice")
    if metric.direction not in ("higher", "lower"):
        raise ValueError(f"metric {metric.name!r}: direction {metric.direction!r}, expected 'higher' or 'lower'")
    REGISTRY[metric.name] = metric
    return metric


class UnknownMetric(ValueError):
    """A metric name that is not in the registry; the message suggests the closest names."""


def get(name: str) -> Metric:
    metric = REGISTRY.get(name)
    if metric is None and name in NOT_YET:
        raise UnknownMetric(f"metric {name!r} is not in this rdbench yet: {NOT_YET[name]}")
    if metric is None:
        close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownMetric(f"unknown metric {name!r}{hint} (known: {', '.join(REGISTRY)}; `rdbench metrics` lists them)")
    return metric


def parse(text: str | None) -> tuple[Metric, ...]:
    """The metrics of a `--metric` value ('psnr_rgb,ms_ssim'; None or '' for the default set), in
    the registry's order, each once. Raises UnknownMetric for a name not in the registry."""
    if not text:
        return DEFAULT
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UnknownMetric(f"--metric {text!r} names no metric")
    chosen = {get(n).name for n in names}
    return tuple(m for m in REGISTRY.values() if m.name in chosen)


def by_column(column: str) -> Metric | None:
    """The metric that fills result column `column` (None for a column of no metric)."""
    for metric in REGISTRY.values():
        if column in metric.column_names:
            return metric
    return None


def direction(column: str) -> str:
    """'higher' or 'lower': which values of a metric column are better ('higher' for unknown columns)."""
    metric = by_column(column)
    return metric.direction if metric else "higher"


# ---------------------------------------------------------------------------------------------
# The metrics. Order here is the order of result columns.

_CLASSIC = "rdbench.metrics.classic"
_OURS = "rdbench (NumPy/OpenCV, float64)"

register(Metric(
    "psnr_rgb",
    (MetricColumn("psnr_rgb", "dB", "PSNR RGB (dB)", "PSNR-RGB", "PSNR over all pixels and the three channels, peak 255"),),
    "higher", _OURS, "rdbench-psnr/1", f"{_CLASSIC}:prepare_psnr_rgb", "10 log10(255^2 / MSE)", default=True))
register(Metric(
    "psnr_y",
    (MetricColumn("psnr_y", "dB", "PSNR Y (dB)", "PSNR-Y", "PSNR of BT.601 luma"),),
    "higher", _OURS, "rdbench-psnr/1", f"{_CLASSIC}:prepare_psnr_y", "PSNR of BT.601 full-range luma, unrounded",
    default=True))
register(Metric(
    "psnr_ycbcr",
    (MetricColumn("psnr_ycbcr", "dB", "PSNR YCbCr (dB)", "PSNR-YCbCr", "(6 PSNR_Y + PSNR_Cb + PSNR_Cr) / 8 on BT.709 "
                  "full-range YCbCr, peak 255 (JPEG AI's and MPEG's weighting)"),),
    "higher", _OURS, "rdbench-psnr/1", f"{_CLASSIC}:prepare_psnr_ycbcr",
    "JPEG AI common test conditions: 6:1:1 weighted PSNR on BT.709 YCbCr", default=True))
register(Metric(
    "ms_ssim",
    (MetricColumn("ms_ssim", "", "MS-SSIM", "MS-SSIM", "MS-SSIM (linear, 0..1), per channel then averaged"),
     MetricColumn("ms_ssim_db", "dB", "MS-SSIM (dB)", "MS-SSIM (dB)", "-10 log10(1 - MS-SSIM); on a curve, the mean of "
                  "per-image dB values (see ms_ssim_db_of_mean)")),
    "higher", _OURS, "rdbench-ms_ssim/1", f"{_CLASSIC}:prepare_ms_ssim",
    "Wang, Simoncelli & Bovik 2003, with pytorch-msssim's conventions (CompressAI's)", default=True))

register(Metric(
    "psnr_hvs",
    (MetricColumn("psnr_hvs", "dB", "PSNR-HVS (dB)", "PSNR-HVS", "PSNR-HVS (Egiazarian et al. 2006) of BT.601 luma "
                  "(8-bit rounded, as the reference), over whole 8x8 blocks"),),
    "higher", "psnr_hvsm (PyPI, NumPy backend)", "psnr_hvsm", "rdbench.metrics.hvs:prepare_psnr_hvs",
    "Egiazarian, Astola, Ponomarenko et al. 2006; Ponomarenko's psnrhvsm.m", requires=("psnr_hvsm",),
    distribution="psnr_hvsm", install="pip install psnr-hvsm (or pip install 'rdbench[metrics]')"))
register(Metric(
    "psnr_hvs_m",
    (MetricColumn("psnr_hvs_m", "dB", "PSNR-HVS-M (dB)", "PSNR-HVS-M", "PSNR-HVS-M (Ponomarenko et al. 2007) of "
                  "BT.601 luma (8-bit rounded, as the reference), over whole 8x8 blocks; one of JPEG AI's metrics"),),
    "higher", "psnr_hvsm (PyPI, NumPy backend)", "psnr_hvsm", "rdbench.metrics.hvs:prepare_psnr_hvs_m",
    "Ponomarenko et al. 2007; Ponomarenko's psnrhvsm.m", requires=("psnr_hvsm",),
    distribution="psnr_hvsm", install="pip install psnr-hvsm (or pip install 'rdbench[metrics]')"))
register(Metric(
    "butteraugli",
    (MetricColumn("butteraugli", "", "Butteraugli (max)", "Butteraugli", "Butteraugli distance, max-norm: the first "
                  "number libjxl's butteraugli_main prints (intensity target 80 nits)"),
     MetricColumn("butteraugli_3norm", "", "Butteraugli 3-norm", "Butteraugli 3-norm", "Butteraugli 3-norm as "
                  "butteraugli_main prints it (6 decimals)")),
    "lower", "libjxl butteraugli_main (Debian libjxl-devtools)", "butteraugli_main",
    "rdbench.metrics.butteraugli:prepare_butteraugli", "libjxl tools/butteraugli_main (the reference)",
    binaries=("butteraugli_main",), distribution="deb:libjxl-devtools",
    install="apt-get install libjxl-devtools (Debian/Ubuntu), or build libjxl's tools"))
register(Metric(
    "ssimulacra2",
    (MetricColumn("ssimulacra2", "", "SSIMULACRA 2", "SSIMULACRA 2", "SSIMULACRA 2.1 score (100: identical), as "
                  "the reference program `ssimulacra2` prints it (8 decimals)"),),
    "higher", "the reference program ssimulacra2 (libjxl tools / cloudinary/ssimulacra2)", "ssimulacra2 (reference)",
    "rdbench.metrics.ssimulacra2_tool:prepare_ssimulacra2", "Sneyers 2022-2023, libjxl tools/ssimulacra2",
    binaries=("ssimulacra2",), distribution="program:ssimulacra2",
    install="build libjxl's tools (libjxl >= 0.8: tools/ssimulacra2) or github.com/cloudinary/ssimulacra2, and put "
            "`ssimulacra2` on PATH"))
register(Metric(
    "vmaf",
    (MetricColumn("vmaf", "", "VMAF", "VMAF", "VMAF, model vmaf_v0.6.1, by libvmaf's `vmaf` tool on one frame of "
                  "10-bit 4:4:4 BT.709 full-range YUV (JPEG AI's convention); one of JPEG AI's metrics"),),
    "higher", "libvmaf's vmaf tool (Netflix)", "libvmaf vmaf_v0.6.1 yuv444p10 bt709",
    "rdbench.metrics.vmaf_tool:prepare_vmaf", "Netflix VMAF (Li et al. 2016), JPEG AI CTC / jpeg-ai-qaf convention",
    binaries=("vmaf",), distribution="program:vmaf --version",
    install="build libvmaf (github.com/Netflix/vmaf, libvmaf/: meson + ninja) or take its release binary, and put "
            "`vmaf` on PATH"))

register(Metric(
    "lpips",
    (MetricColumn("lpips", "", "LPIPS", "LPIPS", "LPIPS v0.1 with AlexNet features (Zhang et al. 2018), the "
                  "authors' lpips package, float32 on CPU, RGB scaled to [-1, 1]"),),
    "lower", "lpips (PyPI, the authors' package) with torchvision's AlexNet", "lpips v0.1 alex",
    "rdbench.metrics.lpips_metric:prepare_lpips", "Zhang, Isola, Efros, Shechtman & Wang 2018",
    requires=("lpips", "torch", "torchvision"), needs_torch=True, distribution="lpips",
    weight_files=(WeightFile("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                             "7be5be79"),),
    install="pip install 'rdbench[lpips]' (torch, torchvision, lpips)"))

# JPEG AI's VIF, FSIM, NLPD, IW-SSIM, and DISTS: rdbench/metrics/iqa.py says why each library
_IQA = "rdbench.metrics.iqa"
_Y = "BT.709 luma Y in [0, 1], unrounded (JPEG AI's plane)"
_INSTALL = "pip install 'rdbench[iqa]' (torch, torchvision, piq, IQA_pytorch)"

register(Metric(
    "vif",
    (MetricColumn("vif", "", "VIF", "VIF", f"VIFp, pixel-domain visual information fidelity (4 scales, sigma_n^2 = 2), "
                  f"on {_Y}; one of JPEG AI's metrics"),),
    "higher", "IQA_pytorch (PyPI), float32: JPEG AI's framework's VIF, LIVE's algorithm to 1.0e-3 on Kodak "
    "(piq's vif_p, float64: 8.7e-7)",
    "IQA_pytorch VIFs Y709", f"{_IQA}:prepare_vif",
    "Sheikh & Bovik 2006; LIVE's vifp_mscale.m", requires=("IQA_pytorch", "torch"), needs_torch=True,
    distribution="IQA_pytorch", install=_INSTALL))
register(Metric(
    "fsim",
    (MetricColumn("fsim", "", "FSIM", "FSIM", "FSIMc, feature similarity with chromatic term, on RGB (as JPEG AI's "
                  "framework runs it); one of JPEG AI's metrics"),),
    "higher", "piq (PyPI), float64: the authors' MATLAB values to their 4 decimals", "piq fsim rgb",
    f"{_IQA}:prepare_fsim",
    "Zhang, Zhang, Mou & Zhang 2011; the authors' FeatureSIM.m", requires=("piq", "torch"), needs_torch=True,
    distribution="piq", install=_INSTALL))
register(Metric(
    "nlpd",
    (MetricColumn("nlpd", "", "NLPD", "NLPD", f"normalised Laplacian pyramid distance (6 levels), on {_Y}; one of "
                  "JPEG AI's metrics"),),
    "lower", "IQA_pytorch (PyPI), float64: JPEG AI's framework's NLPD, up to 0.028 from the MATLAB values",
    "IQA_pytorch NLPD Y709", f"{_IQA}:prepare_nlpd",
    "Laparra, Ballé, Berardino & Simoncelli 2016", requires=("IQA_pytorch", "torch"), needs_torch=True,
    distribution="IQA_pytorch", install=_INSTALL))
register(Metric(
    "iw_ssim",
    (MetricColumn("iw_ssim", "", "IW-SSIM", "IW-SSIM", f"information-weighted SSIM (5 scales), on {_Y}; one of "
                  "JPEG AI's metrics"),),
    "higher", "piq (PyPI), float64: the MATLAB value on goldhill to 1e-15",
    "piq information_weighted_ssim Y709", f"{_IQA}:prepare_iw_ssim",
    "Wang & Li 2011; the authors' iwssim.m", requires=("piq", "torch"), needs_torch=True, distribution="piq",
    install=_INSTALL))
register(Metric(
    "dists",
    (MetricColumn("dists", "", "DISTS", "DISTS", "DISTS (Ding et al. 2020), the authors' DISTS_pytorch with "
                  "torchvision's VGG16, float32 on RGB in [0, 1], full resolution"),),
    "lower", "DISTS_pytorch (PyPI, the authors' package) with torchvision's VGG16", "DISTS_pytorch vgg16",
    f"{_IQA}:prepare_dists", "Ding, Ma, Wang & Simoncelli 2020", requires=("DISTS_pytorch", "torch", "torchvision"),
    needs_torch=True, distribution="DISTS_pytorch",
    weight_files=(WeightFile("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                             "397923af"),),
    install="pip install 'rdbench[dists]' (torch, torchvision, DISTS_pytorch)"))

DEFAULT: tuple[Metric, ...] = tuple(m for m in REGISTRY.values() if m.default)

# Metrics asked for (issue 24) that this rdbench cannot compute yet, and why: `--metric` names the
# reason rather than "unknown", and `rdbench metrics` lists them.
NOT_YET: dict[str, str] = {}  # every metric the issue names is in the registry now

# JPEG AI's common test conditions report BD-rates over these seven metrics and their mean (the
# names are rdbench's; a name not in the registry is one rdbench cannot compute yet, and every
# summary names it). MS-SSIM's BD is taken on its dB column, as rdbench's headline figures are.
JPEG_AI_METRICS = ("ms_ssim", "vif", "fsim", "nlpd", "iw_ssim", "vmaf", "psnr_hvs_m")
BD_COLUMN = {"ms_ssim": "ms_ssim_db"}  # the column BD uses where it is not a metric's first


def bd_column(name: str) -> str | None:
    """The result column BD uses for metric `name`; None for a name the registry lacks."""
    metric = REGISTRY.get(name)
    return BD_COLUMN.get(name, metric.columns[0].name) if metric else None
