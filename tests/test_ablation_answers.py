"""The ablation summary gives one answer per question (issue 23): one MS-SSIM dB convention and one
interval method everywhere, named; dominated rate points explained; an empty keep_fractions."""

from __future__ import annotations

from pathlib import Path

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


SHIPPED = Path(__file__).resolve().parent.parent / "results" / "ablation"
PAIR = """
name = "mixture"
[model]
N = 64
M = 64
[[cells]]
variant = "joint"
k = 5
K = [1, 3]
[rates]
lambdas = [0.0018, 0.0067, 0.0130, 0.0483, 0.0932]
[training]
data = "{data}"
steps = 2000
seeds = [0, 1, 2]
[evaluation]
reference = "joint-k5"
"""


@pytest.fixture(scope="module")
def shipped_pair(tmp_path_factory):
    """The shipped ablation's real rows of joint-k5 and joint-k5-K3 (3 seeds), on 8 of its 24 images,
    as the grid of those two cells: the mixture question is also the per-cell row of joint-k5-K3."""
    from rdbench.ablation.config import load
    from rdbench.ablation.files import cell_rows, published_curves

    rows = cell_rows(load(SHIPPED / "config.toml"), SHIPPED)
    images = sorted(rows["image"].unique())[:8]
    rows = rows[rows["codec"].isin(["joint-k5", "joint-k5-K3"]) & rows["image"].isin(images)].reset_index(drop=True)
    config = parse(PAIR.format(data=tmp_path_factory.mktemp("data")))
    facts = {c.name: {"params": None, "steps": 2000, "complexity": None} for c in config.cells}
    return config, rows, facts, published_curves(config)


def _summary(shipped_pair, rows=None):
    from rdbench.ablation.summary import summarize

    config, shipped_rows, facts, published = shipped_pair
    return summarize(config, shipped_rows if rows is None else rows, facts, published, "test")


def test_one_question_has_one_answer_everywhere(shipped_pair):
    doc = _summary(shipped_pair)
    question = "3-Gaussian mixture vs one Gaussian (k = 5)"
    for metric, used in (("psnr_rgb", "psnr_rgb"), ("ms_ssim_db", "ms_ssim_db_of_mean")):
        cell = doc.tables[f"ablation_{metric}.csv"].set_index("cell").loc["joint-k5-K3"]
        seeds = doc.tables["ablation_seeds.csv"]
        seed_row = seeds[(seeds["question"] == question) & (seeds["metric"] == used)].iloc[0]
        asked = doc.tables["ablation_questions.csv"].set_index("question").loc[question]
        for per_cell, in_seeds, in_questions in (("bd_rate_mean", "bd_rate_mean", f"{metric} ours (%)"),
                                                 ("bd_rate_ci_low", "bd_rate_ci_low", f"{metric} CI low (%)"),
                                                 ("bd_rate_ci_high", "bd_rate_ci_high", f"{metric} CI high (%)")):
            assert cell[per_cell] == seed_row[in_seeds] == asked[in_questions]
        assert cell["verdict"] == seed_row["verdict"] == asked[f"{metric} verdict"]
        # the charts of the section name the convention they are on
        for figure in (f"bd_{metric}.png", f"rd_{metric}.png", f"rd_{metric}_cells.png", f"tradeoff_{metric}.png"):
            fig = doc.figures[figure][0]
            titles = " ".join(t.get_text() for t in [fig._suptitle, *(ax.title for ax in fig.axes)] if t is not None)
            assert used in titles.replace("\n", " "), (figure, titles)
    # each cell keeps one colour and marker in every chart of the summary
    from matplotlib.colors import to_hex

    for cell in ("joint-k5", "joint-k5-K3"):
        looks = set()
        for figure in ("rd_psnr_rgb.png", "rd_psnr_rgb_cells.png", "tradeoff_psnr_rgb.png"):
            lines = []
            for ax in doc.figures[figure][0].axes:
                lines += [line for line in ax.get_lines() if line.get_label() == cell]
                lines += [c.lines[0] for c in ax.containers if c.get_label() == cell]  # errorbar points
            assert lines, (figure, cell)
            looks |= {(to_hex(line.get_color()), line.get_marker()) for line in lines}
        assert len(looks) == 1, (cell, looks)
    assert "on `ms_ssim_db_of_mean` (dB of the mean MS-SSIM)" in doc.text
    assert "every `ms_ssim_db` column (ours, its interval and verdict, paper, zoo) is on `ms_ssim_db_of_mean`" in doc.text


def test_method_is_said_when_every_question_fails(shipped_pair):
    rows = shipped_pair[1]
    doc = _summary(shipped_pair, rows[rows["quality"] <= 3])  # 3 rate points: BD refuses every pair
    seeds = doc.tables["ablation_seeds.csv"]
    assert seeds["bd_rate_mean"].isna().all() and (seeds["method"] == "").all()
    assert "Method: ." not in doc.text
    assert "Method: mean of per-seed BD-rate (pchip, operational points); 95% t interval over seeds and images" in doc.text


def test_dominated_points_are_named_with_what_dominates_them_and_the_cure(shipped_pair):
    import pandas as pd

    rows = shipped_pair[1].copy()
    # a barely trained K3 model: rate points 3..5 cost more bits than point 2 for the same image
    k3 = rows["codec"] == "joint-k5-K3"
    at2 = rows[k3 & (rows["quality"] == 2)].set_index(["seed", "image"])
    for column in ("psnr_rgb", "ms_ssim", "ms_ssim_db"):
        key = pd.MultiIndex.from_frame(rows.loc[k3 & (rows["quality"] > 2), ["seed", "image"]])
        rows.loc[k3 & (rows["quality"] > 2), column] = at2[column].reindex(key).to_numpy()
    doc = _summary(shipped_pair, rows)
    expected = ("joint-k5-K3: point 3 (lambda 0.013), point 4 (lambda 0.0483), point 5 (lambda 0.0932) are "
                "dominated by point 2 (lambda 0.0067)")
    note = doc.tables["ablation_psnr_rgb.csv"].set_index("cell").loc["joint-k5-K3", "verdict"]
    assert "BD needs at least 4 rate points" in note and expected in note and "train longer" in note
    assert "more lambdas" in note
    assert f"- Dominated rate points: psnr_rgb: {expected}" in doc.text
    asked = doc.tables["ablation_questions.csv"].iloc[0]
    assert expected in asked["psnr_rgb note"]
