"""Datasets: a named manifest (downloaded once into a cache, verified) or any folder of images.

`resolve_dataset("kodak")` uses, in order: the folder named by the manifest's `local_env`
variable (RDBENCH_KODAK), else the cache under RDBENCH_DATA (default ~/.cache/rdbench), filling
it from the manifest's URLs (or from the base URL in `url_env`, RDBENCH_KODAK_URL) when files are
missing. Every file is verified on every use: its bytes must match upstream or its decoded pixels
must match the manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import sys
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rdbench.conventions import IMAGE_SUFFIXES
from rdbench.data.images import load_rgb, pixels_sha256
from rdbench.errors import DatasetError, ImageError
from rdbench.packaged import manifests_folder

DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class ImageRef:
    """One image of a dataset, checked in the parent process before any work is scheduled."""

    name: str
    path: Path
    sha256: str | None = None  # of the decoded 8-bit RGB pixels ("file:<sha256>" when unreadable)
    width: int = 0
    height: int = 0
    notes: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class Dataset:
    name: str
    images: list[ImageRef]
    source: str


@dataclass(frozen=True)
class ManifestImage:
    file: str
    url: str
    file_sha256: str
    pixels_sha256: str
    width: int
    height: int


@dataclass
class Manifest:
    name: str
    description: str
    base_url: str
    local_env: str | None
    url_env: str | None
    images: list[ManifestImage] = field(default_factory=list)


def manifest_names() -> list[str]:
    root = manifests_folder()
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


_HEX64 = re.compile(r"[0-9a-f]{64}")


def load_manifest(name: str) -> Manifest:
    res = manifests_folder() / f"{name}.toml"
    if not res.is_file():
        raise DatasetError(f"no dataset manifest named {name!r} (known: {', '.join(manifest_names())})")

    def fail(message):
        raise DatasetError(f"{res}: malformed dataset manifest: {message}")

    try:
        raw = tomllib.loads(res.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        fail(str(exc))

    def text(table, key, where="", required=True):
        if key not in table:
            if required:
                fail(f"{where}missing {key!r}")
            return None
        if not isinstance(table[key], str):
            fail(f"{where}{key!r} must be a string")
        return table[key]

    images = raw.get("images")
    if not isinstance(images, list) or not images:
        fail("needs [[images]] entries")
    fields = {f.name for f in dataclasses.fields(ManifestImage)}
    entries = []
    for k, entry in enumerate(images):
        where = f"image {k + 1}: "
        if not isinstance(entry, dict) or set(entry) != fields:
            fail(f"{where}needs exactly the keys {sorted(fields)}")
        for key in ("file", "url", "file_sha256", "pixels_sha256"):
            text(entry, key, where)
        for key in ("file_sha256", "pixels_sha256"):
            if not _HEX64.fullmatch(entry[key]):
                fail(f"{where}{key} must be 64 lower-case hex digits")
        for key in ("width", "height"):
            if not isinstance(entry[key], int) or isinstance(entry[key], bool) or entry[key] <= 0:
                fail(f"{where}{key!r} must be a positive integer")
        file = entry["file"]
        if not file or file in (".", "..") or "/" in file or "\\" in file or "\0" in file:
            fail(f"{where}file {file!r} must be a plain file name (no folder)")
        entries.append(ManifestImage(**entry))
    return Manifest(
        name=text(raw, "name"),
        description=text(raw, "description", required=False) or "",
        base_url=text(raw, "base_url"),
        local_env=text(raw, "local_env", required=False),
        url_env=text(raw, "url_env", required=False),
        images=entries,
    )


def data_home() -> Path:
    return Path(os.environ.get("RDBENCH_DATA") or Path.home() / ".cache" / "rdbench")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_image(entry: ManifestImage, path: Path, dataset: str) -> ImageRef:
    """Accept `path` if its bytes match upstream or its decoded pixels match the manifest."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing ({dataset} image {entry.file})")
    if sha256_file(path) == entry.file_sha256:
        return ImageRef(entry.file, path, entry.pixels_sha256, entry.width, entry.height)
    try:
        image = load_rgb(path)
    except ImageError as exc:
        raise DatasetError(f"{path}: does not match the {dataset} manifest and {exc}") from exc
    digest = pixels_sha256(image.pixels)
    if digest != entry.pixels_sha256:
        raise DatasetError(
            f"{path}: not the {dataset} image {entry.file}: neither its bytes nor its decoded "
            f"pixels (sha256 {digest[:16]}..., expected {entry.pixels_sha256[:16]}...) match"
        )
    return ImageRef(entry.file, path, digest, image.width, image.height, tuple(image.notes))


def verify_copy(manifest: Manifest, directory: Path) -> list[ImageRef]:
    return [verify_image(e, Path(directory) / e.file, manifest.name) for e in manifest.images]


def download(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download to a temporary name beside `dest`, then rename: no half file is ever `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")  # concurrent downloaders never share a file
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DatasetError(f"{url}: download failed ({reason})") from exc
    os.replace(tmp, dest)


def fetch(manifest: Manifest, cache_dir: Path, base_url: str | None = None, log=None) -> list[ImageRef]:
    """Make sure every manifest image is in `cache_dir` and verified; download what is missing.

    A downloaded file that fails verification is deleted and reported with its URL.
    """
    refs = []
    for entry in manifest.images:
        path = cache_dir / entry.file
        if path.is_file():
            try:
                refs.append(verify_image(entry, path, manifest.name))
                continue
            except DatasetError:
                path.unlink()  # a stale or damaged cached copy: fetch it again
        url = base_url.rstrip("/") + "/" + entry.file if base_url else entry.url
        if log:
            log(f"downloading {url}")
        download(url, path)
        try:
            refs.append(verify_image(entry, path, manifest.name))
        except DatasetError as exc:
            path.unlink(missing_ok=True)
            raise DatasetError(f"{url}: downloaded file rejected: {exc}") from exc
    return refs


def folder_dataset(directory: Path, name: str | None = None) -> Dataset:
    """Every image file (conventions.IMAGE_SUFFIXES) directly inside `directory`, sorted by name.

    An unreadable or unconvertible image does not stop the dataset: its ImageRef carries the
    error, and the runner records it for every item of that image.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{directory}: not a directory")
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{directory}: no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    refs = []
    for path in files:
        try:
            image = load_rgb(path)
        except ImageError as exc:
            # keyed by the file's bytes, so the rerun of an unchanged bad file skips it
            try:
                key = "file:" + sha256_file(path)
            except OSError:
                key = "unreadable:" + path.name
            refs.append(ImageRef(path.name, path, sha256=key, error=str(exc)))
            continue
        refs.append(ImageRef(path.name, path, pixels_sha256(image.pixels), image.width, image.height, tuple(image.notes)))
    return Dataset(name or directory.name, refs, f"folder {directory}")


def _way_out(manifest: Manifest) -> str:
    """How to get a manifest's images without its download URLs: a local copy, or a mirror."""
    ways = []
    if manifest.local_env:
        ways.append(f"set {manifest.local_env}=/path/to/a/copy (a folder holding its {len(manifest.images)} "
                    "images; each is verified)")
    if manifest.url_env:
        ways.append(f"set {manifest.url_env}=https://your.mirror/folder (a base URL serving the same file names)")
    ways.append(f"or copy the files into the cache {data_home() / manifest.name}")
    return "; ".join(ways[:-1]) + ("; " if len(ways) > 1 else "") + ways[-1] + "."


def resolve_dataset(spec: str, log=None) -> Dataset:
    """A manifest name (`kodak`) or a folder path."""
    path = Path(spec).expanduser()
    if spec not in manifest_names():
        if path.is_dir():
            return folder_dataset(path)
        raise DatasetError(f"{spec}: neither a folder nor a known dataset ({', '.join(manifest_names())})")
    manifest = load_manifest(spec)
    local = os.environ.get(manifest.local_env or "")
    if local:
        if not Path(local).expanduser().is_dir():
            raise DatasetError(f"{manifest.local_env}={local}: folder not found (unset it to download {manifest.name} "
                               "into the cache)")
        refs = verify_copy(manifest, Path(local))
        return Dataset(manifest.name, refs, f"{manifest.name}, local copy {local} (verified)")
    cache = data_home() / manifest.name
    base_url = os.environ.get(manifest.url_env or "") or None
    try:
        refs = fetch(manifest, cache, base_url, log=log or (lambda m: print(m, file=sys.stderr)))
    except DatasetError as exc:
        if "download failed" not in str(exc):
            raise
        raise DatasetError(f"{exc}. Offline, or behind a firewall? {_way_out(manifest)}") from exc
    return Dataset(manifest.name, refs, f"{manifest.name}, cache {cache} (verified)")
