"""The mixture coder's probability tables (symbols.MixtureCoder._pmf) are built edge by edge, for a
whole group of positions in one numpy pass: they must be the bits of the bin-by-bin construction
the numeric contract describes (two interpolated Φ per bin and component, summed in component
order), which this file keeps as the reference, and the interpolation's numpy path the bits of
InterpolatedFunction.__call__. A last-bit difference would change a symbol's frequency, and so
the streams (the golden vectors check that too, for K = 2)."""

import numpy as np
import pytest

pytest.importorskip("compressai")
pytest.importorskip("constriction")

import torch  # noqa: E402

from rdbench.learned import exact  # noqa: E402
from rdbench.learned.symbols import MixtureCoder  # noqa: E402


def reference_distribution(coder, params):
    """MixtureCoder._distribution as rdbench computed it before issue 26, in torch."""
    K, M = coder.K, coder.M
    n = params.shape[0]
    logits, means, scales = (params[:, i * K * M : (i + 1) * K * M].reshape(n, K, M) for i in range(3))
    weights = exact.exp_table()(logits - logits.max(dim=1, keepdim=True).values)
    heaviest = weights.argmax(dim=1, keepdim=True)
    centres = torch.round(means.gather(1, heaviest)[:, 0])
    return weights, means, coder._snap_scales(scales), centres


def reference_pmf(K, weights, means, stds, centres, half_width):
    """The bin-by-bin construction (rdbench's MixtureCoder before the edge-sharing one), in torch."""
    weights, means, stds, centres = (torch.as_tensor(a) for a in (weights, means, stds, centres))
    cdf = exact.normal_cdf()
    offsets = torch.arange(-half_width, half_width + 1, dtype=exact.DTYPE)
    v = centres[..., None] + offsets
    pmf = torch.zeros_like(v)
    for k in range(K):
        mu, sigma = means[:, k, :, None], stds[:, k, :, None]
        upper = cdf((v + 0.5 - mu) / sigma)
        lower = cdf((v - 0.5 - mu) / sigma)
        pmf = pmf + weights[:, k, :, None] * (upper - lower)
    return pmf.reshape(-1, offsets.numel()).numpy()


@pytest.mark.parametrize("name", ["normal_cdf", "exp"])
def test_the_numpy_interpolation_gives_the_bits_of_the_torch_one(name):
    fn = exact.normal_cdf() if name == "normal_cdf" else exact.exp_table()
    rng = np.random.default_rng(1)
    h = 1 / fn.inv_step
    nodes = np.arange(fn.lo, fn.hi + h, h)
    x = np.concatenate([
        nodes, nodes + h / 2, nodes + h / 3, np.nextafter(nodes, -np.inf), np.nextafter(nodes, np.inf),
        rng.uniform(fn.lo - 5, fn.hi + 5, 200_000), rng.normal(0, 3, 200_000) * 4,
        [-np.inf, np.inf, -1e300, 1e300, 0.0, -0.0, fn.lo, fn.hi],
    ])
    expected = fn(torch.from_numpy(x)).numpy()
    got = fn.values_into(x.copy())
    assert got.tobytes() == expected.tobytes()


def random_params(rng, n, K, M, spread):
    """A group of n positions: raw parameters as entropy_parameters emits them (activation grid)."""
    params = torch.from_numpy(rng.normal(0, 1, (n, 3 * K * M)))
    params[:, : K * M] *= 6  # logits: some components negligible, some ties
    params[:, K * M : 2 * K * M] *= spread  # means far from and near the centre
    params[:, 2 * K * M :] = torch.from_numpy(np.exp(rng.uniform(-4, 5, (n, K * M))))  # tiny to huge scales
    params[:3, : K * M] = 0.0  # exactly equal weights
    return exact.activation_grid(params)


@pytest.mark.parametrize("K, half_width, spread", [(2, 1, 1.0), (3, 7, 4.0), (3, 40, 30.0), (4, 3, 0.3)])
def test_mixture_tables_are_the_bits_of_the_bin_by_bin_construction(K, half_width, spread):
    rng = np.random.default_rng(K * 100 + half_width)
    M, n = 8, 97
    coder = MixtureCoder(M, K)
    params = random_params(rng, n, K, M, spread)
    distribution = coder._distribution(params)
    for got, expected in zip(distribution, reference_distribution(coder, params)):
        assert got.tobytes() == expected.numpy().tobytes()
    weights, means, stds, centres = distribution
    got = coder._pmf(weights, means, stds, centres, half_width)
    expected = reference_pmf(K, weights, means, stds, centres, half_width)
    assert got.shape == expected.shape == (n * M, 2 * half_width + 1)
    assert got.tobytes() == expected.tobytes()
    assert (got > 0).any(axis=1).all()  # not a degenerate table: every symbol has support


def test_mixture_streams_are_unchanged_by_the_table_construction(monkeypatch):
    """A real stream: a K = 3 joint model (random weights, small enough to code) encodes to the same
    bytes and decodes to the same latents with the reference distributions and tables (torch, bin
    by bin) as with rdbench's."""
    from rdbench.learned.coding import LatentCoder
    from rdbench.learned.checkpoint import model_id, prepare_for_coding
    from rdbench.learned.config import ModelConfig
    from rdbench.learned.models import LatentModel

    torch.manual_seed(3)
    model = prepare_for_coding(LatentModel(ModelConfig("joint", 8, 8, 5, 3, (0.013,))).eval())
    image = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    coder = LatentCoder(model, model_id(model))
    data, y_hat = coder.encode_with_latent(image)
    decoded, y_dec = coder.decode_with_latent(data)

    def slow(self, weights, means, stds, centres, half_width):
        return reference_pmf(self.K, weights, means, stds, centres, half_width)

    def old_distribution(self, params):
        return tuple(t.numpy() for t in reference_distribution(self, params))

    monkeypatch.setattr(MixtureCoder, "_pmf", slow)
    monkeypatch.setattr(MixtureCoder, "_distribution", old_distribution)
    reference = LatentCoder(model, model_id(model))
    ref_data, ref_y_hat = reference.encode_with_latent(image)
    assert ref_data == data
    ref_decoded, ref_y_dec = reference.decode_with_latent(data)
    assert torch.equal(ref_y_dec, y_dec) and torch.equal(y_dec, y_hat) and torch.equal(ref_y_hat, y_hat)
    assert np.array_equal(ref_decoded, decoded)
