"""What the console says when something is wrong (issue 23): the reason, the way out, and
nothing that hides the rest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def rdbench(*args, env=None, cwd=None):
    full = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "rdbench", *map(str, args)], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=300)


def test_codecs_lists_the_others_when_a_plugin_version_raises(tmp_path):
    # two plugins in a real dist-info layout: one whose version runs a binary that is not there
    (tmp_path / "plugins_23.py").write_text(textwrap.dedent("""
        from rdbench.codecs import Codec

        class Broken(Codec):
            description = "a plugin whose binary is missing"
            qualities = (1,)

            @property
            def version(self):
                return open("").read()  # [Errno 2] No such file or directory: ''


        class Fine(Codec):
            description = "a working plugin"
            qualities = (1, 2)
            version = "fine 2.0"
    """))
    dist = tmp_path / "plugins_23-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugins-23\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rdbench.codecs]\nbrokenver = plugins_23:Broken\n"
                                           "zfine = plugins_23:Fine\n")
    out = rdbench("codecs", env={"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"})
    assert out.returncode == 0, out.stderr
    broken = next(line for line in out.stdout.splitlines() if line.startswith("brokenver"))
    assert "broken" in broken and "FileNotFoundError" in broken and "No such file" in broken
    assert "fine 2.0" in out.stdout  # listed after the broken one
    assert "jpeg" in out.stdout


@pytest.fixture(scope="module")
def jpeg_run(tmp_path_factory, kodak_dir):
    """A real run: JPEG at four qualities on two 128x96 Kodak crops."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("jpeg_run")
    images = root / "crops"
    images.mkdir()
    for n in (3, 19):
        pixels = np.asarray(Image.open(kodak_dir / f"kodim{n:02d}.png").convert("RGB"))[:96, :128]
        Image.fromarray(np.ascontiguousarray(pixels)).save(images / f"k{n:02d}.png")
    out = rdbench("run", "--dataset", images, "--codec", "jpeg", "--quality", "20,40,60,80", "--out", root / "res",
                  "--workers", 1, "--no-progress", "--no-report")
    assert out.returncode == 0, out.stderr
    return root / "res"


def test_offline_download_names_the_way_out(tmp_path):
    env = {"RDBENCH_DATA": str(tmp_path / "cache"), "RDBENCH_KODAK": "",
           "RDBENCH_KODAK_URL": "http://127.0.0.1:9/kodak/"}  # port 9 (discard): connection refused
    out = rdbench("run", "--dataset", "kodak", "--codec", "jpeg", "--out", tmp_path / "r", "--no-progress", env=env)
    assert out.returncode == 2
    assert "download failed" in out.stderr and "Traceback" not in out.stderr
    assert "RDBENCH_KODAK=" in out.stderr and "RDBENCH_KODAK_URL=" in out.stderr  # a local copy, or a mirror


@pytest.mark.parametrize("command", ["report", "plot"])
def test_out_naming_a_file_is_refused_clearly(jpeg_run, tmp_path, command):
    target = tmp_path / "already-a-file"
    target.write_text("keep me")
    out = rdbench(command, jpeg_run, "--out", target)
    assert out.returncode == 2
    assert f"--out {target}: is a file, not a folder" in out.stderr and "Errno" not in out.stderr
    assert target.read_text() == "keep me"


def test_unknown_anchor_suggests_the_measured_codec(jpeg_run):
    out = rdbench("bdrate", jpeg_run, "--anchor", "jpg")
    assert out.returncode == 2
    assert "did you mean the measured 'jpeg'?" in out.stderr


def test_checkpoint_of_another_family_points_to_the_model_adapters():
    from compressai.models import Cheng2020Anchor

    from rdbench.learned import checkpoint

    with pytest.raises(checkpoint.CheckpointError) as caught:
        checkpoint.infer_config(Cheng2020Anchor(N=8).state_dict(), "cheng.pt")
    message = str(caught.value)
    assert "cheng.pt" in message and "not a model of the Minnen/Ballé family" in message
    assert "compressai:arch=NAME,checkpoint=FILE" in message and "model:class=MODULE:CLASS,checkpoint=FILE" in message


def test_bdrate_exits_non_zero_when_no_bd_value_was_computed(jpeg_run):
    # two crops against published BPG (a mean over Kodak's 24 images): every row refused
    out = rdbench("bdrate", jpeg_run, "--anchor", "bpg")
    assert out.returncode == 6, out.stdout + out.stderr
    assert "no BD" in out.stdout and "no BD value could be computed" in out.stderr


def _compressai_json(path, name, bpp, psnr):
    import json

    path.write_text(json.dumps({"name": name, "description": "test curve", "meta": {"dataset": "kodak"},
                                "results": {"bpp": bpp, "psnr-rgb": psnr}}))
    return path


@pytest.mark.parametrize("wide", [False, True])
def test_bdrate_warns_on_low_overlap(tmp_path, wide):
    # quality ranges 30..40 and 36..46 dB: they share 4 of 16 dB (25%)
    anchor = _compressai_json(tmp_path / "a.json", "anchor", [0.2, 0.4, 0.8, 1.6], [30, 33, 36.5, 40])
    test = _compressai_json(tmp_path / "t.json", "test", [0.5, 1.0, 2.0, 4.0], [36, 39.5, 43, 46])
    wide_flag = ["--wide"] if wide else []
    out = rdbench("bdrate", anchor, test, "--anchor", "anchor", "--metric", "psnr_rgb", *wide_flag)
    assert out.returncode == 0, out.stderr
    assert "warning: low overlap (under 75% of the joint quality range) for test (25%)" in out.stdout
    # 80% overlap: no warning
    close = _compressai_json(tmp_path / "c.json", "close", [0.25, 0.5, 1.0, 2.0], [32, 35, 38, 40])
    out = rdbench("bdrate", anchor, close, "--anchor", "anchor", "--metric", "psnr_rgb", *wide_flag)
    assert out.returncode == 0 and "low overlap" not in out.stdout


def test_run_of_unreadable_images_says_why_grouped_and_counted(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(3):  # real 16-bit PNGs
        Image.fromarray(np.random.default_rng(i).integers(0, 65535, (32, 48)).astype(np.uint16)).save(folder / f"deep{i}.png")
    (folder / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\nxxxx")
    out = rdbench("run", "--dataset", folder, "--codec", "jpeg", "--quality", "20,40", "--out", tmp_path / "r",
                  "--workers", 1, "--no-progress")
    assert out.returncode == 3
    assert "0 measured, 8 failed" in out.stderr
    lines = out.stderr.splitlines()
    deep = next(line for line in lines if "16-bit PNG" in line)
    assert deep.strip().startswith("6 x 16-bit PNG") and "Convert it to 8 bits" in deep
    assert "3 images: deep0.png, deep1.png, deep2.png" in deep
    torn = next(line for line in lines if "not a readable image" in line)
    assert torn.strip().startswith("2 x ") and "1 image: torn.png" in torn
    assert sum("16-bit PNG" in line for line in lines) == 1  # one line per reason, not per item
    assert "BD needs" not in out.stderr and "no report: no item was measured" in out.stderr
