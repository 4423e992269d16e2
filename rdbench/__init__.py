"""rdbench: rate-distortion benchmarking of image codecs.

Importing this package is cheap: torch, compressai and matplotlib are imported only by the
modules that need them.
"""

__version__ = "0.1.0"
