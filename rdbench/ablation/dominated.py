"""Why a cell's rate points are left out of BD: which points are dominated, by which, what to change.

A rate point is dominated when a cheaper point of the same curve has at least its quality
(`analysis.curves.operational` leaves it out, and BD needs quality to rise with rate). A barely
trained model has many: its high-lambda points cost more bits for no better image. BD then
refuses the curve with "N points; BD needs at least 4 rate points", which is true but says
neither why nor what to do; `explain` says both. Pure: DataFrames in, text out.
"""

from __future__ import annotations

from rdbench.analysis.bd import MIN_POINTS
from rdbench.analysis.seeds import CURVE_OF_MEAN

ADVICE = ("the model does not yet turn more bits into a better image: train longer ([training] steps), or put "
          "more lambdas between the points that remain ([rates] lambdas)")
TOO_FEW = f"BD needs at least {MIN_POINTS} rate points"  # analysis/bd.py's refusal, recognised here


def _point(quality, lambdas) -> str:
    """'point 3 (lambda 0.013)': a rate point of the grid (qualities are 1-based indices of `lambdas`)."""
    try:
        index = int(quality)
    except (TypeError, ValueError):
        return f"point {quality}"
    if float(quality) == index and 1 <= index <= len(lambdas):
        return f"point {index} (lambda {lambdas[index - 1]:g})"
    return f"point {quality}"


def dominated_points(curve, metric: str) -> list[tuple]:
    """(dominated quality, dominating quality) for each point of one mean curve (quality, bpp, metric)
    that a cheaper point matches or beats: the dominating one is the best cheaper point."""
    points = curve.dropna(subset=[metric]).sort_values("bpp", kind="stable")
    found, best = [], None
    for quality, value in zip(points["quality"], points[metric]):
        if best is None or value > best[1]:
            best = (quality, value)
        else:
            found.append((quality, best[0]))
    return found


def describe(cell: str, curve, metric: str, lambdas) -> str:
    """'' or 'mean-scale: point 5 (lambda 0.0932) is dominated by point 3 (lambda 0.013) (more bits, no
    better psnr_rgb), 2 of 5 points left'."""
    pairs = dominated_points(curve, metric)
    if not pairs:
        return ""
    by: dict = {}
    for point, winner in pairs:
        by.setdefault(winner, []).append(point)
    parts = [f"{', '.join(_point(p, lambdas) for p in points)} {'is' if len(points) == 1 else 'are'} dominated by "
             f"{_point(winner, lambdas)}" for winner, points in by.items()]
    total = curve[metric].notna().sum()
    return (f"{cell}: {'; '.join(parts)} (more bits, no better {metric}), {total - len(pairs)} of {total} points "
            "left")


def run_curve(per_run, cell: str, seed, metric: str):
    """One training run's mean curve (quality, bpp, metric) from per-image run rows (ablation.summary.run_rows)."""
    column, transform = CURVE_OF_MEAN.get(metric, (metric, None))
    rows = per_run[(per_run["cell"] == cell) & (per_run["seed"] == seed)]
    curve = rows.groupby("quality", as_index=False)[["bpp", column]].mean()
    curve[metric] = transform(curve[column]) if transform is not None else curve[column]
    return curve


def explain(error: str, curves: dict, metric: str, lambdas) -> str:
    """`error` with, when it is BD's too-few-points refusal, which points of the named curves were
    dominated and by which, and what to change. curves: {cell name: its mean curve}."""
    if TOO_FEW not in str(error):
        return error
    found = [text for cell, curve in curves.items() if (text := describe(cell, curve, metric, lambdas))]
    if not found:
        return error
    return f"{error}; dominated rate points: {'; '.join(found)}; {ADVICE}"


def dominated_lines(table, cells, metrics, lambdas) -> list[str]:
    """Per metric, every cell's dominated rate points and what dominates them, for the summary's
    Scale section. table: the curve table of the cells (codec = cell name); only complete points
    count, as in BD."""
    lines = []
    for metric in metrics:
        found = []
        for cell in cells:
            curve = table[(table["codec"] == cell) & table["complete"].astype(bool)]
            if text := describe(cell, curve, metric, lambdas):
                found.append(text)
        if found:
            lines.append(f"{metric}: {'; '.join(found)}. Left out of BD (a cell left with fewer than {MIN_POINTS} "
                         f"points gets no BD); {ADVICE}.")
    return lines
