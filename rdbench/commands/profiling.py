"""`rdbench profile SPEC`: what one codec configuration costs, on one image.

Loads the codec as a run does (bad input: exit 2), warms it up (untimed, as a run's first item),
then encodes and decodes the image --repeats times and reports the median seconds, the rate and
PSNR of the stream, and for learned models with CompressAI's contract their parameters and kMAC
per pixel, by box when the model has the paper's boxes (learned/any_model.complexity).
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def cmd_profile(args) -> int:
    from rdbench.codecs import load
    from rdbench.data.images import load_rgb
    from rdbench.metrics import Reference

    codec = load(args.spec)
    quality = codec.check_quality(args.quality if args.quality is not None else codec.qualities[len(codec.qualities) // 2])
    image = load_rgb(args.image).pixels
    started = time.perf_counter()
    codec.warm_up(quality, image)
    setup_s = time.perf_counter() - started
    enc, dec = [], []
    for _ in range(args.repeats):
        codec.synchronize()
        t0 = time.perf_counter()
        data = codec.encode(image, quality)
        codec.synchronize()
        t1 = time.perf_counter()
        decoded = codec.decode(data)
        codec.synchronize()
        enc.append(t1 - t0)
        dec.append(time.perf_counter() - t1)
    h, w = image.shape[:2]
    report = {"codec": args.spec, "codec_version": codec.version, "quality": quality, "image": str(args.image),
              "width": w, "height": h, "bytes": len(data), "bpp": 8 * len(data) / (h * w),
              "psnr_rgb": Reference(image).measure(decoded)["psnr_rgb"], "setup_s": setup_s,
              "enc_s": statistics.median(enc), "dec_s": statistics.median(dec), "repeats": args.repeats}
    if hasattr(codec, "complexity"):
        from rdbench.learned.any_model import complexity

        model, kwargs, _, _ = codec._model_for(quality)
        report.update(complexity(model, kwargs))
    width = max(map(len, report))
    for key, value in report.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"-> {args.json}", file=sys.stderr)
    return 0
