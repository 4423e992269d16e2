"""`rdbench bdrate`, `rdbench plot`, `rdbench report`: analysis of stored results."""

from __future__ import annotations

import sys

from rdbench.commands.common import EXIT_NO_BD, _split, output_folder
from rdbench.commands.inputs import load_inputs, write_report


BD_SHOWN = ["label", "bd_rate_pct", "bd_metric", "overlap", "n_points", "n_images", "images", "std_pct", "ci95_lo",
            "ci95_hi", "n_failed", "n_dropped", "dropped", "error"]  # what `bdrate` prints, where present


def cmd_bdrate(args) -> int:
    import pandas as pd

    from rdbench.analysis.document import bd_terminal_lines, low_overlap_warning, markdown_table, md_escape
    from rdbench.analysis.published import anchor_if_unmeasured, with_references
    from rdbench.analysis.report import write_csv, write_text
    from rdbench.analysis.per_image import bd_table_per_image
    from rdbench.analysis.tables import bd_table

    inputs = load_inputs(args.results, args.weighting, args.versions, args.label)
    for note in inputs.notes:
        print(f"note: {note}", file=sys.stderr)
    table = with_references(inputs.curves, args.reference or [])
    if args.per_image:
        if inputs.rows is None:
            raise ValueError("--per-image needs results.csv inputs (per-image rows)")
        result = bd_table_per_image(inputs.rows, args.anchor, args.metric, args.method)
    else:
        result = bd_table(table, args.anchor, args.metric, args.method, anchor_if_unmeasured(table, args.anchor),
                          rows=inputs.rows, images=inputs.images, common_images=args.common_images,
                          allow_mismatched_reference=args.allow_mismatched_reference)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 400)
    parts = list(result.groupby("dataset", sort=False)) if len(result) else []
    for dataset, part in parts:
        first = part.iloc[0]
        conventions = "; ".join(dict.fromkeys(f"{m}: {c}" for m, c in zip(part["metric"], part["convention"])))
        print(f"{dataset}: BD versus {first['anchor']} ({first['anchor_source']}; version {first['anchor_version']}), "
              f"{first['mode']}, method {first['method']}; {conventions}")
        warning = low_overlap_warning(part)
        if not args.wide:
            print("\n".join(bd_terminal_lines(part)) + "\n")
            if warning:
                print(f"warning: {warning}\n")
            continue
        shown = [c for c in BD_SHOWN if c in part and not (c in ("error", "dropped") and not part[c].astype(bool).any())
                 and not (c == "images" and part[c].astype(str).str.startswith("same").all())]
        print(part[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n")
        if warning:
            print(f"warning: {warning}\n")
    if args.csv:
        write_csv(result, args.csv)
    if args.markdown:
        text = markdown_table(result) if len(parts) == 1 else "\n\n".join(
            f"## {md_escape(dataset)}\n\n{markdown_table(part)}" for dataset, part in parts)
        write_text(text + "\n", args.markdown)
    if not len(result) or result["bd_rate_pct"].isna().all():
        print(f"rdbench: no BD value could be computed ({len(result)} rows, each refused as shown above)",
              file=sys.stderr)
        return EXIT_NO_BD
    return 0


def cmd_plot(args) -> int:
    from rdbench.analysis.curves import add_curves, curve_groups, file_stem
    from rdbench.analysis.plots import rd_figure
    from rdbench.analysis.published import published
    from rdbench.analysis.report import write_figure
    from rdbench.analysis.summary import references_for
    from rdbench.bench.columns import HEADLINE_METRICS

    out = output_folder(args.out)
    inputs = load_inputs(args.results, args.weighting, args.versions, args.label)
    for note in inputs.notes:
        print(f"note: {note}", file=sys.stderr)
    references = [published(n) for n in args.reference or []]
    table = inputs.curves
    datasets = list(dict.fromkeys(table.loc[table["source"] != "published", "dataset"]))
    out.mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        here = table[table["dataset"] == dataset]
        matching = references_for(references, here, args.allow_mismatched_reference)
        shown = add_curves(here, matching)
        for ref in references:
            if not any(m["source"].iloc[0] == ref["source"].iloc[0] for m in matching):
                print(f"note: {ref['codec'].iloc[0]} is over other images ({ref['dataset'].iloc[0]}, "
                      f"{int(ref['image_set_size'].iloc[0])} images): not on the {dataset} plots "
                      "(--allow-mismatched-reference shows it, labelled)", file=sys.stderr)
        suffix = f"-{file_stem(dataset)}" if len(datasets) > 1 else ""
        names = set(shown["label"].astype(str)) | set(shown["codec"].astype(str))
        unknown = [c for c in _split(args.codec) if c not in names]
        if unknown:
            raise ValueError(f"--codec {', '.join(unknown)}: no such curve on {dataset}; curves: "
                             + ", ".join(dict.fromkeys(shown["label"].astype(str))))
        for metric in args.metric or HEADLINE_METRICS:
            for _, curve in curve_groups(shown):
                if curve[metric].isna().all():
                    print(f"note: {curve['label'].iloc[0]} has no {metric} values: not on rd-{metric}{suffix}"
                          + (" (its MS-SSIM dB is the dB of the mean: --metric ms_ssim_db_of_mean)"
                             if metric == "ms_ssim_db" and curve["ms_ssim_db_of_mean"].notna().any() else ""),
                          file=sys.stderr)
            fig = rd_figure(shown, metric, args.title or "", codecs=_split(args.codec) or None,
                            log_rate=args.log_rate, xlim=args.xlim, ylim=args.ylim)
            for ext in args.format.split(","):
                print(write_figure(fig, out / f"rd-{metric}{suffix}.{ext}", dpi=130))
    return 0


def cmd_report(args) -> int:
    output_folder(args.out)
    inputs = load_inputs(args.results, args.weighting, args.versions, args.label)
    for note in inputs.notes:
        print(f"note: {note}", file=sys.stderr)
    print(write_report(inputs, args.out, args.anchor, args.method, args.reference, args.common_images,
                       args.allow_mismatched_reference))
    return 0
