"""Datasets: a named manifest (downloaded once into a cache, verified) or any folder of images.

A manifest either lists each image with its URL and digests (kodak.toml) or names one archive
(`[archive]`: tecnick, clic2020-professional-valid, clic2020-professional-test, div2k-valid), whose
images are extracted and whose per-image digests are recorded at the first verified download
(data/archives.py). Manifests are the packaged datasets/*.toml, then those in the folders of
RDBENCH_DATASETS_PATH (os.pathsep-separated).

`resolve_dataset("kodak")` uses, in order: the folder named by the manifest's `local_env`
variable (RDBENCH_KODAK), else the cache under RDBENCH_DATA (default ~/.cache/rdbench), filling
it from the manifest's URLs (or from the base URL in `url_env`, RDBENCH_KODAK_URL) when files are
missing. Every file is verified on every use: its bytes must match upstream or its decoded pixels
must match the manifest.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from rdbench.conventions import IMAGE_SUFFIXES
from rdbench.data.archives import ARCHIVE_FORMATS, Archive, fetch_archive, read_record
from rdbench.data.download import DOWNLOAD_TIMEOUT_S, download, sha256_file  # noqa: F401  (part of this API)
from rdbench.data.images import load_rgb, pixels_sha256
from rdbench.errors import DatasetError, ImageError
from rdbench.packaged import manifests_folder



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
    archive: Archive | None = None  # the images come in one archive (their digests recorded at download)
    license: str = ""

    @property
    def image_count(self) -> int:
        return self.archive.image_count if self.archive else len(self.images)


def _manifest_files() -> dict:
    """{name: file} of every manifest: packaged first, then RDBENCH_DATASETS_PATH (a later one wins)."""
    found = {p.name[:-5]: p for p in manifests_folder().iterdir() if p.name.endswith(".toml")}
    for folder in filter(None, os.environ.get("RDBENCH_DATASETS_PATH", "").split(os.pathsep)):
        for path in sorted(Path(folder).glob("*.toml")):
            found[path.name[:-5]] = path
    return found


def manifest_names() -> list[str]:
    return sorted(_manifest_files())


_HEX64 = re.compile(r"[0-9a-f]{64}")


def load_manifest(name: str) -> Manifest:
    res = _manifest_files().get(name)
    if res is None or not res.is_file():
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

    if "archive" in raw:
        return Manifest(
            name=text(raw, "name"),
            description=text(raw, "description", required=False) or "",
            base_url=text(raw, "base_url", required=False) or "",
            local_env=text(raw, "local_env", required=False),
            url_env=text(raw, "url_env", required=False),
            archive=_parse_archive(raw["archive"], fail),
            license=text(raw, "license", required=False) or "",
        )
    images = raw.get("images")
    if not isinstance(images, list) or not images:
        fail("needs [[images]] entries (or an [archive] table)")
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


def _parse_archive(table, fail) -> Archive:
    if not isinstance(table, dict):
        fail("[archive] must be a table")
    known = {"url", "format", "members", "image_count", "sha256", "size", "checksum_source", "ignore", "files"}
    unknown = set(table) - known
    if unknown:
        fail(f"[archive] unknown keys {sorted(unknown)} (known: {sorted(known)})")
    for key in ("url", "format", "members"):
        if not isinstance(table.get(key), str) or not table[key]:
            fail(f"[archive] needs {key!r} (a string)")
    if table["format"] not in ARCHIVE_FORMATS:
        fail(f"[archive] format {table['format']!r}: expected one of {', '.join(ARCHIVE_FORMATS)}")
    count = table.get("image_count")
    if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
        fail("[archive] needs 'image_count', a positive integer")
    sha = table.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _HEX64.fullmatch(sha)):
        fail("[archive] sha256 must be 64 lower-case hex digits (leave it out where no public source gives one)")
    size = table.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
        fail("[archive] size must be a positive integer (bytes)")
    source = table.get("checksum_source", "")
    if not isinstance(source, str) or not source.strip():
        fail("[archive] needs 'checksum_source': where sha256/size come from, or why there is none")
    lists = {}
    for key in ("ignore", "files"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            fail(f"[archive] {key!r} must be a list of strings")
        lists[key] = tuple(value)
    if lists["files"] and len(lists["files"]) != count:
        fail(f"[archive] lists {len(lists['files'])} files but image_count is {count}")
    return Archive(table["url"], table["format"], table["members"], count, sha, size, source, lists["ignore"],
                   lists["files"])


def data_home() -> Path:
    return Path(os.environ.get("RDBENCH_DATA") or Path.home() / ".cache" / "rdbench")


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
    if manifest.archive is not None:
        return _resolve_archive_dataset(manifest, log or (lambda m: print(m, file=sys.stderr)))
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


def recorded_images(record: dict) -> list[ManifestImage]:
    """The images of an archive dataset's record (data/archives.py) as manifest entries."""
    return [ManifestImage(i["file"], "", i["file_sha256"], i["pixels_sha256"], i["width"], i["height"])
            for i in record["images"]]


def _resolve_archive_dataset(manifest: Manifest, log) -> Dataset:
    """An archive dataset: a local copy ($local_env) or the cache, verified against the digests
    recorded at the first verified download (a local copy without a record: its images counted)."""
    local = os.environ.get(manifest.local_env or "")
    if local:
        folder = Path(local).expanduser()
        if not folder.is_dir():
            raise DatasetError(f"{manifest.local_env}={local}: folder not found (unset it to download "
                               f"{manifest.name} into the cache)")
        record = read_record(folder)
        if record is None:
            dataset = folder_dataset(folder, manifest.name)
            if len(dataset.images) != manifest.image_count:
                raise DatasetError(f"{manifest.local_env}={local}: {len(dataset.images)} images, {manifest.name} has "
                                   f"{manifest.image_count}")
            dataset.source = f"{manifest.name}, local copy {local} (no recorded digests: images counted, not verified)"
            return dataset
        refs = verify_copy(dataclasses.replace(manifest, images=recorded_images(record)), folder)
        return Dataset(manifest.name, refs, f"{manifest.name}, local copy {local} (verified)")
    cache = data_home() / manifest.name
    url = os.environ.get(manifest.url_env or "") or None
    record = fetch_archive(manifest.name, manifest.archive, cache, url, log=log)
    refs = verify_copy(dataclasses.replace(manifest, images=recorded_images(record)), cache)
    return Dataset(manifest.name, refs, f"{manifest.name}, cache {cache} (verified against the digests recorded "
                                        f"{record.get('recorded_at', '')})")


def dataset_state(manifest: Manifest) -> tuple[str, str]:
    """(size, state) of a dataset for `rdbench datasets`: what is on this machine, nothing downloaded."""
    local = os.environ.get(manifest.local_env or "")
    size = f"{manifest.archive.size / 1e6:.0f} MB archive" if manifest.archive and manifest.archive.size else (
        "archive size unpublished" if manifest.archive else "")
    if local:
        return size, f"local copy {local} (${manifest.local_env})"
    cache = data_home() / manifest.name
    if manifest.archive is not None:
        record = read_record(cache) if (cache / "rdbench-images.json").is_file() else None
        if record is not None:
            on_disk = sum(p.stat().st_size for p in cache.iterdir() if p.is_file())
            return size, (f"downloaded: {len(record['images'])} images ({on_disk / 1e6:.0f} MB) in {cache}, digests "
                          f"recorded {record.get('recorded_at', '')}")
        return size, f"not downloaded (on first use, into {cache})"
    present = [e for e in manifest.images if (cache / e.file).is_file()]
    if not size:
        size = "per-file download"
    if len(present) == len(manifest.images):
        on_disk = sum((cache / e.file).stat().st_size for e in present)
        return f"{on_disk / 1e6:.0f} MB", f"downloaded in {cache}"
    return size, (f"{len(present)} of {len(manifest.images)} files in {cache}" if present
                  else f"not downloaded (on first use, into {cache})")
