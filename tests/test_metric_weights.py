"""Network weights of learned metrics: a local folder, or fetched once from a URL with a checksum
(a real HTTP server on 127.0.0.1); offline without them, the metric is unavailable with the reason."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rdbench.metrics import registry, weights
from rdbench.metrics.registry import WeightFile
from tests.local_http import LocalServer

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(tmp_path):
    """A local HTTP server of tmp_path/served; `.requests` lists the paths asked for."""
    served = tmp_path / "served"
    served.mkdir()
    with LocalServer(served) as httpd:
        httpd.folder = served
        yield httpd


def test_weights_are_fetched_once_with_their_checksum(tmp_path, server, monkeypatch):
    payload = os.urandom(100_000)
    (server.folder / "net.pth").write_bytes(payload)
    file = WeightFile("net.pth", "https://example.invalid/net.pth", hashlib.sha256(payload).hexdigest()[:8])
    monkeypatch.setenv(weights.DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.URL_ENV, server.url)
    assert weights.cached(file) is None
    path = weights.fetch(file)
    assert path == tmp_path / "cache" / "net.pth" and path.read_bytes() == payload
    assert weights.fetch(file) == path and server.requests == ["/net.pth"]  # once
    assert sorted(p.name for p in path.parent.iterdir()) == ["net.pth"]  # no temporary left


def test_a_file_failing_its_checksum_is_refused_and_not_kept(tmp_path, server, monkeypatch):
    # what a wrong mirror serves under the published name of LPIPS's AlexNet weights
    (server.folder / "alexnet-owt-7be5be79.pth").write_bytes(b"not the weights")
    monkeypatch.setenv(weights.DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(weights.URL_ENV, server.url)
    file = registry.get("lpips").weight_files[0]
    with pytest.raises(weights.WeightsUnavailable, match="does not start with the published 7be5be79; refused"):
        weights.fetch(file)
    assert not any((tmp_path / "cache").iterdir())


def test_offline_without_weights_the_run_stops_before_any_work(tmp_path, small_dataset):
    pytest.importorskip("lpips")
    env = {**os.environ, weights.DIR_ENV: str(tmp_path / "empty"), weights.URL_ENV: "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "rdbench", "run", "--dataset", str(small_dataset), "--codec", "jpeg",
                           "--quality", "50", "--metric", "psnr_rgb,lpips", "--out", str(tmp_path / "out"),
                           "--no-progress"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env)
    assert done.returncode == 2, done.stderr
    assert "'lpips'" in done.stderr and "cannot be downloaded" in done.stderr and weights.URL_ENV in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out" / "results.csv").exists()


def test_a_worker_without_the_weights_gives_nan_and_the_reason_not_failed_items(tmp_path, kodim, monkeypatch):
    pytest.importorskip("lpips")
    from rdbench.metrics import Reference

    monkeypatch.setenv(weights.DIR_ENV, str(tmp_path / "empty"))
    a = np.ascontiguousarray(kodim(3)[:64, :64])
    ref = Reference(a, registry.parse("psnr_rgb,lpips"))
    values = ref.measure(a.copy())
    assert np.isnan(values["lpips"]) and values["psnr_rgb"] == np.inf
    assert any("alexnet-owt-7be5be79.pth" in r and "not in" in r for r in ref.reasons)


def test_lpips_agrees_with_the_authors_package(tmp_path, kodim, monkeypatch):
    # the reference: lpips.LPIPS(net='alex') loading torchvision's AlexNet its own way (from TORCH_HOME)
    pytest.importorskip("lpips")
    file = registry.get("lpips").weight_files[0]
    path = weights.cached(file)
    if path is None:
        pytest.skip(f"LPIPS weights {file.name} not in {weights.weights_dir()} (fetched by `rdbench run --metric "
                    f"lpips` online, from {file.url})")
    import io

    import lpips
    import torch
    from PIL import Image

    from rdbench.metrics import Reference

    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / file.name).symlink_to(path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    a = np.ascontiguousarray(kodim(5)[:256, :384])
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=20)
    b = np.asarray(Image.open(buf).convert("RGB"))
    ours = Reference(a, registry.parse("lpips")).measure(b)["lpips"]
    with torch.no_grad():
        theirs = lpips.LPIPS(net="alex", verbose=False)(lpips.im2tensor(a), lpips.im2tensor(b)).item()
    assert ours == pytest.approx(theirs, abs=1e-6) and 0 < ours < 1


def test_a_metric_left_nan_for_want_of_weights_is_measured_when_asked_again(tmp_path, small_dataset):
    # measured without the weights (NaN, reason in note), then asked again: planned again, not skipped;
    # here the weights are still absent, so the row keeps its other values and says why once more
    pytest.importorskip("lpips")
    from rdbench.bench.measure import Settings
    from rdbench.bench.runner import load_codecs, run
    from rdbench.bench.store import read_results
    from rdbench.data.datasets import resolve_dataset

    os.environ[weights.DIR_ENV] = str(tmp_path / "empty")
    try:
        dataset = resolve_dataset(str(small_dataset))
        settings = Settings(metrics=("psnr_rgb", "lpips"), results_dir=str(tmp_path / "out"))
        first = run(dataset, load_codecs(["jpeg"]), tmp_path / "out", [50], workers=1, settings=settings,
                    progress=False)
        assert (first.ok, first.planned) == (3, 3)
        rows = read_results(tmp_path / "out")
        assert rows["lpips"].isna().all() and rows["note"].str.contains("alexnet-owt-7be5be79.pth").all()
        assert not rows["metric_versions"].str.contains("lpips").any()
        again = run(dataset, load_codecs(["jpeg"]), tmp_path / "out", [50], workers=1, settings=settings,
                    progress=False)
        assert (again.planned, again.skipped) == (3, 0)  # lpips planned again for the stored rows
        after = read_results(tmp_path / "out")
        assert after["psnr_rgb"].tolist() == rows["psnr_rgb"].tolist()
        plain = run(dataset, load_codecs(["jpeg"]), tmp_path / "out", [50], workers=1,
                    settings=Settings(metrics=("psnr_rgb",)), progress=False)
        assert (plain.planned, plain.skipped) == (0, 3)
    finally:
        del os.environ[weights.DIR_ENV]
