"""The ablation summary gives one answer per question (issue 23): one MS-SSIM dB convention and one
interval method everywhere, named; dominated rate points explained; an empty keep_fractions."""

from __future__ import annotations

import pytest

from rdbench.ablation.config import AblationConfigError, parse

GRID = """
name = "answers"
[model]
N = 16
M = 16
[[cells]]
variant = "mean-scale"
[[cells]]
variant = "joint"
k = 5
[rates]
lambdas = [0.001, 0.01, 0.05, 0.2]
[training]
data = "{data}"
steps = 8
seeds = [0, 1]
{extra}
[evaluation]
reference = "joint-k5"
"""


def test_empty_keep_fractions_means_no_learning_curve_checkpoints(tmp_path):
    config = parse(GRID.format(data=tmp_path, extra="keep_fractions = []"))
    assert config.training.keep_fractions == () and config.training.kept_steps == ()
    with pytest.raises(AblationConfigError, match=r"seeds must be a non-empty list"):
        parse(GRID.format(data=tmp_path, extra="").replace("seeds = [0, 1]", "seeds = []"))
    with pytest.raises(AblationConfigError, match=r"keep_fractions must be a list"):
        parse(GRID.format(data=tmp_path, extra='keep_fractions = "none"'))
