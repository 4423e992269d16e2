"""One answer per ablation question: each (test, anchor, metric) computed once, read everywhere.

The per-cell tables, the bar and trade-off charts, the questions table and the "what is
resolved" section of ablation.md all show BD-rates between cells. They used to compute them
separately, on two MS-SSIM dB conventions, so that one question had two numbers and two verdicts.
Here every such number comes from one `analysis.seeds.seed_bd` call (over seeds) per (test,
anchor, metric), on the metric `summary.QUESTION_METRIC` names, with its interval, its verdict
and, where BD refused too few points, which rate points were dominated (ablation/dominated.py).
"""

from __future__ import annotations

import pandas as pd

from rdbench.ablation.dominated import explain, run_curve
from rdbench.analysis.seeds import per_seed_text, seed_bd

COLUMNS = ["question", "test", "anchor", "bd_rate_mean", "bd_rate_ci_low", "bd_rate_ci_high", "n_seeds", "n_images",
           "resolved", "verdict", "per_seed", "method", "error", "note"]


def verdict(mean: float, resolved: bool, error: str) -> str:
    """A question's verdict in words: resolved (which side), not resolved, or no verdict and why."""
    if error:
        return f"no verdict ({error})"
    if pd.isna(mean):
        return "no verdict (no number)"
    side = "test needs fewer bits" if mean < 0 else "test needs more bits"
    return f"resolved: {side}" if resolved else "not resolved (the interval contains 0)"


class Answers:
    """The seed answers of one summary: per_run are the per-image rows of every (cell, seed)
    (ablation.summary.run_rows); lambdas name the rate points in explanations."""

    def __init__(self, per_run: pd.DataFrame, lambdas=()):
        self.per_run = per_run
        self.lambdas = tuple(lambdas)
        self._done: dict = {}

    def one(self, test: str, anchor: str, metric: str):
        key = (test, anchor, metric)
        if key not in self._done:
            self._done[key] = seed_bd(self.per_run, test, anchor, metric)
        return self._done[key]

    def _explained(self, result) -> str:
        error = result.error
        if not error or not error.startswith("seed "):
            return error
        seed_text = error[len("seed "):].split(":", 1)[0]
        seed = next((s for s in result.seeds if str(s) == seed_text), None)
        if seed is None:
            return error
        curves = {cell: run_curve(self.per_run, cell, seed, result.metric) for cell in (result.anchor, result.test)}
        return explain(error, curves, result.metric, self.lambdas)

    def table(self, questions, metric: str) -> pd.DataFrame:
        """One row per (question, test, anchor): the answer on `metric`, its interval and verdict."""
        out = []
        for question, test, anchor in questions:
            r = self.one(test, anchor, metric)
            error = self._explained(r)
            out.append({"question": question, "test": test, "anchor": anchor, "bd_rate_mean": r.mean,
                        "bd_rate_ci_low": r.ci_low, "bd_rate_ci_high": r.ci_high, "n_seeds": r.n_seeds,
                        "n_images": r.n_images, "resolved": r.resolved, "verdict": verdict(r.mean, r.resolved, error),
                        "per_seed": per_seed_text(r), "method": r.method, "error": error, "note": r.note})
        return pd.DataFrame(out, columns=COLUMNS)
