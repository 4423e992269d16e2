"""Issue 22, what an outside review found: names from outside reach the reports escaped and never
stop them; files are written whole; the store, the lock and runs.jsonl resist damage; memory and
output of external binaries are bounded. Real runs, real files, real subprocesses."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rdbench.bench.runner import load_codecs, run
from rdbench.bench.store import COLUMNS, RESULTS_FILE, ResultStore, StoreError
from rdbench.cli import main
from rdbench.data.datasets import folder_dataset
from tests.test_faults import FAKE_CODEC, write_fake_codecs

RDBENCH = [sys.executable, "-m", "rdbench"]
EVIL_DATASET = "<img src=x onerror=alert(1)>math$\\frac{$ds"
EVIL_IMAGE = "=HYPERLINK(x)<b>bold.png"
EVIL_CODEC = '<a href="x.html">link</a>'
EVIL_VERSION = "1<script>alert(2)</script>"


def _crops(folder: Path, kodim) -> Path:
    """a.png and a.jpg (two different Kodak crops of one stem) and a broken file with a formula name."""
    folder.mkdir(parents=True)
    Image.fromarray(np.ascontiguousarray(kodim(1)[:192, :256])).save(folder / "a.png")
    Image.fromarray(np.ascontiguousarray(kodim(7)[:192, :256])).save(folder / "a.jpg", quality=95)
    (folder / EVIL_IMAGE).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return folder


def _rendered(markdown_text: str) -> str:
    markdown = pytest.importorskip("markdown", reason="Python-Markdown renders report.md (pip install markdown)")
    return markdown.markdown(markdown_text, extensions=["tables"])


def _assert_no_outside_markup(rendered: str, out: Path) -> None:
    """Only rdbench's own figures are images; no name became a tag, a link or a script."""
    for tag in re.findall(r"<img[^>]*>", rendered):
        src = re.search(r'src="([^"]*)"', tag).group(1)
        assert (out / src).is_file() and "onerror" not in tag, tag
    assert "<b>" not in rendered and "<script" not in rendered and '<a href="x.html"' not in rendered


# -- names from outside: report.md, report.html, figures, CSVs -----------------------------------
@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, kodim):
    """A real `rdbench run` on a folder with a hostile name, an image named like a formula and
    markup, --out holding a backtick, --keep: (the result folder, rc). Run once for the tests below."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    folder = _crops(tmp_path / EVIL_DATASET, kodim)
    argv = ["run", "--dataset", str(folder), "--codec", "jpeg,webp", "--quality", "20,40,60,80", "--out", "out`x",
            "--no-progress", "--anchor", "jpeg", "--keep"]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        mp.setattr(sys, "argv", ["rdbench", *argv])  # what runs.jsonl and the report record
        rc = main(argv)
    return tmp_path / "out`x", rc


def test_outside_names_reach_report_md_escaped_and_never_stop_it(hostile_run):
    out, rc = hostile_run
    tmp_path = out.parent
    assert rc == 3  # finished, the broken image's items failed; before: 2 ($ in the figure titles)
    for name in ("report.md", "report.html", "rd-psnr_rgb.png", "rd-psnr_rgb.svg", "bd-psnr_rgb.png", "failed.csv"):
        assert (out / name).is_file(), name
    page = (out / "report.md").read_text()
    rendered = _rendered(page)
    _assert_no_outside_markup(rendered, out)
    shown = "&lt;img src=x onerror=alert(1)&gt;math&#36;\\frac{&#36;ds"  # as written, as text
    assert shown in rendered
    codes = [html.unescape(c) for c in re.findall(r"<code>(.*?)</code>", rendered)]
    assert any("--out 'out`x' --no-progress" in c for c in codes), codes  # the backtick stays inside
    assert f"<h2>Curves on {shown}</h2>" in rendered
    # the failed items: the image name as text, error messages without absolute paths
    assert "=HYPERLINK(x)&lt;b&gt;bold.png" in rendered
    assert str(tmp_path) not in page


def test_csvs_a_user_opens_are_spreadsheet_safe_and_results_csv_exact(hostile_run):
    out, _ = hostile_run
    failed = pd.read_csv(out / "failed.csv")
    assert set(failed["image"]) == {"'" + EVIL_IMAGE}  # a text, not a formula
    with open(out / RESULTS_FILE, newline="") as f:
        images = {row["image"] for row in csv.DictReader(f)}
    assert EVIL_IMAGE in images  # results.csv keeps the exact name
    speed = pd.read_csv(out / "speed.csv")
    assert speed["enc_s_per_image"].dtype.kind == "f"  # numbers stay numbers (a negative one too)


def test_keep_writes_a_png_and_a_jpg_of_one_folder_apart(hostile_run):
    out, _ = hostile_run
    rows = pd.read_csv(out / RESULTS_FILE)
    kept = out / "bitstreams" / "jpeg"
    for image in ("a.png", "a.jpg"):
        row = rows[(rows.image == image) & (rows.codec == "jpeg") & (rows.quality == 40)].iloc[0]
        assert (kept / f"{image}.q40.jpg").stat().st_size == row["bytes"]
    assert len(list((out / "reconstructions" / "jpeg").iterdir())) == 8


def test_codec_names_versions_and_results_fields_reach_both_reports_escaped(hostile_run, tmp_path):
    """A TOML codec's name and version are fields of results.csv: here a codec named like a link
    and a version holding a script, in a results.csv as such a codec would leave it."""
    out, _ = hostile_run
    rows = pd.read_csv(out / RESULTS_FILE, dtype=str, keep_default_na=False)
    rows.loc[rows.codec == "webp", ["codec", "codec_version"]] = [EVIL_CODEC, EVIL_VERSION]
    evil = tmp_path / "evil"
    evil.mkdir()
    rows.to_csv(evil / RESULTS_FILE, index=False)
    report = tmp_path / "report"
    assert main(["report", str(evil), "--out", str(report), "--anchor", "jpeg"]) == 0
    rendered = _rendered((report / "report.md").read_text())
    _assert_no_outside_markup(rendered, report)
    assert "&lt;a href=&quot;x.html&quot;&gt;link&lt;/a&gt;" in rendered or "&lt;a href=\"x.html\"&gt;" in rendered
    page = (report / "report.html").read_text()
    # plotly renders trace names, titles and buttons as markup: the names are escaped in its data
    assert EVIL_CODEC not in page and EVIL_CODEC.replace('"', '\\"') not in page
    assert "<script>alert(2)" not in page and "&lt;a href=" in page


def _curve(name: str) -> pd.DataFrame:
    return pd.DataFrame({"label": [name] * 3, "codec": [name] * 3, "dataset": [name] * 3, "bpp": [0.2, 0.5, 1.0],
                         "psnr_rgb": [28.0, 31.0, 34.0], "source": ["measured"] * 3, "codec_version": ["1"] * 3,
                         "image_set": ["s"] * 3, "image_set_size": [1] * 3, "quality": [1, 2, 3]})


def test_every_text_in_a_figure_is_plain(tmp_path):
    """A $ in a dataset or codec name is a dollar sign, not a formula that stops the report."""
    from rdbench.analysis.plots import bd_bar_figure, rd_figure
    from rdbench.analysis.report import write_figure

    name = "math$\\frac{$ds"
    table = _curve(name)
    write_figure(rd_figure(table, "psnr_rgb", title=f"{name}: PSNR", log_rate=True), tmp_path / "rd.png")
    write_figure(rd_figure(table, "psnr_rgb"), tmp_path / "rd.svg")
    bars = pd.DataFrame({"label": [name, "$x"], "bd_rate_pct": [-10.0, 5.0], "anchor": ["$a$"] * 2})
    write_figure(bd_bar_figure(bars, f"{name} vs $a$"), tmp_path / "bd.png")
    assert all((tmp_path / n).stat().st_size > 1000 for n in ("rd.png", "rd.svg", "bd.png"))


def test_per_image_view_grows_linearly_with_the_images():
    from rdbench.analysis.html import _per_image_plot

    def size(n: int) -> int:
        rows = pd.DataFrame([{"image": f"img{i:04d}.png", "codec": c, "quality": q, "status": "ok",
                              "bpp": 0.1 * q + i * 1e-4, "psnr_rgb": 25.0 + q}
                             for i in range(n) for c in ("jpeg", "webp", "avif") for q in range(1, 5)])
        fig = _per_image_plot(rows, "psnr_rgb", "per image")
        assert len(fig.data) == 3  # one trace per codec, whatever the number of images
        return len(fig.to_json())

    small, large = size(60), size(240)
    assert large / small < 4.4  # 4x the images: 4x the page (one visibility list per image: ~12x)


def test_report_files_are_replaced_whole_never_rewritten_in_place(tmp_path):
    """Every output is written to a temporary name and renamed: a hard link to the old file keeps
    the old content (a kill mid-write leaves the old file or the new, never a part)."""
    from rdbench.analysis.document import Document
    from rdbench.analysis.plots import rd_figure
    from rdbench.analysis.report import write_document

    doc = Document("report.md", text="new page\n", pages={"report.html": "<p>new</p>"},
                   tables={"t.csv": pd.DataFrame({"a": [1]})}, json={"c.json": {"a": 1}})
    doc.add_figure("rd", rd_figure(_curve("x"), "psnr_rgb"), ("png", "svg"))
    names = ["report.md", "report.html", "t.csv", "c.json", "rd.png", "rd.svg"]
    for name in names:
        (tmp_path / name).write_text("old")
        os.link(tmp_path / name, tmp_path / f"{name}.link")
    write_document(doc, tmp_path)
    for name in names:
        assert (tmp_path / f"{name}.link").read_text() == "old", name
        assert (tmp_path / name).read_bytes() != b"old", name
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_markdown_helpers():
    from rdbench.analysis.document import markdown_table, md_code, md_escape

    assert md_code("a`b") == "``a`b``" and md_code("`a") == "`` `a ``" and md_code("x\ny") == "`x y`"
    assert md_escape("a|b\nc") == "a&#124;b c" and md_escape("<i>&") == "&lt;i&gt;&amp;"
    assert markdown_table(pd.DataFrame({"x|y": ["*a*"], "n": [1.5]})) == "| x&#124;y | n |\n|---|---|\n| \\*a\\* | 1.50 |"


# -- the store, the lock, runs.jsonl ------------------------------------------------------------
def _synthetic_results(path: Path, rows: int) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for n in range(rows):
            row = dict.fromkeys(COLUMNS, "0.123456789012345")
            row.update(image_sha256=f"{n // 300:064x}", codec=f"codec{n % 30}", codec_version="v 1.2.3",
                       quality=str(n // 30 % 10), status="ok", error="", note="", image=f"img{n // 300}.png",
                       target="", target_bound="")  # ordinary rows: no target search (issue 25)
            writer.writerow([row[c] for c in COLUMNS])


def test_opening_a_large_store_keeps_only_each_rows_key(tmp_path):
    """Planning reads every row's key and status, not the rows: memory per row stays small (the
    rows as dicts cost ~3.8 kB each: a 300k-row file took 1.1 GB; benchmarks/store_memory.py)."""
    import tracemalloc

    rows = 15_000
    _synthetic_results(tmp_path / RESULTS_FILE, rows)
    tracemalloc.start()
    try:
        with ResultStore(tmp_path) as store:
            keys = store.done_keys()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / rows < 600, f"{peak / rows:.0f} bytes per row"
    assert len(keys) == rows and len(store) == rows


def test_the_lock_file_never_follows_a_link(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".results.lock").symlink_to(victim)
    with pytest.raises(StoreError, match=r"\.results\.lock: the lock file is a symbolic link"):
        ResultStore(out).open()
    assert victim.read_text() == "precious"
    (out / ".results.lock").unlink()
    (out / ".results.lock").write_text("left by a run")  # an existing lock file is not truncated either
    with ResultStore(out):
        pass
    assert (out / ".results.lock").read_text() == "left by a run"


def test_a_torn_last_line_of_runs_jsonl_is_cut_before_the_next_entry(tmp_path, small_dataset):
    from rdbench.commands.inputs import read_runs

    out = tmp_path / "out"
    for quality in (30, 50, 70):
        run(folder_dataset(small_dataset), load_codecs(["jpeg"]), out, qualities=[quality], workers=1, progress=False)
        with open(out / "runs.jsonl", "a") as f:
            f.write('{"finished_at": "2026-')  # a run killed while it logged itself
    run(folder_dataset(small_dataset), load_codecs(["jpeg"]), out, qualities=[90], workers=1, progress=False)
    runs = read_runs([str(out)])
    assert [r["qualities"] for r in runs] == [[30], [50], [70], [90]]
    assert all(json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines())


def test_fsync_syncs_every_row(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    row = {c: "x" for c in COLUMNS} | {"quality": 5, "status": "ok"}
    for fsync, expected in ((False, 1), (True, 4)):
        synced.clear()
        with ResultStore(tmp_path / str(fsync), fsync=fsync) as store:
            for n in range(3):
                store.append(row | {"image_sha256": str(n)})
            during = len(synced)
        assert during == expected - 1 and len(synced) == expected  # each row, then once at the end


def _limited(fsize: int):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))  # Python ignores SIGXFSZ: writes fail EFBIG
    return limit


def test_a_store_failure_mid_run_exits_5_and_keeps_the_rows(tmp_path, small_dataset):
    out = tmp_path / "out"
    cmd = [*RDBENCH, "run", "--dataset", str(small_dataset), "--codec", "jpeg", "--quality", "20,40,60,80",
           "--out", str(out), "--workers", "1", "--no-progress", "--no-report"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=_limited(2500))
    assert done.returncode == 5, done.stderr
    assert "Traceback" not in done.stderr and f"{out / RESULTS_FILE}: cannot store a result row" in done.stderr
    data = (out / RESULTS_FILE).read_bytes()
    assert data.endswith(b"\n") and 0 < data.count(b"\n") - 1 < 12
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert len(pd.read_csv(out / RESULTS_FILE)) == 12


def test_dataset_dot_dot_writes_its_default_folder_inside_rdbench_results(tmp_path, kodim):
    data = tmp_path / "photos"
    work = data / "work"
    work.mkdir(parents=True)
    Image.fromarray(np.ascontiguousarray(kodim(1)[:64, :64])).save(data / "one.png")
    (work / "report.md").write_text("mine")
    done = subprocess.run([*RDBENCH, "run", "--dataset", "..", "--codec", "jpeg", "--quality", "50", "--workers", "1",
                           "--no-progress"], capture_output=True, text=True, timeout=300, cwd=work)
    assert done.returncode == 0, done.stderr
    assert (work / "report.md").read_text() == "mine" and not (work / RESULTS_FILE).exists()
    assert [p.parent.relative_to(work) for p in work.rglob(RESULTS_FILE)] == [Path("rdbench-results/dataset")]


# -- external binaries: bounded output ----------------------------------------------------------
ENCODE_AND_MEASURE = """
import json, resource, sys
import numpy as np
from rdbench.codecs import load
image = np.zeros((64, 96, 3), np.uint8)
codec = load(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    data = codec.encode(image, 1)
    result = {"bytes": len(data)}
except Exception as exc:
    result = {"error": str(exc)}
result["peak_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # over the set-up
print(json.dumps(result))
"""


def _encode_in_child(codecs: Path, name: str) -> dict:
    done = subprocess.run([sys.executable, "-c", ENCODE_AND_MEASURE, name], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "RDBENCH_CODECS_PATH": str(codecs)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_what_an_external_binary_prints_is_kept_as_a_bounded_tail(tmp_path):
    codecs = write_fake_codecs(tmp_path / "codecs", {"chatty": ("chatty", "copy")})
    result = _encode_in_child(codecs, "chatty")
    assert result.get("bytes", 0) > 0, result  # 300 MB of stdout, then a good output
    assert result["peak_mb"] < 50, result  # before: the whole stdout in memory (300 MB, and a copy)
    from rdbench.codecs.external import OUTPUT_TAIL_BYTES, _bounded_communicate

    proc = subprocess.Popen(["sh", str(FAKE_CODEC), "chatty", "/nonexistent", str(tmp_path / "o")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with proc:
        stdout, stderr = _bounded_communicate(proc, 60)
    assert len(stdout) == len(stderr) == OUTPUT_TAIL_BYTES and b"last words\n" in stderr


def test_an_external_binary_writing_a_huge_output_is_stopped_and_not_read(tmp_path):
    codecs = write_fake_codecs(tmp_path / "codecs", {"huge": ("huge", "copy")})
    result = _encode_in_child(codecs, "huge")
    assert "error" in result, result
    # the kernel stopped the binary at the limit (its shell says so), or the file was refused unread
    assert any(s in result["error"] for s in ("SIGXFSZ", "File size limit exceeded", "bytes an image's file may have"))
    assert result["peak_mb"] < 50, result


# -- limits -------------------------------------------------------------------------------------
def test_the_default_pixel_limit_is_what_a_worker_can_afford(tmp_path, monkeypatch):
    """2**25 pixels (33.5 Mpx) by default: an image declaring 6000 x 6000 (36 Mpx) is refused from
    its header; $RDBENCH_MAX_PIXELS raises the limit."""
    from rdbench.conventions import DEFAULT_MAX_IMAGE_PIXELS
    from rdbench.data.images import load_rgb
    from rdbench.errors import ImageError

    from .test_images import _png_declaring

    monkeypatch.delenv("RDBENCH_MAX_PIXELS", raising=False)
    assert DEFAULT_MAX_IMAGE_PIXELS == 2**25
    path = tmp_path / "large.png"
    path.write_bytes(_png_declaring(6000, 6000))
    with pytest.raises(ImageError, match=r"large\.png: declares 6000 x 6000 pixels .*limit of 33,554,432"):
        load_rgb(path)


PICK_SECOND_IMAGE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var gd = document.getElementById("image-0"), button = gd.layout.updatemenus[0].buttons[1];
  Plotly.update(gd, button.args[0], button.args[1]).then(function () {
    document.body.setAttribute("data-picked", JSON.stringify({title: gd.layout.title.text,
      names: gd.data.map(function (t) { return t.name; }), x: gd.data.map(function (t) { return Array.from(t.x); })}));
  });
}, 0); });
</script>"""


@pytest.mark.slow
def test_picking_an_image_in_a_browser_shows_that_images_points(tmp_path, small_dataset):
    """The per-image view's buttons carry each image's points: picking the second image in headless
    Chromium puts exactly its points on the codecs' traces."""
    from .test_report import CHROMIUM, _browser

    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    out = tmp_path / "results"
    assert main(["run", "--dataset", str(small_dataset), "--codec", "jpeg,webp", "--quality", "20,40,60,80", "--out",
                 str(out), "--no-progress", "--anchor", "jpeg"]) == 0
    page = tmp_path / "picked.html"
    page.write_text((out / "report.html").read_text().replace("</body>", PICK_SECOND_IMAGE + "</body>", 1))
    done = _browser(page, tmp_path, "--dump-dom")
    match = re.search(r'data-picked="([^"]*)"', done.stdout)
    assert match, done.stderr[-2000:]
    picked = json.loads(html.unescape(match.group(1)))
    assert picked["title"] == "per image: kodim07_crop.png" and picked["names"] == ["jpeg", "webp"]
    rows = pd.read_csv(out / RESULTS_FILE)
    for codec, xs in zip(picked["names"], picked["x"]):
        expected = rows[(rows.image == "kodim07_crop.png") & (rows.codec == codec)].sort_values("bpp")["bpp"]
        assert xs == pytest.approx(list(expected), rel=1e-12)


def test_a_report_that_cannot_be_written_after_the_run_exits_5_naming_it(tmp_path, small_dataset):
    out = tmp_path / "out"
    (out / "report.html").mkdir(parents=True)  # where the report goes, something that is not a file
    done = subprocess.run([*RDBENCH, "run", "--dataset", str(small_dataset), "--codec", "jpeg", "--quality",
                           "20,40,60,80", "--out", str(out), "--workers", "1", "--no-progress", "--anchor", "jpeg"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 5 and "Traceback" not in done.stderr, done.stderr
    assert f"{out / 'report.html'}: cannot write the report" in done.stderr
    assert len(pd.read_csv(out / RESULTS_FILE)) == 12 and not list(out.glob(".*.tmp"))
