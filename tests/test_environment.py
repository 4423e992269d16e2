"""Where a result came from and where the tests find their data (issue 20).

`rdbench --version`, runs.jsonl and the report name the versions of the libraries the numbers
depend on (read from package metadata: torch is never imported for it); the test suite finds
Kodak the way rdbench does and ends with one line counting what skipped for lack of what.
"""

import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GOLDEN_IMAGES = REPO / "tests" / "golden" / "images"  # two committed Kodak crops


def _python(*args, env=None, cwd=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def _imported_versions() -> dict:
    """The versions each installed library reports of itself once imported (an independent
    reference for the metadata rdbench reads), None where it is not installed."""
    import importlib

    from rdbench import LIBRARIES

    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.import_module(name).__version__.split("+")[0]
        except ImportError:
            found[name] = None
        except AttributeError:  # a module without __version__ (constriction): the metadata is the only record
            from importlib.metadata import version

            found[name] = version(name)
    return found


def test_version_names_every_library_without_importing_torch():
    done = _python("-c", "import sys\nfrom rdbench.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit as e:\n"
                         "    print('exit', e.code, 'torch' in sys.modules, 'pandas' in sys.modules)")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("rdbench 0.1.0 (") and out.rstrip().endswith("exit 0 False False"), out
    for name, v in _imported_versions().items():
        assert (f"{name} {v}" if v else f"{name} not installed") in out
    assert _python("-m", "rdbench", "--version").stdout == out.split("exit")[0]


@pytest.mark.slow
def test_runs_jsonl_and_report_record_the_libraries(tmp_path):
    from rdbench import describe_libraries, library_versions

    images = tmp_path / "images"
    shutil.copytree(GOLDEN_IMAGES, images)
    out = tmp_path / "out"
    done = _python("-m", "rdbench", "run", "--dataset", images, "--codec", "jpeg", "--quality", "30,50,70,90",
                   "--out", out, "--no-progress", "--workers", "1")
    assert done.returncode == 0, done.stderr
    (entry,) = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert entry["libraries"] == library_versions()
    assert entry["libraries"]["numpy"] == _imported_versions()["numpy"]
    report = (out / "report.md").read_text()
    line = describe_libraries(library_versions())
    assert f"by rdbench 0.1.0 ({line})" in report  # the page's first line: the report's own environment
    runs = report[report.index("## Runs that made these results"):].split("\n\n")[2]  # the run record's table
    header, _, row = runs.splitlines()[:3]
    column = [c.strip() for c in header.split("|")].index("libraries")
    assert [c.strip() for c in row.split("|")][column] == line  # the environment that measured the rows


def _pytest_last_line(*args, env):
    done = _python("-m", "pytest", "-q", "-p", "no:cacheprovider", *args, env=env, cwd=REPO)
    lines = done.stdout.strip().splitlines()
    return done, lines[-1] if lines else ""


def test_suite_ends_with_what_skipped_for_lack_of_data(tmp_path):
    empty = tmp_path / "no-kodak"
    empty.mkdir()
    done, last = _pytest_last_line("tests/test_codecs.py", "-k", "roundtrip_on_kodak and (jpeg or webp)",
                                   env={"RDBENCH_TEST_KODAK": str(empty)})
    assert done.returncode == 0, done.stdout[-2000:]
    assert re.search(r"(\d+) skipped, \d+ deselected", done.stdout), done.stdout[-2000:]
    n = re.search(r"(\d+) skipped, \d+ deselected", done.stdout)[1]
    assert int(n) >= 2 and last.startswith(f"skipped {n}: {n} for lack of data (RDBENCH_KODAK="), last
    assert "RDBENCH_TRAIN=" in last


def test_suite_finds_kodak_through_rdbench_kodak(kodak_dir, tmp_path):
    env = {"RDBENCH_KODAK": str(kodak_dir), "RDBENCH_DATA": str(tmp_path / "cache")}
    env_without_alias = {k: v for k, v in {**os.environ, **env}.items() if k != "RDBENCH_TEST_KODAK"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_codecs.py",
                           "-k", "roundtrip_on_kodak and jpeg"], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**env_without_alias, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
    assert not (tmp_path / "cache").exists()  # the local copy was used, nothing downloaded


def test_skip_reasons_are_classified():
    from tests.conftest import skip_kind

    assert skip_kind("test data not found: Kodak (...)") == "data"
    assert skip_kind("could not import 'compressai': No module named 'compressai'") == "packages"
    assert skip_kind("dask-jobqueue not installed (pip install 'rdbench[dask]')") == "packages"
    assert skip_kind("cwebp unavailable: cwebp, dwebp not found (looked in $RDBENCH_WEBP_DIR or PATH)") == "binaries"
    assert skip_kind("no chromium on PATH (Debian: apt-get install chromium)") == "binaries"
    assert skip_kind("no CUDA device") == "other"
