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

The distortion columns come from the metrics registry (rdbench/metrics/registry.py): a metric
added there is a column here, with its unit, label and direction, and everything downstream
(curves, BD, tables, plots, report, CompressAI JSON) follows. This module imports nothing but the
standard library and that registry: analysis imports it, and nothing else of the measuring pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdbench.metrics.registry import DEFAULT, JPEG_AI_METRICS, REGISTRY, bd_column, format_versions, parse_versions


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # "str", "int", "float" or "bool"
    unit: str  # "" for text, counts and ratios without a unit
    label: str  # axis label or table heading
    description: str
    kind: str = ""  # "key" (identifies a row), "rate", "distortion", "time", or "" (provenance)
    title: str = ""  # the name in prose, when shorter than the label

    direction: str = ""  # of a distortion column: "higher" or "lower" is better

    @property
    def short(self) -> str:
        return self.title or self.label


def _metric_columns() -> tuple[Column, ...]:
    """The distortion columns, in the order of the metrics registry (rdbench/metrics/registry.py)."""
    return tuple(
        Column(c.name, "float", c.unit, c.label, c.description, kind="distortion", title=c.title,
               direction=metric.direction)
        for metric in REGISTRY.values() for c in metric.columns
    )


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
    Column("target", "str", "", "target", "for a row of `rdbench run --target-bpp/--target-psnr`, the target its "
           "quality was searched for: 'bpp=0.25', 'bpp<=0.25' (the closest from below), 'psnr_rgb=32'; empty for "
           "the rows of a quality ladder. A target row is keyed by its target, not by the quality found",
           kind="key"),
    Column("target_bound", "str", "", "target bound", "for a target row whose target the codec cannot reach on the "
           "image: which bound of its quality scale was hit and the value reached there; empty otherwise"),
    Column("bytes", "int", "B", "bytes", "length of the whole file or bitstream, headers included", kind="rate"),
    Column("bpp", "float", "bit/px", "bits per pixel (whole file)", "8 x bytes / (width x height)",
           kind="rate", title="bpp"),
    Column("bpp_estimated", "float", "bit/px", "estimated bits per pixel",
           "a learned model's own -log2 likelihood estimate of the rate", kind="rate"),
    *_metric_columns(),
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
    Column("metric_versions", "str", "", "metric implementations", "'name=implementation version; ...' for each "
           "metric measured in the row: part of a value's identity (two implementations are never averaged or "
           "compared)"),
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
    Column("metric_versions", "str", "", "metric implementations", "'name=implementation version; ...' of the "
           "curve's metrics (MIXED: rows measured by several implementations, whose values are left out)"),
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
KEY = _names("key")  # a row's identity in the store: (image_sha256, codec, codec_version, quality, target)
TEXT_COLUMNS = tuple(c.name for c in RESULT_COLUMNS if c.dtype == "str")
METRICS = _names("distortion")  # every metric column of the registry, in its order
DEFAULT_METRICS = tuple(c for m in DEFAULT for c in m.column_names)  # what `rdbench run` measures by default
DB_METRICS = tuple(name for name in METRICS if BY_NAME[name].unit == "dB")
TIMES = _names("time")  # enc_s, dec_s
HEADLINE_METRICS = ("psnr_rgb", "ms_ssim_db")  # what reports, plots and the ablation show by default
# what a report shows a BD table for: the headline metrics, then every other metric's BD column
# (the report keeps those that hold values)
REPORT_METRICS = (*HEADLINE_METRICS, *(c for c in (bd_column(m) for m in REGISTRY) if c not in HEADLINE_METRICS
                                      and c not in DEFAULT_METRICS))
# JPEG AI's summary: (metric name, the column its BD-rate is on, or None when rdbench has no such metric)
JPEG_AI_COLUMNS = tuple((name, bd_column(name)) for name in JPEG_AI_METRICS)
CURVE_IDENTITY = ("dataset", "image_set", "codec", "codec_version", "source")  # one curve; nothing groups by fewer
CURVE_METRICS = (*METRICS, "ms_ssim_db_of_mean")  # what a curve has per point
CURVE_DB_METRICS = (*DB_METRICS, "ms_ssim_db_of_mean")
BD_METRICS = (*METRICS, "ms_ssim_db_of_mean")  # what BD can be computed on (each with its direction)
CURVE_COLUMNS = ("dataset", "image_set", "image_set_size", "codec", "codec_version", "label", "source", "quality",
                 "n_images", "complete", "bpp", *CURVE_METRICS, *TIMES, "weighting", "conventions", "metric_versions")
METRIC_COLUMNS = {m.name: m.column_names for m in REGISTRY.values()}  # each metric's result columns
METRIC_OF = {**{c: name for name, cs in METRIC_COLUMNS.items() for c in cs}, "ms_ssim_db_of_mean": "ms_ssim"}


def label(name: str) -> str:
    """The axis label or table heading of a column (its name when it is not one of ours)."""
    column = BY_NAME.get(name)
    return column.label if column else name


__all__ = ["format_versions", "parse_versions"]  # the `metric_versions` cell's format, for analysis


def direction(name: str) -> str:
    """'higher' or 'lower': which values of a distortion column are better ('higher' when not declared)."""
    column = BY_NAME.get(name)
    return column.direction if column and column.direction else "higher"


def title(name: str) -> str:
    """The short name of a column in prose (PSNR-RGB), falling back to its label."""
    column = BY_NAME.get(name)
    return column.short if column else name
