"""The reading edge of the analysis commands: result folders, results.csv and JSON curves into
DataFrames, the runs that made them (runs.jsonl, paths made relative), and writing a report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import os
import re
import sys




@dataclass
class Inputs:
    """What the analysis commands read: per-image rows (None with JSON inputs only), curves, which
    images each image set holds (measured and published), notes on what was left out, the paths."""

    rows: object
    curves: object
    images: object
    notes: list = field(default_factory=list)
    paths: list = field(default_factory=list)


LABEL_OPTION = "label"  # `jpeg:label=Baseline JPEG`: a legend text, stripped from the spec before anything runs


def split_label(spec: str) -> tuple[str, str | None]:
    """A codec spec without its `label=` option (the identity that is measured and stored) and the label.
    A label is presentation: `jpeg:label=A` and `jpeg` are one curve."""
    from rdbench.codecs.base import parse_spec

    parsed = parse_spec(spec)
    if LABEL_OPTION not in parsed.options:
        return spec, None
    label = parsed.options[LABEL_OPTION]
    if not label:
        raise ValueError(f"--codec {spec}: label= needs a text")
    rest = [f"{k}={v}" for k, v in parsed.options.items() if k != LABEL_OPTION]
    return parsed.name + (":" + ",".join(rest) if rest else ""), label


def labels_from_runs(runs: list[dict]) -> dict[str, str]:
    """{spec: label} from the `label=` options of the --codec arguments of logged runs (newest last wins)."""
    from rdbench.codecs.base import split_spec_list

    labels = {}
    for run in runs:
        argv = [str(a) for a in run.get("command") or []]
        given = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--codec"]
        given += [a.split("=", 1)[1] for a in argv if a.startswith("--codec=")]
        for spec in split_spec_list(given):
            try:
                bare, label = split_label(spec)
            except ValueError:
                continue
            if label:
                labels[bare] = label
    return labels


def load_inputs(paths: list[str], weighting: str = "mean", versions: str = "newest", labels=None) -> Inputs:
    """Rows from the results.csv inputs (folders or files; a measurement in two inputs counted once,
    only the newest version of each codec unless versions="all"), curves from the rows and from
    the CompressAI-style JSON inputs. labels: `--label SPEC=TEXT` values; the `label=` of the
    inputs' logged runs apply too (a --label of the same spec wins)."""
    from rdbench.analysis.styles import apply_labels, parse_labels

    import pandas as pd

    from rdbench.analysis.curves import curves, drop_duplicate_rows, image_index, relabel, select_versions
    from rdbench.analysis.published import read_compressai_json, reference_images
    from rdbench.bench.store import read_results

    rows, tables, notes = [], [], []
    for p in paths:
        if str(p).endswith(".json"):
            tables.append(read_compressai_json(p))
        else:
            rows.append(read_results(p))
    all_rows = None
    images = [reference_images()]
    if rows:
        all_rows, duplicates = drop_duplicate_rows(pd.concat(rows, ignore_index=True))
        # error messages name files by absolute path: relative to here, as the runs table's paths
        errors = all_rows["error"].notna()
        all_rows.loc[errors, "error"] = all_rows.loc[errors, "error"].map(relative_paths)
        if duplicates:
            notes.append(f"{duplicates} rows are in more than one input (same image, codec, version and quality): "
                         "each counted once")
        all_rows, left_out = select_versions(all_rows, versions)
        notes += left_out
        tables.insert(0, curves(all_rows, weighting))
        images.insert(0, image_index(all_rows))
    tables = [t for t in tables if len(t)]
    table = relabel(pd.concat(tables, ignore_index=True)) if tables else curves(pd.DataFrame(columns=["status"]))
    images = pd.concat(images, ignore_index=True).drop_duplicates(["image_set", "image_sha256"])
    logged = labels_from_runs(read_runs(paths))
    logged = {spec: text for spec, text in logged.items() if (table["codec"].astype(str) == spec).any()}
    table = apply_labels(table, {**logged, **parse_labels(labels)})
    return Inputs(all_rows, table, images, notes, [str(p) for p in paths])


# An absolute path inside a command-line word: after its start, '=' or ',' (--out=/x, checkpoint=/x,...).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/[^\s,;'\"()]+")


def relative_paths(text: str, base: Path | None = None) -> str:
    """`text` with every absolute path made relative to `base` (default: the current directory)."""
    base = base or Path.cwd()

    def relative(match: re.Match) -> str:
        try:
            return os.path.relpath(match.group(0), base)
        except ValueError:  # another drive (Windows)
            return match.group(0)

    return _ABSOLUTE_PATH.sub(relative, text)


def relative_command(argv) -> list[str]:
    """A logged command line without machine paths: the program as `rdbench`, other paths relative."""
    argv = [str(a) for a in argv]
    if argv and Path(argv[0]).name in ("rdbench", "__main__.py"):
        argv[0] = "rdbench"
    return [relative_paths(a) for a in argv]


def read_runs(paths: list[str]) -> list[dict]:
    """Every run logged in the inputs' runs.jsonl (result folders, or the folder of a results.csv),
    oldest first, with machine paths made relative (relative_command)."""
    import json

    runs, seen = [], set()
    for p in paths:
        folder = Path(p) if Path(p).is_dir() else Path(p).parent
        log = folder / "runs.jsonl"
        if str(p).endswith(".json") or not log.is_file() or log.resolve() in seen:
            continue
        seen.add(log.resolve())
        for line in log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a torn last line of a killed run
                continue
            entry["command"] = relative_command(entry.get("command") or [])
            for key in ("dataset_source", "out_dir"):
                if isinstance(entry.get(key), str):
                    entry[key] = relative_paths(entry[key])
            runs.append(entry)
    return sorted(runs, key=lambda r: str(r.get("finished_at", "")))


def write_report(inputs: Inputs, out, anchor: str = "bpg", method: str = "pchip", references=None,
                 common_images: bool = False, allow_mismatched_reference: bool = False):
    """The report on these inputs into OUT, with the published curves it names and the runs.jsonl of
    the inputs loaded here."""
    from rdbench.analysis.published import PUBLISHED_ALIASES, anchor_if_unmeasured, published
    from rdbench.analysis.report import write_document
    from rdbench.analysis.summary import DEFAULT_REFERENCES, report_document
    from rdbench.conventions import utc_now

    document = report_document(
        inputs.rows, inputs.curves, anchor, method,
        # --reference adds to the default references, each curve once (an alias and its file stem are one)
        references=[published(n) for n in dict.fromkeys(PUBLISHED_ALIASES.get(n, n)
                                                        for n in [*DEFAULT_REFERENCES, *(references or [])])],
        published_anchor=anchor_if_unmeasured(inputs.curves, anchor),
        made_at=utc_now(), command=relative_command(sys.argv), runs=read_runs(inputs.paths), notes=inputs.notes,
        images=inputs.images, common_images=common_images, allow_mismatched_reference=allow_mismatched_reference,
    )
    return write_document(document, out)
