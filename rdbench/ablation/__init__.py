"""`rdbench ablate`: train every cell of a grid once, evaluate each once, tabulate and plot.

Reading order: config (the grid), layout (where each cell lives), train, evaluate, summary (the
tables, plots and ablation.md, computed from the rows), files (what the summary reads and writes).
The shared-latents design (every cell trains only its entropy model on one frozen base's
latents): design (its config), shared (the base, a cell's training, the summary's first lines),
latents (the cache of the base's latents).

Layout of OUT:
    config.toml                 the configuration as given
    base/model.pt, latents/     shared-latents design only: the base rdbench trains (if any), and
                                its cached latents of the training crops (<base model id>.npy)
    cells/<cell>/model.pt       the cell's checkpoint (per-lambda mode: lambda-<value>.pt each)
    cells/<cell>/train.log      its training log
    results.csv                 evaluation rows (the usual result store)
    ablation.md, ablation_*.csv, rd_*.png, bd_*.png   the summary (ablation_questions.csv: the
                                paper's questions as pairs of cells, next to the published pairs)

Rerunning resumes: training continues from each checkpoint's last saved step, and evaluation
skips every (image, codec, quality) already in results.csv.
"""
