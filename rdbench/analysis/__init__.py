"""Analysis: pure functions from result rows to curves, BD numbers, tables, figures and pages.

Reading order: curves (rows -> one curve per dataset, image set, codec and version), bd (the
Bjøntegaard deltas of two curves), tables (every curve against an anchor, per dataset, under the
image-set and convention rules), per_image (BD per image, then mean and bootstrap interval), plots (Figures), document and summary (a report as data),
published (the only reader: shipped and users' reference curves), report (the only writer).

Everything but `published` and `report` takes DataFrames and returns DataFrames, Figures or
Documents, and imports nothing of rdbench but analysis, bench.columns and the shared leaves
(tests/test_layout.py checks both).
"""

# The published curves every report shows beside the measured ones (`--reference` adds to them).
# Here, in a module that imports nothing, so that the command line's help can name them cheaply.
DEFAULT_REFERENCES = ("bpg", "mbt2018")
