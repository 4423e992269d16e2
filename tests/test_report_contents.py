"""A report says what it compared, and draws each codec one way (issue 23): report.html carries the
anchor, BD method, convention, speed table and run record; one style map per report; user labels
and short legends."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def rdbench(*args):
    return subprocess.run([sys.executable, "-m", "rdbench", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)


@pytest.fixture(scope="module")
def two_codecs(tmp_path_factory, kodak_dir):
    """A real run: JPEG (labelled in its spec) and WebP at four qualities on two 128x96 Kodak crops,
    with its report against the measured JPEG (so the per-image view exists)."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("two_codecs")
    (root / "crops").mkdir()
    for n in (3, 19):
        pixels = np.asarray(Image.open(kodak_dir / f"kodim{n:02d}.png").convert("RGB"))[:96, :128]
        Image.fromarray(np.ascontiguousarray(pixels)).save(root / "crops" / f"k{n:02d}.png")
    out = rdbench("run", "--dataset", root / "crops", "--codec", "jpeg:label=Baseline JPEG", "--codec", "webp",
                  "--quality", "20,40,60,80", "--out", root / "res", "--workers", 1, "--no-progress", "--anchor", "jpeg")
    assert out.returncode == 0, out.stderr
    return root / "res"


def _plotly_traces(page: str) -> list[dict]:
    """Every trace of every plotly figure of a report.html page."""
    traces = []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', page, re.S):
        traces += json.loads(match.group(1))
    return traces


def test_html_report_says_what_it_compared(two_codecs):
    page = (two_codecs / "report.html").read_text()
    text = re.sub(r"<[^>]+>", "", page)
    assert "Anchor Baseline JPEG (measured)" in text and "BD method pchip" in text
    assert "metric column ms_ssim_db (mean of per-image MS-SSIM dB)" in text  # the convention
    assert "Coding speed" in text and "enc" in text.lower() and "Runs that made these results" in text
    assert "rdbench run --dataset" in text  # the run record
    assert "Failed items" in text and "None: every item was measured." in text


def test_a_codec_keeps_its_style_in_every_chart_of_a_report(two_codecs):
    traces = _plotly_traces((two_codecs / "report.html").read_text())
    looks: dict = {}
    for trace in traces:
        look = (trace["line"]["color"], trace["line"].get("dash"), trace["marker"]["symbol"])
        looks.setdefault(trace["name"], set()).add(look)
    assert {"Baseline JPEG", "webp"} <= set(looks)
    assert all(len(v) == 1 for v in looks.values()), looks  # RD and per-image plots alike
    assert len({next(iter(v)) for v in looks.values()}) == len(looks)  # and two codecs never look alike
    # the matplotlib charts of the same report use the same map
    from rdbench.analysis.plots import rd_figure
    from rdbench.analysis.styles import style_map
    from rdbench.commands.inputs import load_inputs

    table = load_inputs([str(two_codecs)]).curves
    look = style_map(table)
    fig = rd_figure(table, "psnr_rgb", style_map=look)
    for line in fig.axes[0].get_lines():
        style = look[line.get_label()]
        assert (line.get_color(), line.get_marker()) == (style.color, style.marker)
        assert next(iter(looks[line.get_label()]))[0] == style.color


def test_label_is_presentation_not_identity(two_codecs, tmp_path):
    import pandas as pd

    rows = pd.read_csv(two_codecs / "results.csv")
    assert set(rows["codec"]) == {"jpeg", "webp"}  # label= never reaches the stored spec
    report = (two_codecs / "report.md").read_text()
    assert "| Baseline JPEG | jpeg |" in report  # the label names the curve; the table keeps the spec
    out = rdbench("bdrate", two_codecs, "--anchor", "Baseline JPEG", "--label", "webp=WebP 1.6", "--csv", tmp_path / "bd.csv")
    assert out.returncode == 0, out.stderr
    bd = pd.read_csv(tmp_path / "bd.csv")
    assert list(bd["label"]) == ["WebP 1.6"] and list(bd["codec"]) == ["webp"]
    refused = rdbench("bdrate", two_codecs, "--label", "nosuch=X")
    assert refused.returncode == 2 and "--label nosuch=X: no curve has the spec or label 'nosuch'" in refused.stderr
    clash = rdbench("bdrate", two_codecs, "--label", "webp=Baseline JPEG")
    assert clash.returncode == 2 and "would name the curves of jpeg, webp" in clash.stderr


def test_legends_shorten_paths_tables_keep_the_spec(tmp_path):
    from rdbench.analysis.plots import rd_figure
    from rdbench.commands.inputs import load_inputs

    long = "learned:checkpoint=/home/someone/experiments/2026/grid/cells/joint-k5/seed-0/model.pt"
    path = tmp_path / "curve.json"
    path.write_text(json.dumps({"name": long, "results": {"bpp": [0.2, 0.4, 0.8, 1.6],
                                                          "psnr-rgb": [28.0, 31.0, 34.0, 37.0]}}))
    table = load_inputs([str(path)]).curves
    assert table["label"].iloc[0] == long  # tables and CSV: the whole spec
    fig = rd_figure(table, "psnr_rgb")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["learned:checkpoint=…/seed-0/model.pt"]


def test_report_warns_on_low_overlap(two_codecs):
    import pandas as pd

    # WebP's PSNR range reaches past JPEG's on these crops: about 70% overlap (computed, not assumed)
    bd = pd.read_csv(two_codecs / "bd-psnr_rgb.csv").set_index("codec")
    overlap = bd.loc["webp", "overlap"]
    assert overlap < 0.75
    report = (two_codecs / "report.md").read_text()
    expected = f"low overlap (under 75% of the joint quality range) for webp ({100 * overlap:.0f}%)"
    assert f"**Warning:** {expected}" in report
    assert f"Warning: {expected}" in (two_codecs / "report.html").read_text()
