"""rdbench: rate-distortion benchmarking of image codecs.

Importing this package is cheap: torch, compressai and matplotlib are imported only by the
modules that need them.
"""

__version__ = "0.1.0"

# The libraries whose versions a result depends on: `rdbench --version`, runs.jsonl and the
# report name them (numbers move with numpy and pandas; learned codecs with torch, CompressAI and
# constriction). Read from the installed packages' metadata: nothing is imported.
LIBRARIES = ("numpy", "pandas", "scipy", "torch", "compressai", "constriction")


def library_versions() -> dict:
    """{library: installed version, or None where it is not installed}, for LIBRARIES."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def describe_libraries(versions: dict) -> str:
    """'numpy 2.4.6, pandas 3.1.1, ..., torch not installed' (versions: library_versions())."""
    return ", ".join(f"{name} {v}" if v else f"{name} not installed" for name, v in versions.items())
