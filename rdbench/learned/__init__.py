"""Learned codecs: the Minnen, Ballé & Toderici (2018) model family, its exact entropy coding,
checkpoints and training. A library of its own: it imports nothing of rdbench but `errors` and
`conventions` (the codec adapters in rdbench/codecs/learned.py wrap it).

Reading order
    config.py      ModelConfig: which boxes a variant has, and their sizes (the only module that
                   reads the variant name; imports no torch)
    models.py      LatentModel: the boxes under the paper's names, the training forward pass
    schedule.py    which latent positions can be coded together (wavefronts of the context model)
    contract.py    the numeric contract's identity: grids, table digests, coders, the id every
                   bitstream carries (imports no torch)
    exact.py       the numeric contract: exact float64 networks on fixed grids, fixed tables
                   computed with IEEE-754 basic operations only (and checked)
    symbols.py     symbol coders, one per distribution family (factorized, Gaussian, mixture)
    coding.py      LatentCoder: the paper's AE/AD, orchestrating the above into a bitstream
    bitstream.py   the bitstream format, in one place
    checkpoint.py  rdbench and CompressAI checkpoints; model ids
    train.py       rate-distortion training, resumable

The paper's figure (Minnen et al. 2018, the joint model; ═ is the bitstream)

    x ─► g_a ─► y ─┬─► Q ─► ŷ ─► AE ═► bits ═► AD ─► ŷ ─┬─► g_s ─► x̂
                   │              ▲             ▲       │
                   │              └──────┬──────┘       └─► context_prediction ─► φ ──┐
                   │                     │                  (masked k x k)            │
                   │           (μ, σ) or a mixture ◄── entropy_parameters ◄───────────┤
                   │                                                                  │
                   └─► h_a ─► z ─► Q ─► ẑ ─► AE ═► bits ═► AD ─► ẑ ─► h_s ─► ψ ───────┘

    box                 LatentModel attribute  implemented by (rdbench unless noted)
    g_a, g_s            g_a, g_s               models.analysis_transform, synthesis_transform
                                               (CompressAI's GDN; four stride-2 convolutions:
                                               y is 1/Y_STRIDE of the image padded to coding.PAD)
    Q, AE/AD of y       -                      coding.LatentCoder with symbols.GaussianCoder
                                               (ŷ = round(y - μ) + μ) or symbols.MixtureCoder
                                               (ŷ = round(y)), constriction's range coder,
                                               the format of bitstream.py
    h_a, h_s            h_a, h_s               models.hyper_transforms (z is 1/Z_STRIDE of y);
                                               h_s coded exactly by exact.ExactSequential
    Q, AE/AD of z       entropy_bottleneck     symbols.FactorizedCoder (the CDF tables of
                                               CompressAI's EntropyBottleneck, constriction's
                                               range coder; also codes y of 'factorized')
    context_prediction  context_prediction     CompressAI's MaskedConv2d (type A); coded exactly
                                               by exact.ExactContext, one wavefront of
                                               schedule.wavefronts at a time
    entropy_parameters  entropy_parameters     three 1x1 convolutions; coded exactly by
                                               exact.ExactSequential(pointwise=True)
    likelihoods         gaussian_conditional   CompressAI's GaussianConditional (training and
                        (training only)        estimated_bits); LatentModel.mixture_likelihood

    The variants drop boxes (config.py): 'factorized' codes y with a FactorizedCoder and has no
    h_a, h_s or context; 'hyperprior' (bmshj2018) has ψ = σ, μ = 0; 'mean-scale' (mbt2018-mean)
    has ψ = (μ, σ) and no context; 'context' has no h_a, h_s; 'joint' (mbt2018) has all.

What is rdbench's and not the paper's
    - Gaussian mixtures (K >= 2) on the mean-scale, context and joint models: MixtureCoder,
      LatentModel.mixture_likelihood (the paper has one Gaussian per symbol).
    - The context-only variant 'context': context_prediction and entropy_parameters without a
      hyperprior (neither the paper's figure nor a CompressAI architecture).
    - Gain units for variable rate: LatentModel.gain / inverse_gain (and hyper_gain /
      hyper_inverse_gain), one vector per lambda; models.fold_gains exports one rate.
    - The exact integer-grid networks and fixed tables of exact.py, and the wavefront schedule
      (the paper's decoder runs the float networks one position at a time).
    - The bitstream's checks (bitstream.py, coding.py): a damaged or hostile stream is refused
      with a BitstreamError, never decoded past a pixel limit, never crashes the decoder.
"""

import warnings

# compressai's import scripts a helper with torch.jit.script, which recent torch (2.14 here) flags as
# deprecated on every import (once per worker process): noise to rdbench's users, not theirs to fix.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
# and its video models decorate with torch.cuda.amp.autocast, deprecated since torch 2.4 (same story).
warnings.filterwarnings("ignore", message=r"`torch.cuda.amp.autocast\(args...\)` is deprecated", category=FutureWarning)
