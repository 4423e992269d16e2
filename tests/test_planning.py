"""Planning: each configuration and quality measured once; the default output apart from shipped results."""

import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rdbench.bench.runner import distinct_codecs, load_codecs, plan, run
from rdbench.bench.store import RESULTS_FILE
from rdbench.codecs import load
from rdbench.codecs.base import parse_spec, split_spec_list
from rdbench.data.datasets import folder_dataset

RDBENCH = [sys.executable, "-m", "rdbench"]
REPO = Path(__file__).resolve().parent.parent


def stored(out):
    with open(Path(out) / RESULTS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def test_canonical_spec_text_ignores_option_order_and_whitespace():
    a = parse_spec("jpeg: optimize = 1 , subsampling=444")
    b = parse_spec("jpeg:subsampling=444,optimize=1")
    assert a.text != b.text and a.canonical == b.canonical == "jpeg:optimize=1,subsampling=444"
    assert parse_spec("jpeg").canonical == "jpeg"


def test_equal_configurations_are_kept_once_first_spelling_verbatim(tmp_path):
    specs = split_spec_list(["jpeg,jpeg", "jpeg:subsampling=420", "jpeg: optimize=0, subsampling=420",
                             "jpeg:subsampling=444,optimize=1", "jpeg:optimize=1,subsampling=444", "webp"])
    kept, dropped = distinct_codecs([load(s) for s in specs])
    assert [c.spec.text for c in kept] == ["jpeg", "jpeg:subsampling=444,optimize=1", "webp"]
    assert [(d.spec.text, k.spec.text) for d, k in dropped] == [
        ("jpeg", "jpeg"), ("jpeg:subsampling=420", "jpeg"), ("jpeg: optimize=0,subsampling=420", "jpeg"),
        ("jpeg:optimize=1,subsampling=444", "jpeg:subsampling=444,optimize=1")]
    # configurations that differ stay apart
    assert len(distinct_codecs([load("jpeg"), load("jpeg:subsampling=444"), load("jpeg:optimize=1")])[0]) == 3


def test_one_checkpoint_named_two_ways_is_one_configuration(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    (tmp_path / "m.pt").write_bytes(b"")  # configuration never reads the file
    monkeypatch.chdir(tmp_path)
    codecs = [load(f"learned:checkpoint={p}", check_available=False) for p in ("m.pt", "./m.pt", str(tmp_path / "m.pt"))]
    kept, dropped = distinct_codecs(codecs)
    assert [c.spec.text for c in kept] == ["learned:checkpoint=m.pt"] and len(dropped) == 2


def test_shipped_spec_texts_are_kept_as_stored():
    for path in (REPO / "results" / "kodak" / RESULTS_FILE, REPO / "results" / "ablation" / RESULTS_FILE):
        for spec in {r["codec"] for r in stored(path.parent)}:
            if spec.startswith("learned"):
                assert parse_spec(spec).text == spec
                continue
            codec = load(spec, check_available=False)
            assert codec.spec.text == spec and distinct_codecs([codec])[0] == [codec]


def test_plan_measures_each_configuration_and_quality_once(small_dataset):
    dataset = folder_dataset(small_dataset)
    codecs = [load("jpeg"), load("jpeg"), load("jpeg:subsampling=420"), load("webp")]
    items, skipped = plan(dataset, codecs, [30, 30.0, "30", 60], done=set())
    keys = [(i.image.sha256, i.codec, i.quality) for i in items]
    assert len(keys) == len(set(keys)) == 3 * 2 * 2 and skipped == 0
    assert {i.codec for i in items} == {"jpeg", "webp"}


def test_duplicate_specs_are_measured_once_and_said(kodak_dir, tmp_path, capsys):
    out = tmp_path / "out"
    env = {**os.environ, "RDBENCH_KODAK": str(kodak_dir)}
    done = subprocess.run(RDBENCH + ["run", "--codec", "jpeg,jpeg", "--codec", "jpeg:subsampling=420", "--quality",
                                     "30,30,60", "--max-images", "2", "--out", str(out), "--no-progress", "--no-report"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = stored(out)
    assert len(rows) == 4 and {r["codec"] for r in rows} == {"jpeg"}
    assert "'jpeg' is the same spec" in done.stderr and "measured once, as 'jpeg'" in done.stderr
    assert "'jpeg:subsampling=420' is the same configuration as 'jpeg'" in done.stderr
    assert "codecs: jpeg\n" in done.stderr
    # the API says so too, for callers that skip load_codecs
    dataset = folder_dataset(kodak_dir)
    dataset.images = dataset.images[:2]
    again = run(dataset, [load("jpeg"), load("jpeg")], out, qualities=[30, 60], workers=1, progress=False)
    assert again.ok == 0 and len(stored(out)) == 4
    assert "codec 'jpeg' is the same spec" in capsys.readouterr().err


def digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_default_output_is_apart_from_shipped_results(kodak_dir, tmp_path):
    """A fresh clone: `rdbench run` without --out, in a folder holding the shipped results/kodak."""
    clone = tmp_path / "clone"
    shutil.copytree(REPO / "results" / "kodak", clone / "results" / "kodak")
    before = digests(clone / "results")
    env = {**os.environ, "RDBENCH_KODAK": str(kodak_dir)}
    done = subprocess.run(RDBENCH + ["run", "--codec", "jpeg", "--quality", "30,60", "--max-images", "1",
                                     "--no-progress", "--no-report"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert digests(clone / "results") == before  # nothing shipped was read as done, nor rewritten
    rows = stored(clone / "rdbench-results" / "kodak")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert "2 measured, 0 failed, 0 already stored" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1] == f"results: {Path('rdbench-results', 'kodak', RESULTS_FILE)}"
