"""Learned codecs: the Minnen, Ballé & Toderici (2018) model family, its exact entropy coding,
checkpoints and training. The package itself and `config` import no torch (the command line and
`ablation_config` rely on that); the other modules import torch and compressai."""

import warnings

# compressai's import scripts a helper with torch.jit.script, which recent torch (2.14 here) flags as
# deprecated on every import (once per worker process): noise to rdbench's users, not theirs to fix.
warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
