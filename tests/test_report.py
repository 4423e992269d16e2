"""The report's speed table and failed items, from a real run on Kodak crops."""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from rdbench.cli import main


@pytest.fixture
def run_with_a_failure(tmp_path, small_dataset):
    """jpeg and webp on three Kodak crops plus one truncated PNG (its items fail, with an error)."""
    good = (small_dataset / "kodim01_crop.png").read_bytes()
    (small_dataset / "broken.png").write_bytes(good[: len(good) // 3])
    out = tmp_path / "results"
    rc = main(["run", "--dataset", str(small_dataset), "--codec", "jpeg,webp", "--quality", "20,40,60,80",
               "--out", str(out), "--no-progress", "--no-report"])
    assert rc == 3  # finished, some items failed
    return out


def test_report_has_speed_table_and_failed_items(run_with_a_failure, tmp_path):
    report = tmp_path / "report"
    assert main(["report", str(run_with_a_failure), "--out", str(report), "--anchor", "jpeg"]) == 0
    rows = pd.read_csv(run_with_a_failure / "results.csv")
    speed = pd.read_csv(report / "speed.csv")
    assert set(speed["codec"]) == {"jpeg", "webp"}
    for codec, row in speed.set_index("codec").iterrows():
        ok = rows[(rows.codec == codec) & (rows.status == "ok")]
        assert row["n_items"] == len(ok) == 12 and row["qualities"] == "20..80"
        assert row["enc_s_per_image"] == pytest.approx(ok["enc_s"].mean())
        assert row["dec_mpx_s"] == pytest.approx((ok.width * ok.height).sum() / 1e6 / ok["dec_s"].sum())
    failed = pd.read_csv(report / "failed.csv")
    assert len(failed) == 8 and set(failed["image"]) == {"broken.png"} and failed["error"].str.len().gt(0).all()
    assert sorted(failed.loc[failed.codec == "jpeg", "quality"]) == [20, 40, 60, 80]
    page = (report / "report.md").read_text()
    assert "## Coding speed" in page and "encode MP/s" in page and "decode s/image" in page
    assert "## Failed items" in page and "8 items failed" in page and "broken.png" in page


def test_report_says_when_nothing_failed(tmp_path, small_dataset):
    out = tmp_path / "results"
    assert main(["run", "--dataset", str(small_dataset), "--codec", "jpeg,webp", "--quality", "20,40,60,80",
                 "--out", str(out), "--no-progress"]) == 0
    page = (out / "report.md").read_text()
    assert "## Failed items\n\nNone: every item was measured." in page
    assert not (out / "failed.csv").exists() and (out / "speed.csv").is_file()


# -- the interactive HTML report, in a real headless browser (Debian's chromium) ----------------

CHROMIUM = next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)
# Put before the page's own scripts: records uncaught errors and console.error calls, and writes
# them into the DOM once the page has loaded, where --dump-dom shows them.
ERROR_PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
(function () { var original = console.error; console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, " ")); original.apply(console, arguments); }; })();
window.addEventListener("load", function () { setTimeout(function () {
  document.body.setAttribute("data-errors", JSON.stringify(window.__errors)); }, 0); });
</script>"""


def _browser(page: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=5000", "--window-size=1280,1600", *flags, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def _dom_with_probe(page: Path, tmp_path: Path) -> tuple[str, list, str]:
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("<head>", "<head>" + ERROR_PROBE, 1))
    done = _browser(probed, tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'data-errors="([^"]*)"', done.stdout)
    assert match, "the page never finished loading"
    return done.stdout, json.loads(html.unescape(match.group(1))), done.stderr


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium)")
def test_html_report_in_a_headless_browser(tmp_path, small_dataset):
    # the probe itself can fail: a page with an error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<html><head></head><body><script>console.error('boom'); missing();</script></body></html>")
    _, errors, _ = _dom_with_probe(bad, tmp_path)
    assert "boom" in errors and any("missing" in e for e in errors)

    out = tmp_path / "results"
    assert main(["run", "--dataset", str(small_dataset), "--codec", "jpeg,webp,jpeg:subsampling=444", "--quality",
                 "20,40,60,80", "--out", str(out), "--no-progress", "--anchor", "jpeg"]) == 0
    page = out / "report.html"
    text = page.read_text()
    assert "<script src=" not in text and "plotly" in text.lower()  # plotly.js inline: works offline
    assert "(report.html)" in (out / "report.md").read_text()

    dom, errors, log = _dom_with_probe(page, tmp_path)
    assert errors == [] and "Uncaught" not in log, (errors, [line for line in log.splitlines() if "CONSOLE" in line])
    # the curves are drawn: plotly rendered one SVG trace per curve (3 measured + BPG published is not
    # over these crops' images) in the RD plots; the per-image view shows its first image, picked in
    # a drawn dropdown
    assert dom.count('class="trace scatter') >= 2 * 3
    assert ">per image: kodim01_crop.png<" in dom and 'class="updatemenu-container' in dom
    # the BD tables: one row per compared curve (jpeg is the anchor)
    tables = re.findall(r'<table class="bd" id="bd-\d+">(.*?)</table>', dom, re.S)
    assert len(tables) == 2
    for table in tables:
        body = re.search(r"<tbody>(.*)</tbody>", table, re.S).group(1)
        labels = re.findall(r"<tr><td>([^<]*)</td>", body)
        assert sorted(labels) == ["jpeg:subsampling=444", "webp"]

    shot = tmp_path / "report.png"
    assert _browser(page, tmp_path, f"--screenshot={shot}").returncode == 0
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    colourful = (image.max(axis=2) - image.min(axis=2)) > 60  # plot lines, not the white page or gray text
    assert colourful.sum() > 2000, "the screenshot shows no curves"
