"""CI: the ablation summary regenerated here (`ablate --summary-only` into NEW) keeps every seed
and gives the shipped numbers (SHIPPED): same questions, n_seeds = the config's seeds on every row,
the same per-seed values, and means and intervals equal to 1e-9 (numpy 1.26 and 2.x round the last
digits differently). Exit 1 with the differences otherwise.

    python .ci/check_ablation_summary.py results/ablation NEW
"""

import math
import sys
import tomllib
from pathlib import Path

import pandas as pd

shipped, new = map(Path, sys.argv[1:3])
seeds = tomllib.loads((shipped / "config.toml").read_text())["training"]["seeds"]
key = ["question", "metric"]
a = pd.read_csv(shipped / "ablation_seeds.csv").sort_values(key).reset_index(drop=True)
b = pd.read_csv(new / "ablation_seeds.csv").sort_values(key).reset_index(drop=True)
problems = []
if a[key].values.tolist() != b[key].values.tolist():
    problems.append(f"questions differ: {len(a)} shipped, {len(b)} regenerated")
else:
    for i, row in b.iterrows():
        where = f"{row['question']} ({row['metric']})"
        if row["n_seeds"] != len(seeds):
            problems.append(f"{where}: n_seeds {row['n_seeds']}, the config trains {len(seeds)} ({seeds})")
        if str(row["per_seed"]) != str(a.loc[i, "per_seed"]):
            problems.append(f"{where}: per-seed values {row['per_seed']!r}, shipped {a.loc[i, 'per_seed']!r}")
        for column in ("bd_rate_mean", "bd_rate_ci_low", "bd_rate_ci_high"):
            x, y = float(a.loc[i, column]), float(row[column])
            if not (math.isnan(x) and math.isnan(y)) and not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
                problems.append(f"{where}: {column} {y}, shipped {x}")
if problems:
    print("ablation summary differs from the shipped one:\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"ablation summary: {len(b)} questions, every one over seeds {seeds}, numbers equal to the shipped ones")
