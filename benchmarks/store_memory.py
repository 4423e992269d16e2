"""Peak memory of planning a run against a large results.csv (issue 22).

Writes a synthetic results.csv of --rows rows (every column filled as a real run fills it: 1,000
images x 30 codecs x 10 qualities for the default 300,000), then, in a fresh child process, opens
the ResultStore and computes its done keys, as `rdbench run` does before any work, and prints the
child's peak resident memory (ru_maxrss) beside that of a child that only imports the store.

    python benchmarks/store_memory.py --rows 300000
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from rdbench.bench.store import ResultStore
t0 = time.perf_counter()
if sys.argv[2] == "open":
    with ResultStore(sys.argv[1]) as store:
        n = len(store.done_keys())
else:
    n = 0
print(json.dumps({"keys": n, "seconds": time.perf_counter() - t0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def synthetic(path: Path, rows: int) -> None:
    from rdbench.bench.store import COLUMNS

    images, codecs, qualities = max(rows // 300, 1), 30, 10
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        n = 0
        for i in range(images):
            sha = f"{i:064x}"
            for c in range(codecs):
                for q in range(qualities):
                    if n == rows:
                        return
                    values = {"dataset": "synthetic", "image": f"img{i:05d}.png", "image_sha256": sha, "width": 768,
                              "height": 512, "codec": f"codec{c}:option=value", "codec_version": f"codec{c} 1.2.3",
                              "quality": 5 + 5 * q, "bytes": 12345 + n, "bpp": 0.1234567890123 + n * 1e-9,
                              "bpp_estimated": "", "psnr_rgb": 31.23456789012345, "psnr_y": 32.3456789012345,
                              "psnr_ycbcr": 33.456789012345, "ms_ssim": 0.9876543210987654,
                              "ms_ssim_db": 19.123456789012345, "enc_s": 0.0123456789, "dec_s": 0.00987654321,
                              "setup_s": "", "status": "ok", "error": "", "note": "", "rdbench_version": "0.1.0",
                              "finished_at": "2026-12-07T14:00:00.123456Z"}
                    writer.writerow([values.get(c, "") for c in COLUMNS])
                    n += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=300_000)
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synthetic(Path(tmp) / "results.csv", args.rows)
        size = (Path(tmp) / "results.csv").stat().st_size
        result = {"rows": args.rows, "file_mb": size / 2**20}
        for mode in ("import", "open"):
            done = subprocess.run([sys.executable, "-c", CHILD, tmp, mode], capture_output=True, text=True, check=True)
            result[mode] = json.loads(done.stdout)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
