import hashlib
import shutil
from pathlib import Path

import pytest

from rdbench.data.datasets import DatasetError, fetch, load_manifest, resolve_dataset, verify_copy
from tests.local_http import LocalServer


def test_manifest_lists_24_upstream_images():
    m = load_manifest("kodak")
    assert len(m.images) == 24
    assert all(e.url == f"http://r0k.us/graphics/kodak/kodak/{e.file}" for e in m.images)


def test_plain_copy_verifies_by_bytes_or_pixels(kodak_dir, tmp_path, monkeypatch):
    """A plain folder of the 24 PNGs (no hash or SOURCE files), checked against the manifest alone."""
    import importlib

    import numpy as np
    from PIL import Image

    manifest = load_manifest("kodak")
    copy = _copy_kodak(kodak_dir, tmp_path / "k")
    assert sorted(p.name for p in copy.iterdir()) == sorted(e.file for e in manifest.images)
    # re-save one image with other PNG bytes but the same pixels, so the pixel path always runs
    resaved = copy / "kodim13.png"
    Image.open(resaved).convert("RGB").save(resaved, compress_level=1)
    entries = {e.file: e for e in manifest.images}
    assert hashlib.sha256(resaved.read_bytes()).hexdigest() != entries["kodim13.png"].file_sha256

    datasets = importlib.import_module(verify_copy.__module__)
    decoded = []
    real_load_rgb = datasets.load_rgb
    monkeypatch.setattr(datasets, "load_rgb", lambda path: decoded.append(Path(path).name) or real_load_rgb(path))
    refs = verify_copy(manifest, copy)

    assert [r.name for r in refs] == [e.file for e in manifest.images]
    by_bytes = {p.name for p in copy.iterdir() if hashlib.sha256(p.read_bytes()).hexdigest() == entries[p.name].file_sha256}
    # a file with upstream bytes is accepted without decoding; every other one is decoded and compared
    assert sorted(decoded) == sorted(set(entries) - by_bytes) and "kodim13.png" in decoded
    for r in refs:
        # the pixel hash, recomputed here with PIL and numpy alone, is the manifest's for every file
        pixels = np.ascontiguousarray(np.asarray(Image.open(r.path).convert("RGB"), dtype=np.uint8))
        assert r.sha256 == hashlib.sha256(pixels.tobytes()).hexdigest() == entries[r.name].pixels_sha256, r.name
        assert (r.width, r.height) == (entries[r.name].width, entries[r.name].height) == pixels.shape[1::-1], r.name
        assert r.path == copy / r.name and r.error is None


def _copy_kodak(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.glob("kodim*.png"):
        shutil.copy(p, dst / p.name)
    return dst


def test_altered_local_file_is_rejected_by_name(kodak_dir, tmp_path, monkeypatch):
    copy = _copy_kodak(kodak_dir, tmp_path / "k")
    from PIL import Image

    im = Image.open(copy / "kodim07.png").convert("RGB")
    im.putpixel((10, 10), (0, 0, 0))
    im.save(copy / "kodim07.png")
    monkeypatch.setenv("RDBENCH_KODAK", str(copy))
    with pytest.raises(DatasetError, match=r"kodim07\.png.*neither its bytes nor its decoded pixels"):
        resolve_dataset("kodak")


def test_missing_local_file_is_named(kodak_dir, tmp_path, monkeypatch):
    copy = _copy_kodak(kodak_dir, tmp_path / "k")
    (copy / "kodim24.png").unlink()
    monkeypatch.setenv("RDBENCH_KODAK", str(copy))
    with pytest.raises(DatasetError, match=r"kodim24\.png: missing"):
        resolve_dataset("kodak")


@pytest.fixture
def server(kodak_dir, tmp_path):
    (tmp_path / "www").mkdir()
    _copy_kodak(kodak_dir, tmp_path / "www" / "kodak")
    with LocalServer(tmp_path / "www") as s:
        s.url += "/kodak/"  # the base URL of the Kodak images
        yield s


def test_download_verifies_and_reuses_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("RDBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("RDBENCH_KODAK_URL", server.url)
    monkeypatch.delenv("RDBENCH_KODAK", raising=False)
    ds = resolve_dataset("kodak")
    assert len(ds.images) == 24 and all(r.path.parent == tmp_path / "cache" / "kodak" for r in ds.images)
    assert sum(server.hits.values()) == 24
    assert not list((tmp_path / "cache" / "kodak").glob("*.part"))
    resolve_dataset("kodak")  # second use: verified from the cache, nothing downloaded
    assert sum(server.hits.values()) == 24


def test_corrupted_download_is_rejected_and_not_kept(server, tmp_path):
    served = tmp_path / "www" / "kodak" / "kodim05.png"
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF
    served.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"kodim05\.png: downloaded file rejected"):
        fetch(load_manifest("kodak"), cache, base_url=server.url)
    assert not (cache / "kodim05.png").exists()
    assert (cache / "kodim04.png").exists()  # files verified before it are kept


def test_unreachable_server_names_the_url(tmp_path):
    with pytest.raises(DatasetError, match=r"http://127\.0\.0\.1:9/kodak/kodim01\.png: download failed"):
        fetch(load_manifest("kodak"), tmp_path, base_url="http://127.0.0.1:9/kodak/")


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(DatasetError, match="neither a folder nor a known dataset"):
        resolve_dataset("no-such-dataset-or-folder")
