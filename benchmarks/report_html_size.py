"""report.html per-image view at N images: size, seconds, peak memory."""
import resource, sys, time
import numpy as np, pandas as pd
from rdbench.analysis.html import _per_image_plot
n = int(sys.argv[1])
rng = np.random.default_rng(0)
rows = []
for i in range(n):
    for c in ("jpeg", "webp", "jpeg2000"):
        for q in range(6):
            rows.append({"image": f"img{i:05d}.png", "codec": c, "quality": 10 + 10 * q, "status": "ok",
                         "bpp": 0.1 * (q + 1) + rng.random() * 0.01, "psnr_rgb": 25 + 2 * q + rng.random()})
df = pd.DataFrame(rows)
t = time.perf_counter()
fig = _per_image_plot(df, "psnr_rgb", "per image")
text = fig.to_html(full_html=False, include_plotlyjs=False)
print(f"{n} images: {len(text)/1e6:.1f} MB, {time.perf_counter()-t:.1f} s, peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MB")
