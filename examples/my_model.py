"""A researcher's own model, as `rdbench run --codec model:class=my_model:SmallFactorized,...` measures it.

A factorized prior (Ballé et al. 2017's structure) written from scratch, small enough to train on
a laptop CPU in minutes. Nothing in it knows about rdbench: it only keeps CompressAI's contract,

    compress(x) -> {"strings": [[bytes], ...], "shape": ...}
    decompress(strings, shape) -> {"x_hat": ...}
    forward(x) -> {"x_hat": ..., "likelihoods": {...}}

and builds with no arguments (rdbench calls `SmallFactorized()` then `load_state_dict`, as the
class has no `from_state_dict`). Put this folder on PYTHONPATH (or name the class in an entry
point of the group `rdbench.models`).
"""

from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from compressai.models import CompressionModel
from torch import nn

CHANNELS = 64


def _down(c_in: int, c_out: int) -> nn.Module:
    return nn.Conv2d(c_in, c_out, kernel_size=5, stride=2, padding=2)


def _up(c_in: int, c_out: int) -> nn.Module:
    return nn.ConvTranspose2d(c_in, c_out, kernel_size=5, stride=2, padding=2, output_padding=1)


class SmallFactorized(CompressionModel):
    """Analysis g_a (4 stride-2 convolutions with GDN), a factorized entropy model of y, synthesis g_s."""

    def __init__(self, channels: int = CHANNELS):
        super().__init__()
        n = channels
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.g_a = nn.Sequential(_down(3, n), GDN(n), _down(n, n), GDN(n), _down(n, n), GDN(n), _down(n, n))
        self.g_s = nn.Sequential(_up(n, n), GDN(n, inverse=True), _up(n, n), GDN(n, inverse=True), _up(n, n),
                                 GDN(n, inverse=True), _up(n, 3))

    def forward(self, x):
        y = self.g_a(x)
        y_hat, y_likelihoods = self.entropy_bottleneck(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods}}

    def compress(self, x):
        y = self.g_a(x)
        return {"strings": [self.entropy_bottleneck.compress(y)], "shape": y.size()[-2:]}

    def decompress(self, strings, shape):
        y_hat = self.entropy_bottleneck.decompress(strings[0], shape)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}
