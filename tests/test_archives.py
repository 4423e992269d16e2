"""Datasets published as archives (data/archives.py): download, checksum, safe extraction, the
digests recorded at the first verified download. Against a local HTTP server on 127.0.0.1 with
archives the tests make from real Kodak crops."""

import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rdbench.data.archives import IMAGES_RECORD
from tests.local_http import LocalServer
from rdbench.data.datasets import DatasetError, load_manifest, manifest_names, resolve_dataset
from rdbench.data.datasets import sha256_file


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    with LocalServer(root) as server:
        yield root, server


@pytest.fixture
def crops(kodim):
    """{name: PNG bytes} of three real Kodak crops."""
    out = {}
    for n in (3, 8, 19):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(kodim(n)[:64, :96])).save(buf, format="PNG")
        out[f"kodim{n:02d}.png"] = buf.getvalue()
    return out


def make_zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def manifest(folder: Path, name: str, url: str, members="set/*.png", count=3, sha256=None, fmt="zip", size=None):
    folder.mkdir(exist_ok=True)
    lines = [f'name = "{name}"', 'description = "test archive"', f'local_env = "RDBENCH_T_{name.upper().replace("-", "_")}"',
             "[archive]", f'url = "{url}"', f'format = "{fmt}"', f'members = "{members}"',
             'ignore = ["__MACOSX/*", "*.txt"]', f"image_count = {count}",
             'checksum_source = "made by the test"']
    if sha256:
        lines.append(f'sha256 = "{sha256}"')
    if size:
        lines.append(f"size = {size}")
    (folder / f"{name}.toml").write_text("\n".join(lines) + "\n")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("RDBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("RDBENCH_DATASETS_PATH", str(tmp_path / "manifests"))
    return tmp_path


def test_zip_is_checked_extracted_recorded_and_reused(env, www, crops):
    root, server = www
    members = {f"set/{k}": v for k, v in crops.items()}
    members["__MACOSX/set/._kodim03.png"] = b"resource fork"
    members["set/README.txt"] = b"about the set"
    archive = make_zip(root / "tiny.zip", members)
    manifest(env / "manifests", "tiny", server.url + "/tiny.zip", sha256=sha256_file(archive),
             size=archive.stat().st_size)
    dataset = resolve_dataset("tiny", log=lambda m: None)
    assert sorted(r.name for r in dataset.images) == sorted(crops)
    folder = env / "cache" / "tiny"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*crops, IMAGES_RECORD])  # only the images
    record = json.loads((folder / IMAGES_RECORD).read_text())
    assert record["archive_sha256"] == sha256_file(archive) and len(record["images"]) == 3
    for entry in record["images"]:  # the recorded digests are the pixels' own
        pixels = np.asarray(Image.open(io.BytesIO(crops[entry["file"]])).convert("RGB"))
        from rdbench.data.images import pixels_sha256

        assert entry["pixels_sha256"] == pixels_sha256(pixels) == [r.sha256 for r in dataset.images
                                                                   if r.name == entry["file"]][0]
    assert not list(env.glob("cache/.*"))  # no archive or temporary folder left
    resolve_dataset("tiny", log=lambda m: None)  # second use: verified against the record, no download
    assert server.hits == {"/tiny.zip": 1}
    # an image altered after the download is named
    (folder / "kodim08.png").write_bytes(crops["kodim03.png"])
    with pytest.raises(DatasetError, match=r"kodim08\.png: not the tiny image"):
        resolve_dataset("tiny", log=lambda m: None)


def test_tar_without_published_checksum_records_it_at_first_download(env, www, crops):
    root, server = www
    path = root / "tiny.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for name, data in crops.items():
            info = tarfile.TarInfo(f"deep/set/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    manifest(env / "manifests", "tiny-tar", server.url + "/tiny.tar.gz", members="*/set/*.png", fmt="tar")
    said = []
    dataset = resolve_dataset("tiny-tar", log=said.append)
    assert len(dataset.images) == 3
    assert any("no published checksum" in line and sha256_file(path) in line for line in said)
    record = json.loads((env / "cache" / "tiny-tar" / IMAGES_RECORD).read_text())
    assert record["archive_sha256"] == sha256_file(path) and "first download" in record["archive_sha256_source"]


def test_bad_checksum_deletes_the_download_and_names_it(env, www, crops, monkeypatch):
    # the real div2k-valid manifest, served a test archive: its SHA-256 cannot match
    root, server = www
    make_zip(root / "DIV2K_valid_HR.zip", {f"DIV2K_valid_HR/{k}": v for k, v in crops.items()})
    url = server.url + "/DIV2K_valid_HR.zip"
    monkeypatch.setenv("RDBENCH_DIV2K_VALID_URL", url)
    monkeypatch.delenv("RDBENCH_DIV2K_VALID", raising=False)
    with pytest.raises(DatasetError, match=rf"{url}: downloaded archive rejected and deleted: .*tensorflow/datasets"):
        resolve_dataset("div2k-valid", log=lambda m: None)
    assert not (env / "cache").exists() or not any((env / "cache").iterdir())


@pytest.mark.parametrize("bad_member, reason", [
    ("set/../../escaped.png", "climbing out"),
    ("/tmp/absolute.png", "absolute path"),
    ("set/payload.exe", "unexpected member"),
    ("other/kodim99.png", "unexpected member"),
])
def test_archive_with_unexpected_members_is_refused_and_writes_nothing(env, www, crops, bad_member, reason):
    root, server = www
    members = {f"set/{k}": v for k, v in crops.items()}
    members[bad_member] = crops["kodim03.png"]
    make_zip(root / "bad.zip", members)
    manifest(env / "manifests", "bad", server.url + "/bad.zip", count=3)
    with pytest.raises(DatasetError, match=rf"refused: .*{reason}.*nothing was extracted"):
        resolve_dataset("bad", log=lambda m: None)
    assert not (env / "cache" / "bad").exists()
    assert not list(env.rglob("escaped.png")) and not Path("/tmp/absolute.png").exists()
    assert not list(env.glob("cache/.*"))


def test_symlink_member_and_wrong_count_are_refused(env, www, crops):
    root, server = www
    path = root / "link.tar"
    with tarfile.open(path, "w") as t:
        for name, data in crops.items():
            info = tarfile.TarInfo(f"set/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("set/passwd.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    manifest(env / "manifests", "link", server.url + "/link.tar", fmt="tar", count=4)
    with pytest.raises(DatasetError, match=r"'set/passwd.png' is a link"):
        resolve_dataset("link", log=lambda m: None)
    make_zip(root / "few.zip", {f"set/{k}": v for k, v in crops.items()})
    manifest(env / "manifests", "few", server.url + "/few.zip", count=5)
    with pytest.raises(DatasetError, match=r"3 images match 'set/\*.png', the manifest expects 5"):
        resolve_dataset("few", log=lambda m: None)


def test_shipped_manifests_name_their_sources():
    assert {"tecnick", "clic2020-professional-valid", "clic2020-professional-test", "div2k-valid"} <= set(manifest_names())
    counts = {"tecnick": 100, "clic2020-professional-valid": 41, "clic2020-professional-test": 250, "div2k-valid": 100}
    for name, count in counts.items():
        m = load_manifest(name)
        assert m.archive is not None and m.image_count == count and m.archive.checksum_source
        assert m.archive.url.startswith("https://")
        if name != "tecnick":  # the three ETH archives have a published SHA-256 (TFDS url_checksums)
            assert m.archive.sha256 and m.archive.size and "tensorflow/datasets" in m.archive.checksum_source
    assert load_manifest("tecnick").archive.sha256 is None


def test_datasets_command_lists_size_and_state(env, www, crops):
    root, server = www
    archive = make_zip(root / "tiny.zip", {f"set/{k}": v for k, v in crops.items()})
    manifest(env / "manifests", "tiny", server.url + "/tiny.zip", sha256=sha256_file(archive),
             size=archive.stat().st_size)
    import os

    def listing():
        done = subprocess.run([sys.executable, "-m", "rdbench", "datasets"], capture_output=True, text=True,
                              env={**os.environ})
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = listing()
    for name in ("tecnick", "clic2020-professional-valid", "clic2020-professional-test", "div2k-valid", "kodak"):
        assert f"{name}: " in before
    assert "449 MB archive" in before and "not downloaded" in before
    resolve_dataset("tiny", log=lambda m: None)
    after = listing()
    tiny = after[after.index("tiny: "):]
    assert "downloaded: 3 images" in tiny.splitlines()[1]


def test_real_tecnick_manifest_takes_the_rgb_originals_and_skips_the_rest(env, www, kodim, monkeypatch):
    # an archive laid out as TESTIMAGES' README describes (ART, GRAY, RGB; originals and reduced
    # copies), with 100 small real crops as the originals: the shipped manifest, no checksum published
    root, server = www
    members = {"TESTIMAGES/README.TXT": b"TESTIMAGES", "TESTIMAGES/ART/ART_OR_1200x1200/ART_OR_1200x1200_001.png": b"x",
               "TESTIMAGES/GRAY/GRAY_OR_1200x1200/GRAY_OR_1200x1200_001.png": b"x",
               "TESTIMAGES/RGB/RGB_R02_0600x0600/RGB_R02_0600x0600_001.png": b"x"}
    image = kodim(5)
    for k in range(100):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image[k:k + 8, k:k + 8])).save(buf, format="PNG")
        members[f"TESTIMAGES/RGB/RGB_OR_1200x1200/RGB_OR_1200x1200_{k + 1:03d}.png"] = buf.getvalue()
    make_zip(root / "testimages.zip", members)
    monkeypatch.setenv("RDBENCH_TECNICK_URL", server.url + "/testimages.zip")
    monkeypatch.delenv("RDBENCH_TECNICK", raising=False)
    dataset = resolve_dataset("tecnick", log=lambda m: None)
    assert len(dataset.images) == 100 and dataset.images[0].name == "RGB_OR_1200x1200_001.png"
    assert len({r.sha256 for r in dataset.images}) == 100
    assert sorted(p.name for p in (env / "cache" / "tecnick").iterdir())[-1] == IMAGES_RECORD
    # an unexpected extra member in the same archive is refused, naming it
    members["TESTIMAGES/RGB/RGB_OR_1200x1200/notes.doc"] = b"?"
    make_zip(root / "testimages2.zip", members)
    monkeypatch.setenv("RDBENCH_TECNICK_URL", server.url + "/testimages2.zip")
    monkeypatch.setenv("RDBENCH_DATA", str(env / "cache2"))
    with pytest.raises(DatasetError, match=r"unexpected member 'TESTIMAGES/RGB/RGB_OR_1200x1200/notes.doc'"):
        resolve_dataset("tecnick", log=lambda m: None)
