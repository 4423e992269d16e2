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
