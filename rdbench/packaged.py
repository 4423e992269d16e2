"""Where the declarative data folders (codecs/, datasets/) are, installed or in a checkout.

A wheel carries them as the packages rdbench._codec_specs and rdbench._manifests (see
pyproject.toml); in a source checkout, or when the checkout's rdbench/ shadows an installed
copy, they are the top-level folders beside rdbench/.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def packaged_folder(package: str, repo_folder: str) -> Traversable:
    try:
        return resources.files(package)
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / repo_folder


def codec_specs_folder() -> Traversable:
    return packaged_folder("rdbench._codec_specs", "codecs")


def manifests_folder() -> Traversable:
    return packaged_folder("rdbench._manifests", "datasets")


def reference_folder() -> Traversable:
    """Published RD curves shipped with rdbench (see reference/SOURCE.md)."""
    return resources.files("rdbench") / "reference"
