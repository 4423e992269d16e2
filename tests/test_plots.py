"""Figures as a reader sees them: readable BD bars, distinct curve styles, reproducible SVG, options."""

import pandas as pd
import pytest

from rdbench.analysis.plots import bd_bar_figure, curve_style, rd_figure
from rdbench.analysis.report import write_figure
from rdbench.cli import main


@pytest.fixture(scope="module")
def measured(tmp_path_factory, kodim):
    """A result folder of real measurements on three Kodak crops: jpeg, webp, jpeg:subsampling=444."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("plots")
    crops = root / "crops"
    crops.mkdir()
    for n in (1, 7, 23):
        Image.fromarray(np.ascontiguousarray(kodim(n)[:192, :256])).save(crops / f"kodim{n:02d}_crop.png")
    out = root / "results"
    assert main(["run", "--dataset", str(crops), "--codec", "jpeg,webp,jpeg:subsampling=444", "--quality",
                 "20,40,60,80", "--out", str(out), "--no-progress", "--no-report"]) == 0
    return out


def _curves(folder):
    from rdbench.commands import load_inputs

    return load_inputs([str(folder)]).curves


def _bd(folder, anchor="jpeg"):
    from rdbench.analysis.tables import bd_table

    return bd_table(_curves(folder), anchor, "psnr_rgb")


def _drawn(fig):
    """The figure laid out and drawn as savefig does (a Figure's own canvas draws nothing)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    return fig


def _inside(fig, artist, pad=1.0) -> bool:
    _drawn(fig)
    box, frame = artist.get_window_extent(), fig.bbox
    return box.x0 >= -pad and box.y0 >= -pad and box.x1 <= frame.x1 + pad and box.y1 <= frame.y1 + pad


def test_bd_bars_title_and_xlabel_inside_and_negative_labels_clear_of_ticks(measured):
    bd = _bd(measured, anchor="jpeg")
    assert (bd["bd_rate_pct"] < 0).any()  # webp and 4:4:4 beat 4:2:0 JPEG on these crops: negative bars
    fig = bd_bar_figure(bd, "a long title naming the dataset, the metric, the method and the anchor " * 2)
    ax = fig.axes[0]
    assert _inside(fig, fig.get_suptitle() and fig._suptitle) and _inside(fig, ax.xaxis.label)
    renderer = fig.canvas.get_renderer()
    ticks = [t.get_window_extent(renderer) for t in ax.get_yticklabels()]
    labels = [t for t in ax.texts if t.get_text().startswith("-")]
    assert labels
    axes_left = ax.get_window_extent(renderer).x0
    for text in labels:
        box = text.get_window_extent(renderer)
        assert box.x0 >= axes_left  # inside the axes, never over the tick labels at its left
        assert not any(box.overlaps(t) for t in ticks)


def test_bd_bars_without_any_value_say_so(measured):
    bd = _bd(measured).assign(bd_rate_pct=float("nan"), error="the curves do not overlap")
    fig = bd_bar_figure(bd, "kodak-crops: BD-rate")
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "no BD-rate could be computed" in texts and "do not overlap" in texts
    # the same refusal of every codec is said once, naming them all
    assert texts.count("do not overlap") == 1 and all(str(c) in texts for c in bd["label"])
    empty = bd_bar_figure(pd.DataFrame(), "t")  # no row at all
    assert "no BD-rate could be computed" in " ".join(t.get_text() for t in empty.texts)


def test_more_than_ten_curves_get_distinct_styles():
    styles = [tuple(curve_style(i, False).values()) for i in range(40)]
    assert len(set(styles)) == 40
    # the old failure: colours repeating after 10 with nothing else to tell curves apart
    assert curve_style(0, False) != curve_style(10, False)


def test_rd_plot_of_fourteen_curves_has_fourteen_distinct_looks(measured):
    base = _curves(measured)
    one = base[base["codec"] == "jpeg"]
    many = pd.concat([one.assign(codec=f"c{i}", label=f"c{i}", psnr_rgb=one["psnr_rgb"] + i) for i in range(14)])
    fig = rd_figure(many, "psnr_rgb")
    looks = {(line.get_color(), line.get_marker(), line.get_linestyle()) for line in fig.axes[0].get_lines()}
    assert len(fig.axes[0].get_lines()) == 14 and len(looks) == 14


def test_identical_curves_stay_visible(measured):
    base = _curves(measured)
    jpeg = base[base["codec"] == "jpeg"]
    twin = jpeg.assign(codec="jpeg-again", label="jpeg-again")
    fig = rd_figure(pd.concat([jpeg, twin]), "psnr_rgb")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "jpeg-again (same points as jpeg)" in legend
    first, second = fig.axes[0].get_lines()
    assert second.get_markerfacecolor() == "none" and second.get_markersize() > first.get_markersize()


def test_titles_name_the_dataset_not_kodak(measured):
    fig = rd_figure(_curves(measured), "psnr_rgb")
    title = fig.axes[0].get_title()
    assert "crops" in title and "Kodak" not in title


def test_svg_is_reproducible(measured, tmp_path):
    curves = _curves(measured)
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    write_figure(rd_figure(curves, "psnr_rgb"), a)
    write_figure(rd_figure(curves, "psnr_rgb"), b)
    assert a.read_bytes() == b.read_bytes()
    assert b"<dc:date>" not in a.read_bytes()


def test_plot_options_codecs_log_rate_limits_title(measured, tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["plot", str(measured), "--out", str(out), "--format", "svg", "--metric", "psnr_rgb",
                 "--codec", "webp", "--log-rate", "--xlim", "0.1,3", "--ylim", "20,45", "--title", "my title"]) == 0
    svg = (out / "rd-psnr_rgb.svg").read_text()
    assert "my title" in svg and "webp" in svg and "jpeg" not in svg and "log scale" in svg
    fig = rd_figure(_curves(measured), "psnr_rgb", codecs=["webp"], log_rate=True, xlim=(0.1, 3), ylim=(20, 45))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlim() == (0.1, 3) and ax.get_ylim() == (20, 45)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["webp"]
    assert main(["plot", str(measured), "--out", str(out), "--codec", "jpg"]) == 2
    assert "--codec jpg: no such curve" in capsys.readouterr().err
