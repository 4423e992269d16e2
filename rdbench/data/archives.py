"""Datasets published as one archive (zip or tar): downloaded once, checked, extracted safely.

A manifest with an `[archive]` table (datasets/tecnick.toml, clic2020-*.toml, div2k-valid.toml)
names the archive's URL, its SHA-256 and size where a public source publishes them (the manifest
names that source), the members that are the images (`members`, a glob on the path inside the
archive), the members that may be skipped (`ignore`: macOS resource forks, read-me files) and how
many images there are. Fetching it:

1. downloads the archive beside the cache folder (never into it), checks its size and SHA-256:
   a mismatch deletes the file and names the URL, both digests and the source of the expected one;
   where no checksum is published the digest is recorded at this first download;
2. refuses the archive, writing nothing, if any member is an absolute path, climbs out with `..`,
   is a link or a device, matches neither `members` nor `ignore`, or if two images share a file
   name or the count differs from the manifest's;
3. writes only the image members, each under its own file name, into a temporary folder that is
   renamed into place once every image decodes as 8-bit RGB (`extractall` is never used);
4. records each image's file SHA-256, pixel SHA-256 and size in `IMAGES_RECORD` in the dataset
   folder: from then on every use verifies every image against that record, as Kodak's manifest
   does, and the image set digest of the results identifies the set.

The archive is deleted after a verified extraction (the record keeps its digest).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rdbench.conventions import utc_now
from rdbench.data.download import download, sha256_file
from rdbench.errors import DatasetError, ImageError

IMAGES_RECORD = "rdbench-images.json"  # per-image digests recorded at the first verified download
ARCHIVE_FORMATS = ("zip", "tar")  # tar: plain or compressed (gz, bz2, xz), read by tarfile


@dataclass(frozen=True)
class Archive:
    url: str
    format: str
    members: str  # glob of the image members inside the archive
    image_count: int
    sha256: str | None = None  # None: no public checksum; recorded at the first download
    size: int | None = None  # bytes, where published
    checksum_source: str = ""  # where sha256 and size come from, or why there is none
    ignore: tuple[str, ...] = ()  # globs of members that are skipped (not images, not refused)
    files: tuple[str, ...] = field(default=())  # the image file names, where known before a download


def _bad_name(name: str) -> str | None:
    """Why an archive member's path cannot be written inside the dataset folder, or None."""
    if not name or "\0" in name or "\\" in name:
        return "a name with NUL or backslash"
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        return "an absolute path"
    if ".." in path.parts:
        return "a path climbing out of the folder (..)"
    return None


def _matches(name: str, patterns) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name.rstrip("/"), p.rstrip("/*")) for p in patterns)


def _members(path: Path, archive: Archive) -> list[tuple[str, object]]:
    """[(member name, handle)] of the images in the archive; raises DatasetError, naming the member,
    for anything that would write outside the folder or that the manifest does not expect."""
    found = []
    try:
        if archive.format == "zip":
            with zipfile.ZipFile(path) as z:
                entries = []
                for info in z.infolist():
                    mode = info.external_attr >> 16
                    kind = "dir" if info.is_dir() else ("link" if stat.S_ISLNK(mode) else "file")
                    entries.append((info.filename, kind, info))
        else:
            with tarfile.open(path) as t:
                entries = []
                for info in t.getmembers():
                    kind = "dir" if info.isdir() else "file" if info.isfile() else "link" if (info.issym() or info.islnk()) else "special"
                    entries.append((info.name, kind, info))
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable {archive.format} archive ({exc})") from exc
    for name, kind, info in entries:
        problem = _bad_name(name)
        if problem:
            raise DatasetError(f"{path}: refused: member {name!r} is {problem}; nothing was extracted")
        if kind == "dir":
            continue
        if _matches(name, archive.ignore):
            continue
        if kind != "file":
            raise DatasetError(f"{path}: refused: member {name!r} is a {kind} (only plain files are extracted); "
                               "nothing was extracted")
        if not fnmatch.fnmatchcase(name, archive.members):
            raise DatasetError(f"{path}: refused: unexpected member {name!r} (the manifest expects images matching "
                               f"{archive.members!r}); nothing was extracted")
        found.append((name, info))
    names = [PurePosixPath(n).name for n, _ in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(f"{path}: refused: two images named {duplicates[0]!r}; nothing was extracted")
    if len(found) != archive.image_count:
        raise DatasetError(f"{path}: refused: {len(found)} images match {archive.members!r}, the manifest expects "
                           f"{archive.image_count}; nothing was extracted")
    if archive.files and sorted(names) != sorted(archive.files):
        missing = sorted(set(archive.files) - set(names))[:3]
        raise DatasetError(f"{path}: refused: the images are not the manifest's (missing {missing}); nothing was extracted")
    return found


def _write_members(path: Path, archive: Archive, members, folder: Path) -> None:
    """Write each image member's bytes to folder/<its file name>, and nothing else."""
    if archive.format == "zip":
        with zipfile.ZipFile(path) as z:
            for name, info in members:
                with z.open(info) as src, open(folder / PurePosixPath(name).name, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    else:
        with tarfile.open(path) as t:
            for name, info in members:
                src = t.extractfile(info)
                if src is None:
                    raise DatasetError(f"{path}: member {name!r} cannot be read")
                with src, open(folder / PurePosixPath(name).name, "xb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)


def _record_images(folder: Path) -> list[dict]:
    from rdbench.data.images import load_rgb, pixels_sha256

    images = []
    for path in sorted(folder.iterdir()):
        try:
            image = load_rgb(path)
        except ImageError as exc:
            raise DatasetError(f"{path.name}: an image of the archive does not decode as 8-bit RGB: {exc}") from exc
        images.append({"file": path.name, "file_sha256": sha256_file(path), "pixels_sha256": pixels_sha256(image.pixels),
                       "width": image.width, "height": image.height})
    return images


def extract(archive_path: Path, archive: Archive, dest: Path, archive_sha256: str, url: str) -> list[dict]:
    """Extract the images of a checked archive into `dest` (which must not exist yet) and record
    their digests there; returns the record's images. Nothing is left behind on failure."""
    members = _members(archive_path, archive)
    tmp = dest.with_name(f".{dest.name}.extracting.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_members(archive_path, archive, members, tmp)
        images = _record_images(tmp)
        record = {"archive_url": url, "archive_sha256": archive_sha256,
                  "archive_sha256_source": archive.checksum_source if archive.sha256 else
                  "recorded at this first download (no published checksum)",
                  "recorded_at": utc_now(), "images": images}
        (tmp / IMAGES_RECORD).write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return images


def read_record(folder: Path) -> dict | None:
    path = Path(folder) / IMAGES_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record.get("images"), list):
            raise ValueError("no image list")
        return record
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable record of the dataset's images ({exc}); delete the folder to "
                           "download the dataset again") from exc


def fetch_archive(name: str, archive: Archive, dest: Path, url: str | None = None, log=None) -> dict:
    """The record of the dataset in `dest`, downloading and extracting the archive if needed."""
    record = read_record(dest)
    if record is not None:
        return record
    if dest.exists():
        raise DatasetError(f"{dest}: exists but holds no {IMAGES_RECORD} (an interrupted extraction?): delete it to "
                           f"download {name} again")
    url = url or archive.url
    part = dest.with_name(f".{dest.name}.{archive.format}")
    if log:
        size = f" ({archive.size / 1e6:.0f} MB)" if archive.size else ""
        log(f"downloading {url}{size}")
    download(url, part)
    try:
        size = part.stat().st_size
        digest = sha256_file(part)
        if archive.size is not None and size != archive.size:
            raise DatasetError(f"{url}: downloaded archive rejected and deleted: {size} bytes, expected {archive.size} "
                               f"({archive.checksum_source})")
        if archive.sha256 is not None and digest != archive.sha256:
            raise DatasetError(f"{url}: downloaded archive rejected and deleted: SHA-256 {digest}, expected "
                               f"{archive.sha256} ({archive.checksum_source})")
        if archive.sha256 is None and log:
            log(f"{name}: no published checksum; this archive's SHA-256 {digest} is recorded in {dest / IMAGES_RECORD}")
        extract(part, archive, dest, digest, url)
    finally:
        part.unlink(missing_ok=True)
    return read_record(dest)
