"""The registry's entries for VIF, FSIM, NLPD, IW-SSIM and DISTS (rdbench/metrics/iqa.py computes
them), kept apart from registry.py's own list; registry.py imports this module, so they are in
REGISTRY wherever it is. Standard library only, as registry.py."""

from __future__ import annotations

from rdbench.metrics.registry import Metric, MetricColumn, WeightFile, register

_IQA = "rdbench.metrics.iqa"
_Y = "BT.709 luma Y in [0, 1], unrounded (JPEG AI's plane)"
_INSTALL = "pip install 'rdbench[iqa]' (torch, torchvision, piq, IQA_pytorch)"

register(Metric(
    "vif",
    (MetricColumn("vif", "", "VIF", "VIF", f"VIFp, pixel-domain visual information fidelity (4 scales, sigma_n^2 = 2), "
                  f"on {_Y}; one of JPEG AI's metrics"),),
    "higher", "IQA_pytorch (PyPI), float32", "IQA_pytorch VIFs Y709", f"{_IQA}:prepare_vif",
    "Sheikh & Bovik 2006; LIVE's vifp_mscale.m", requires=("IQA_pytorch", "torch"), needs_torch=True,
    distribution="IQA_pytorch", install=_INSTALL))
register(Metric(
    "fsim",
    (MetricColumn("fsim", "", "FSIM", "FSIM", "FSIMc, feature similarity with chromatic term, on RGB (as JPEG AI's "
                  "framework runs it); one of JPEG AI's metrics"),),
    "higher", "piq (PyPI), float64", "piq fsim rgb", f"{_IQA}:prepare_fsim",
    "Zhang, Zhang, Mou & Zhang 2011; the authors' FeatureSIM.m", requires=("piq", "torch"), needs_torch=True,
    distribution="piq", install=_INSTALL))
register(Metric(
    "nlpd",
    (MetricColumn("nlpd", "", "NLPD", "NLPD", f"normalised Laplacian pyramid distance (6 levels), on {_Y}; one of "
                  "JPEG AI's metrics"),),
    "lower", "IQA_pytorch (PyPI), float64", "IQA_pytorch NLPD Y709", f"{_IQA}:prepare_nlpd",
    "Laparra, Ballé, Berardino & Simoncelli 2016", requires=("IQA_pytorch", "torch"), needs_torch=True,
    distribution="IQA_pytorch", install=_INSTALL))
register(Metric(
    "iw_ssim",
    (MetricColumn("iw_ssim", "", "IW-SSIM", "IW-SSIM", f"information-weighted SSIM (5 scales), on {_Y}; one of "
                  "JPEG AI's metrics"),),
    "higher", "piq (PyPI), float64", "piq information_weighted_ssim Y709", f"{_IQA}:prepare_iw_ssim",
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
