"""The errors every layer of rdbench shares.

Each is an `RdbenchError`, so a caller can catch rdbench's own, named failures apart from bugs;
each also keeps the built-in base it always had (ValueError for bad input, RuntimeError for a
failed operation), so existing `except ValueError` code goes on working. Errors that belong to
one module only (BDError, StoreError, CheckpointError, ...) live there and derive from these.
"""

from __future__ import annotations


class RdbenchError(Exception):
    """Base of every error rdbench raises on purpose; its message names the file or item at fault."""


class CodecError(RdbenchError, RuntimeError):
    """An encode or decode that failed; recorded in the result row, the run goes on."""


class CodecUnavailable(RdbenchError, RuntimeError):
    """A codec that cannot run here (missing binary or package); the message says how to fix it."""


class ImageError(RdbenchError, ValueError):
    """An image file that cannot be read as 8-bit RGB; the message names the file."""


class DatasetError(RdbenchError, RuntimeError):
    """A dataset that cannot be used: folder missing, file failing verification, download failed."""


class ClusterError(RdbenchError, RuntimeError):
    """A Dask cluster that cannot be reached or was lost mid-run; the message names its address.

    Every row computed before the loss is stored: the same command run again completes the grid."""
