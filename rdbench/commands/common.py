"""What the subcommands share: exit codes, the default output folder, small argument helpers."""

from __future__ import annotations

import re
import sys
from pathlib import Path




EXIT_USAGE = 2  # bad input, unavailable codec: nothing was run
EXIT_ITEMS_FAILED = 3  # the run finished but some items failed (recorded in results.csv)
EXIT_CLUSTER = 4  # the Dask scheduler could not be reached or was lost (rows received are stored)
EXIT_STORE = 5  # the disk or the result store failed mid-run (full, read-only): the rows stored are kept
EXIT_NO_BD = 6  # `bdrate` finished but no BD value could be computed (every row says why)
# `rdbench run` without --out writes DEFAULT_RESULTS_DIR/<dataset> under the current folder: never
# the shipped, tracked results/ of a checkout (.gitignore lists it).
DEFAULT_RESULTS_DIR = "rdbench-results"


def output_folder(path, option: str = "--out"):
    """The folder an option names for output, refused (ValueError, before any work) when it names a file."""
    from pathlib import Path

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {path}: is a file, not a folder; name a new or existing folder for the output")
    return folder


def default_out_dir(dataset_name: str) -> Path:
    """DEFAULT_RESULTS_DIR/<the dataset's name as one safe folder name>: a name from outside (a
    folder called `..`, `.`, `a/b`, or empty) never leads the output out of DEFAULT_RESULTS_DIR."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", dataset_name).strip("._") or "dataset"
    return Path(DEFAULT_RESULTS_DIR) / name


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _progress_printer():
    """Training progress: a redrawn bar on a terminal, one line per report otherwise."""
    tty = sys.stderr.isatty()

    def show(line: str) -> None:
        if tty and line.startswith("step "):
            done, total = (int(x) for x in line.split()[1].split("/"))
            filled = int(30 * done / max(total, 1))
            end = "\n" if done >= total else ""
            print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {line}", end=end, file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    return show


def _require_learned(command: str) -> None:
    """Stop a torch-only command with the install hint (rather than an import traceback)."""
    from rdbench.codecs.base import CodecUnavailable
    from rdbench.codecs.registry import missing_learned_packages

    missing = missing_learned_packages()
    if missing:
        raise CodecUnavailable(f"rdbench {command} needs {', '.join(missing)}: pip install 'rdbench[learned]'")


def _deprecated(args, renames) -> None:
    """Old option spellings still work, with a note: (old dest, new dest, old option, new option)."""
    for old_dest, new_dest, old, new in renames:
        value = getattr(args, old_dest, None)
        if value is not None:
            print(f"rdbench: {old} is deprecated: use {new}", file=sys.stderr)
            setattr(args, new_dest, value)
