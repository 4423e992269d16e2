"""Learned codecs: the Minnen, Ballé & Toderici (2018) model family, its exact entropy coding,
checkpoints and training. Importing this package imports torch and compressai."""
