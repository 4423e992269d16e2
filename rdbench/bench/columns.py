"""Every column rdbench writes: one table of name, type, unit and label.

A result row (results.csv) has one column per measured or identifying quantity, in the order of
RESULT_COLUMNS; a curve (curves.csv, analysis/curves.py) aggregates rows per curve identity
(dataset, image set, codec, codec version; CURVE_IDENTITY) and quality into CURVE_COLUMNS. The
store, the curves, the plots, the report and the command line all read these tuples; no other
module keeps a list of column names or labels.

`label` is what an axis or a table heading shows (unit included), `title` the short name used in
prose ("BD versus bpg: PSNR-RGB"). `dtype` is the logical type: "str" columns are read as text
whatever they look like (a codec version "1.0" stays "1.0"); numbers are left to pandas, since a
failed item leaves them empty and qualities may be integers or fractions.

This module imports nothing but the standard library: analysis imports it, and nothing else of
the measuring pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # "str", "int", "float" or "bool"
    unit: str  # "" for text, counts and ratios without a unit
    label: str  # axis label or table heading
    description: str
    kind: str = ""  # "key" (identifies a row), "rate", "distortion", "time", or "" (provenance)
    title: str = ""  # the name in prose, when shorter than the label

    @property
    def short(self) -> str:
        return self.title or self.label


RESULT_COLUMNS: tuple[Column, ...] = (
    Column("dataset", "str", "", "dataset", "dataset name (a manifest name or the folder's name)"),
    Column("image", "str", "", "image", "image file name within the dataset"),
    Column("image_sha256", "str", "", "image SHA-256", "SHA-256 of the decoded 8-bit RGB pixels "
           "('file:<sha256>' of the bytes for an unreadable file)", kind="key"),
    Column("width", "int", "px", "width (px)", "image width"),
    Column("height", "int", "px", "height (px)", "image height"),
    Column("codec", "str", "", "codec", "the codec spec string, verbatim", kind="key"),
    Column("codec_version", "str", "", "codec version", "the exact implementation (library and version)", kind="key"),
    Column("quality", "float", "", "quality", "the codec's own quality value (integral values written as integers)",
           kind="key"),
    Column("bytes", "int", "B", "bytes", "length of the whole file or bitstream, headers included", kind="rate"),
    Column("bpp", "float", "bit/px", "bits per pixel (whole file)", "8 x bytes / (width x height)",
           kind="rate", title="bpp"),
    Column("bpp_estimated", "float", "bit/px", "estimated bits per pixel",
           "a learned model's own -log2 likelihood estimate of the rate", kind="rate"),
    Column("psnr_rgb", "float", "dB", "PSNR RGB (dB)", "PSNR over all pixels and the three channels, peak 255",
           kind="distortion", title="PSNR-RGB"),
    Column("psnr_y", "float", "dB", "PSNR Y (dB)", "PSNR of BT.601 luma", kind="distortion", title="PSNR-Y"),
    Column("psnr_ycbcr", "float", "dB", "PSNR YCbCr (dB)", "(6 PSNR_Y + PSNR_Cb + PSNR_Cr) / 8 on BT.709 full-range "
           "YCbCr, peak 255 (JPEG AI's and MPEG's weighting)", kind="distortion", title="PSNR-YCbCr"),
    Column("ms_ssim", "float", "", "MS-SSIM", "MS-SSIM (linear, 0..1), per channel then averaged", kind="distortion"),
    Column("ms_ssim_db", "float", "dB", "MS-SSIM (dB)", "-10 log10(1 - MS-SSIM); on a curve, the mean of "
           "per-image dB values (see ms_ssim_db_of_mean)", kind="distortion"),
    Column("enc_s", "float", "s", "encode time (s)", "wall-clock seconds of the codec's encode call", kind="time"),
    Column("dec_s", "float", "s", "decode time (s)", "wall-clock seconds of the codec's decode call", kind="time"),
    Column("setup_s", "float", "s", "setup time (s)", "seconds the worker spent loading and warming up the codec "
           "(untimed in enc_s and dec_s) just before this item: on its first item of the codec, and of each further "
           "model of a learned codec, in each worker; empty otherwise"),
    Column("parameters", "int", "", "parameters", "a learned model's parameter count (compressai: and model: codecs)"),
    Column("enc_kmac_px", "float", "kMAC/px", "encoder kMAC/px", "thousands of multiply-accumulates per pixel the "
           "encoder's networks compute (learned/any_model.complexity)"),
    Column("dec_kmac_px", "float", "kMAC/px", "decoder kMAC/px", "thousands of multiply-accumulates per pixel the "
           "decoder's networks compute (learned/any_model.complexity)"),
    Column("decode_check", "str", "", "decode check", "with --check-decode (learned codecs): 'identical' when a "
           "second decode in another process, with another torch thread count and on the CPU, gave the same pixels; "
           "'mismatch: ...' or 'error: ...' otherwise; empty when not checked"),
    Column("status", "str", "", "status", "'ok', or 'error' (the row records a failure)"),
    Column("error", "str", "", "error", "what failed, for an error row"),
    Column("note", "str", "", "note", "conversions applied to the image, reasons a metric is missing"),
    Column("rdbench_version", "str", "", "rdbench version", "the rdbench that measured the row"),
    Column("finished_at", "str", "", "finished at", "UTC time the row was measured (ISO 8601)"),
)

# Columns a curve has beyond the result columns it averages.
CURVE_ONLY_COLUMNS: tuple[Column, ...] = (
    Column("source", "str", "", "source", "'measured', 'published: ...' or 'file: ...'"),
    Column("n_images", "int", "", "images", "images the point averages"),
    Column("complete", "bool", "", "complete", "every image of the curve's image set reached this point "
           "(incomplete points are left out of BD)"),
    Column("weighting", "str", "", "weighting", "'mean' of per-image values, or 'pixels'-weighted"),
    Column("image_set", "str", "", "image set", "SHA-256 of the curve's images' pixel SHA-256s (hex, sorted, one per "
           "line); with image_set_size, the identity of the images a curve was measured on"),
    Column("image_set_size", "int", "", "images in set", "images in the curve's image set"),
    Column("label", "str", "", "curve", "the curve's name in legends and tables: the codec spec, with its version in "
           "brackets when the table holds several versions of that spec"),
    Column("ms_ssim_db_of_mean", "float", "dB", "MS-SSIM (dB of mean)", "-10 log10(1 - mean MS-SSIM): the dB of the "
           "averaged linear MS-SSIM (CompressAI's and the published curves' convention); ms_ssim_db of a curve is the "
           "mean of per-image dB values instead", kind="distortion", title="MS-SSIM (dB of mean)"),
    Column("conventions", "str", "", "conventions", "how the curve's distortion values were averaged (which MS-SSIM "
           "dB convention its columns hold)"),
)

# Columns of the report's speed table (analysis/items.py), one row per dataset, codec and version.
SPEED_COLUMNS: tuple[Column, ...] = (
    Column("qualities", "str", "", "qualities", "the range of qualities measured, in the codec's own scale"),
    Column("n_items", "int", "", "items", "items measured ok (image x quality)"),
    Column("megapixels", "float", "MP", "megapixels", "pixels of one image, mean over the items, in millions"),
    Column("enc_s_per_image", "float", "s", "encode s/image", "mean enc_s over the ok items"),
    Column("dec_s_per_image", "float", "s", "decode s/image", "mean dec_s over the ok items"),
    Column("enc_mpx_s", "float", "MP/s", "encode MP/s", "megapixels encoded per second: the items' pixels over their "
           "summed enc_s"),
    Column("dec_mpx_s", "float", "MP/s", "decode MP/s", "megapixels decoded per second: the items' pixels over their "
           "summed dec_s"),
    Column("parameters", "int", "", "parameters", "a learned model's parameters (the largest of the codec's models)"),
    Column("enc_kmac_px", "float", "kMAC/px", "encoder kMAC/px", "mean over the items of the encoder's kMAC per pixel"),
    Column("dec_kmac_px", "float", "kMAC/px", "decoder kMAC/px", "mean over the items of the decoder's kMAC per pixel"),
)

BY_NAME: dict[str, Column] = {c.name: c for c in (*RESULT_COLUMNS, *CURVE_ONLY_COLUMNS, *SPEED_COLUMNS)}


def _names(kind: str) -> tuple[str, ...]:
    return tuple(c.name for c in RESULT_COLUMNS if c.kind == kind)


RESULT_NAMES = tuple(c.name for c in RESULT_COLUMNS)  # the header of results.csv, in order
KEY = _names("key")  # a row's identity in the store: (image_sha256, codec, codec_version, quality)
TEXT_COLUMNS = tuple(c.name for c in RESULT_COLUMNS if c.dtype == "str")
METRICS = _names("distortion")  # psnr_rgb, psnr_y, psnr_ycbcr, ms_ssim, ms_ssim_db
DB_METRICS = tuple(name for name in METRICS if BY_NAME[name].unit == "dB")  # BD-metric differences are in dB
TIMES = _names("time")  # enc_s, dec_s
HEADLINE_METRICS = ("psnr_rgb", "ms_ssim_db")  # what reports, plots and the ablation show by default
CURVE_IDENTITY = ("dataset", "image_set", "codec", "codec_version", "source")  # one curve; nothing groups by fewer
CURVE_METRICS = (*METRICS, "ms_ssim_db_of_mean")  # what a curve has per point
CURVE_DB_METRICS = (*DB_METRICS, "ms_ssim_db_of_mean")  # what BD can be computed on
CURVE_COLUMNS = ("dataset", "image_set", "image_set_size", "codec", "codec_version", "label", "source", "quality",
                 "n_images", "complete", "bpp", *CURVE_METRICS, *TIMES, "weighting", "conventions")


def label(name: str) -> str:
    """The axis label or table heading of a column (its name when it is not one of ours)."""
    column = BY_NAME.get(name)
    return column.label if column else name


def title(name: str) -> str:
    """The short name of a column in prose (PSNR-RGB), falling back to its label."""
    column = BY_NAME.get(name)
    return column.short if column else name
