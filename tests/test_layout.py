"""The shape of the house (DESIGN.md), checked on the source: layers, pure analysis, no import cycle.

Every rdbench module is parsed (never imported). An import inside a function counts as a
dependency as much as one at module level (the layer rules see both), but only module-level
imports can make an import cycle fail at import time, so cycles are judged on those; cycles that
exist only through function-level imports are listed in DEFERRED_CYCLES, each with its reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rdbench"

# Modules that import nothing of rdbench, so that any layer may import them: the package itself
# (__version__), the shared errors and conventions, and where the shipped data folders are.
LEAVES = {"rdbench", "rdbench.errors", "rdbench.conventions", "rdbench.packaged"}
COLUMNS = "rdbench.bench.columns"  # the one module of bench/ that analysis may import: it imports no rdbench
LAYERS = ("rdbench.data", "rdbench.learned", "rdbench.metrics", "rdbench.codecs", "rdbench.bench", "rdbench.analysis",
          "rdbench.ablation")

# What each layer may import besides itself and the leaves (prefixes of module names): DESIGN.md's table.
ALLOWED = {
    "rdbench.data": (),
    "rdbench.learned": (),
    "rdbench.metrics": ("rdbench.data",),  # DESIGN.md: metrics may import data (image loading)
    "rdbench.codecs": ("rdbench.data", "rdbench.learned"),
    "rdbench.bench": ("rdbench.data", "rdbench.codecs", "rdbench.metrics"),
    "rdbench.analysis": (COLUMNS,),
    "rdbench.ablation": LAYERS,
    "rdbench.commands": LAYERS,  # the subcommands: the edge, where files are read and written
    "rdbench.cli": (*LAYERS, "rdbench.commands"),
    "rdbench.__main__": ("rdbench.cli",),
}

# Analysis is pure (DESIGN.md, seam 6): only `published` reads files (the shipped reference curves,
# users' JSON curves) and only `report` writes them. Both import nothing beyond analysis and the
# leaves either: published finds the shipped files through rdbench.packaged; report is handed
# Documents, tables and figures, and needs nothing else.
READER, WRITER = "rdbench.analysis.published", "rdbench.analysis.report"

# Cycles that exist only through function-level imports: (modules of the cycle, why it is harmless).
DEFERRED_CYCLES: dict[frozenset, str] = {}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported rdbench module
    line: int
    deferred: bool  # inside a function: runs when called, not when the module is imported


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _resolve(source: str, module: str | None, level: int) -> str:
    if not level:
        return module or ""
    base = source.split(".") if _is_package(source) else source.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _known(name: str) -> str | None:
    """The rdbench module that importing `name` runs last (its longest prefix that is a module)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(source: str, tree: ast.AST) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                continue  # annotations only: never imported at run time
            inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(source, child.module, child.level)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
            else:
                visit(child, inner)
                continue
            for target in targets:
                known = _known(target) if target.split(".")[0] == "rdbench" else None
                if known and known != source:
                    found.append(Import(source, known, child.lineno, deferred))

    visit(tree, False)
    return found


TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}
IMPORTS = list(dict.fromkeys(imp for name, tree in TREES.items() for imp in imports_of(name, tree)))


def layer(name: str) -> str:
    for prefix in sorted(ALLOWED, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return prefix
    return name


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        if imp.source in LEAVES:
            bad.append(f"{imp.source}:{imp.line} imports {imp.target}: a leaf module imports nothing of rdbench")
            continue
        home = layer(imp.source)
        if home not in ALLOWED:
            bad.append(f"{imp.source}: in no layer of tests/test_layout.py ALLOWED; add it there")
            continue
        if imp.target in LEAVES or _within(imp.target, (home, *ALLOWED[home])):
            continue
        when = "in a function" if imp.deferred else "at module level"
        bad.append(f"{imp.source}:{imp.line} imports {imp.target} {when}; {home} may import "
                   f"{', '.join(ALLOWED[home]) or 'nothing'} besides itself and {', '.join(sorted(LEAVES))}")
    return bad


def test_every_module_belongs_to_a_layer():
    assert not [n for n in MODULES if n not in LEAVES and layer(n) not in ALLOWED]


@pytest.mark.parametrize("prefix", [p for p in ALLOWED if p != "rdbench.learned"] + ["leaves"])
def test_layers_import_only_what_they_may(prefix):
    if prefix == "leaves":
        mine = [i for i in IMPORTS if i.source in LEAVES]
    else:
        mine = [i for i in IMPORTS if layer(i.source) == prefix and i.source not in LEAVES]
    assert violations(mine) == []


def test_learned_is_a_library_of_its_own():
    """learned/ imports nothing of codecs/, data/, bench/ (nor analysis, ablation, the CLI)."""
    assert violations([i for i in IMPORTS if layer(i.source) == "rdbench.learned"]) == []


# -- analysis is pure --------------------------------------------------------------------------

# Calls that touch files, the terminal or the clock, by the called name.
READ_CALLS = {"read_text", "read_bytes", "read_csv", "read_json", "read_table", "read_parquet", "read_excel",
              "read_pickle", "read_hdf", "read_feather", "loadtxt", "genfromtxt", "fromfile", "iterdir", "glob",
              "rglob", "listdir", "scandir", "walk", "exists", "is_file", "is_dir"}
WRITE_CALLS = {"write_text", "write_bytes", "to_csv", "to_json", "to_parquet", "to_excel", "to_pickle", "to_hdf",
               "to_feather", "to_latex", "savefig", "savetxt", "tofile", "mkdir", "makedirs", "unlink", "rmdir",
               "rmtree", "touch", "symlink_to", "copyfile", "copytree"}
OTHER_IMPURE = {"open", "print", "input", "utc_now"}
# module.function calls that read or write files (json.loads / json.dumps work on strings: allowed).
FILE_FUNCTIONS = {("json", "load"): "read", ("json", "dump"): "write", ("pickle", "load"): "read",
                  ("pickle", "dump"): "write", ("tomllib", "load"): "read", ("np", "load"): "read",
                  ("np", "save"): "write", ("np", "savez"): "write", ("numpy", "load"): "read",
                  ("numpy", "save"): "write", ("torch", "load"): "read", ("torch", "save"): "write"}
# Modules whose import in a pure module means files, processes, the environment or the clock.
IMPURE_MODULES = {"os", "sys", "shutil", "tempfile", "pathlib", "glob", "pickle", "subprocess", "urllib", "socket",
                  "datetime", "time"}


def impurities(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, what, kind) for each file, terminal or clock access; kind is read, write or other."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in OTHER_IMPURE:
                found.append((node.lineno, f"{func.id}()", "other"))
            elif isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else None
                if (owner, func.attr) in FILE_FUNCTIONS:
                    found.append((node.lineno, f"{owner}.{func.attr}()", FILE_FUNCTIONS[owner, func.attr]))
                elif func.attr in READ_CALLS:
                    found.append((node.lineno, f".{func.attr}()", "read"))
                elif func.attr in WRITE_CALLS:
                    found.append((node.lineno, f".{func.attr}()", "write"))
                elif func.attr in OTHER_IMPURE:  # Path.open, Image.open, gzip.open, ...
                    found.append((node.lineno, f".{func.attr}()", "other"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] in IMPURE_MODULES:
                    found.append((node.lineno, f"import {name}", "other"))
    return sorted(found)


def test_the_purity_check_finds_what_it_looks_for():
    source = """
import os
from pathlib import Path
import json
def f(df, fig, p):
    open(p)
    Path(p).read_text()
    p.write_bytes(b"")
    with p.open() as fh: pass
    fig.savefig(p)
    df.to_csv(p)
    json.dump({}, p)
    json.loads("{}")
    pd.read_csv(p)
    print(df)
    df.replace("a", "b").rename(columns={}).copy()
"""
    whats = [what for _, what, _ in impurities(ast.parse(source))]
    assert whats == ["import os", "import pathlib", "open()", ".read_text()", ".write_bytes()", ".open()",
                     ".savefig()", ".to_csv()", "json.dump()", ".read_csv()", "print()"]


ANALYSIS = sorted(n for n in MODULES if n.startswith("rdbench.analysis."))


@pytest.mark.parametrize("name", ANALYSIS)
def test_analysis_is_pure(name):
    """No file I/O (nor printing, nor the clock) in analysis, but reading in published and writing in report."""
    kinds, what = {READER: ({"read"}, {"import pathlib"}), WRITER: ({"write"}, {"import pathlib"})}.get(name, ((), ()))
    found = [f"{MODULES[name].name}:{line}: {w}" for line, w, kind in impurities(TREES[name])
             if kind not in kinds and w not in what]
    assert found == []


def test_pure_analysis_imports_neither_the_reader_nor_the_writer():
    """A pure module that imported `published` could read a curve behind its caller's back (as BD tables
    once fell back on a published anchor); the caller loads curves and passes them in."""
    edge = {READER, WRITER}
    assert [f"{i.source}:{i.line} imports {i.target}" for i in IMPORTS
            if i.source in ANALYSIS and i.source not in edge and i.target in edge] == []


def test_the_columns_table_imports_nothing_of_the_pipeline():
    """Analysis imports bench.columns; it must not drag the store, runner or codecs in with it. The
    columns table learns the metric columns from the metrics registry (DESIGN.md seam 8), which is
    itself a leaf: it imports nothing of rdbench but the leaves."""
    registry = "rdbench.metrics.registry"
    assert [i.target for i in IMPORTS if i.source == COLUMNS and i.target not in LEAVES | {registry}] == []
    assert [i.target for i in IMPORTS if i.source == registry and i.target not in LEAVES] == []


# -- no import cycle ---------------------------------------------------------------------------

def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def test_the_cycle_check_finds_a_cycle():
    assert cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c"]]
    assert cycles({("a", "b"), ("b", "c")}) == []


def edges(imports: list[Import]) -> set[tuple[str, str]]:
    """(importer, imported) pairs, with the packages whose __init__ an import runs first: importing
    rdbench.codecs.base from bench/ runs rdbench/codecs/__init__.py too. (A package's own modules
    importing each other while its __init__ runs is the ordinary pattern, not counted.)"""
    found = set()
    for i in imports:
        found.add((i.source, i.target))
        parts = i.target.split(".")
        for end in range(2, len(parts)):
            package = ".".join(parts[:end])
            if not (i.source == package or i.source.startswith(package + ".")):
                found.add((i.source, package))
    return found


def test_no_import_cycle_at_module_level():
    """Module-level imports form no cycle (codecs/external <-> codecs/registry included)."""
    assert cycles(edges([i for i in IMPORTS if not i.deferred])) == []


def test_function_level_imports_add_only_known_cycles():
    """Deferred imports cannot break importing, but a cycle through them is still a tangle: each is listed."""
    unexplained = [c for c in cycles(edges(IMPORTS)) if frozenset(c) not in DEFERRED_CYCLES]
    assert unexplained == []


def test_external_codecs_do_not_import_the_registry():
    """The registry imports the implementations (external.definitions()), never the reverse."""
    assert [i for i in IMPORTS if i.source == "rdbench.codecs.external" and i.target == "rdbench.codecs.registry"] == []


def test_analysis_computes_a_report_without_touching_a_disk(tmp_path, monkeypatch):
    """report_document returns the page and its files as data; the anchor's published curve is passed in."""
    import numpy as np
    import pandas as pd

    from rdbench.analysis.curves import curves
    from rdbench.analysis.summary import report_document
    from rdbench.analysis.tables import bd_table

    monkeypatch.chdir(tmp_path)
    q = np.arange(1, 6)
    rows = pd.DataFrame({"dataset": "d", "image": "i.png", "image_sha256": "a", "width": 8, "height": 8,
                         "codec": np.repeat(["x", "y"], 5), "codec_version": "v", "quality": np.tile(q, 2),
                         "bytes": np.tile(q * 10, 2), "bpp": np.concatenate([q * 0.5, q * 0.4]),
                         "psnr_rgb": np.tile(25.0 + 2 * q, 2), "psnr_y": np.nan, "ms_ssim": np.tile(1 - 0.5 ** q, 2),
                         "ms_ssim_db": np.tile(10 * q * np.log10(2), 2), "enc_s": 0.1, "dec_s": 0.1, "status": "ok"})
    table = curves(rows)
    with pytest.raises(ValueError, match="'z' is not measured"):
        bd_table(table, anchor="z")  # no silent fallback: the caller passes a published curve or gets told
    anchor = table[table["codec"] == "x"].assign(codec="z (published)", source="published: test")
    assert bd_table(table, "z", published_anchor=anchor)["anchor_source"].eq("published: test").all()

    doc = report_document(rows, table, anchor="x", made_at="T", command=["rdbench", "report"])
    assert list(tmp_path.iterdir()) == []
    assert {"curves.csv", "bd-psnr_rgb.csv", "bd-per-image-ms_ssim_db.csv"} <= set(doc.tables)
    assert {"rd-psnr_rgb.png", "rd-psnr_rgb.svg", "bd-ms_ssim_db.png"} <= set(doc.figures)
    assert doc.text.startswith("# rdbench report\n\nMade T by rdbench") and "BD versus x (measured): PSNR-RGB" in doc.text
