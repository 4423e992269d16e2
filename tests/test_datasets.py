import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from rdbench.data.datasets import DatasetError, fetch, load_manifest, resolve_dataset, verify_copy


def test_manifest_lists_24_upstream_images():
    m = load_manifest("kodak")
    assert len(m.images) == 24
    assert all(e.url == f"http://r0k.us/graphics/kodak/kodak/{e.file}" for e in m.images)


def test_local_copy_verifies_by_bytes_or_pixels(kodak_dir):
    refs = verify_copy(load_manifest("kodak"), kodak_dir)
    assert len(refs) == 24
    upstream = dict(line.split()[::-1] for line in (kodak_dir / "UPSTREAM_FILES.sha256").read_text().splitlines() if line)
    same_bytes = [r for r in refs if hashlib.sha256(r.path.read_bytes()).hexdigest() == upstream[r.name]]
    # this copy has both kinds, so both acceptance paths are exercised
    assert 0 < len(same_bytes) < 24
    pixels = {line.split()[1]: line.split()[0] for line in (kodak_dir / "PIXELS.sha256").read_text().splitlines() if line}
    assert all(r.sha256 == pixels[r.name] for r in refs)


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


class _Server:
    """Serves a folder on 127.0.0.1 and counts requests per path."""

    def __init__(self, root: Path):
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/kodak/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(kodak_dir, tmp_path):
    (tmp_path / "www").mkdir()
    _copy_kodak(kodak_dir, tmp_path / "www" / "kodak")
    s = _Server(tmp_path / "www")
    yield s
    s.close()


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
