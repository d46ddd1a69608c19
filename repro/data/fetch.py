"""Verified downloads: mirrors in order, resume with HTTP Range, checksums before extraction, and
extraction into a temporary folder that is renamed into place only when complete.

Bookkeeping lives under `<root>/.repro/`: `downloads/` (partial `<file>.part` files and whole archives
awaiting extraction) and `<dataset>.verified.json` (per archive: size, sha256, md5, mirror, extracted),
which also holds the sha256 of archives whose manifest only gives an md5 (recorded on first verified
download and required from then on). Nothing of this is ever written into the repository.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from repro.data.manifests import Archive, Manifest
from repro.data.verify import VerifyReport, folder_status, verify
from repro.errors import ReproError
from repro.io_utils import atomic_write_text

__all__ = ["FetchResult", "VerifyReport", "fetch", "download", "file_checksums", "verify", "state_dir"]

CHUNK = 1 << 20
BIG = 100 << 20  # say so before hashing files this large (a few seconds per GB)
USER_AGENT = "dssd-repro/0.1 (python-urllib)"


def state_dir(root: Path) -> Path:
    return root / ".repro"


def record_path(root: Path, dataset: str) -> Path:
    return state_dir(root) / f"{dataset}.verified.json"


def load_record(root: Path, dataset: str) -> dict:
    path = record_path(root, dataset)
    if not path.is_file():
        return {"archives": {}}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReproError(f"cannot read {path}: {exc}; delete it and fetch again with --force") from exc
    record.setdefault("archives", {})
    return record


def save_record(root: Path, dataset: str, record: dict) -> None:
    atomic_write_text(record_path(root, dataset), json.dumps(record, indent=1, sort_keys=True) + "\n")


def file_checksums(path: Path) -> dict[str, str | int]:
    """sha256, md5 and size of a file, read once."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest(), "size": size}


def expected_checksums(archive: Archive, recorded: dict | None = None) -> dict[str, str | int]:
    """What the file must match: the manifest's checksums plus a sha256 recorded earlier for this root."""
    pairs = (("sha256", archive.sha256), ("md5", archive.md5), ("size", archive.size))
    want: dict[str, str | int] = {k: v for k, v in pairs if v}
    if recorded and "sha256" not in want and recorded.get("sha256"):
        want["sha256"] = recorded["sha256"]
    return want


def mismatch(archive: Archive, actual: dict, want: dict) -> str | None:
    """None when `actual` satisfies `want`, else a message naming file, expected and actual checksums."""
    bad = [k for k in ("sha256", "md5", "size") if k in want and want[k] != actual[k]]
    if not bad:
        return None
    algo = "sha256" if "sha256" in want else "md5"
    return (f"checksum mismatch for {archive.file}: expected {algo} {want[algo]}, got {actual[algo]} "
            f"({actual['size']} bytes" + (f", expected {want['size']})" if "size" in want else ")"))


class _Dropped(Exception):
    """The connection ended before the whole body arrived: resume with a Range request."""


def _stream(url: str, part: Path, size: int | None, timeout: float, progress: bool) -> None:
    """Download `url` into `part`, continuing an existing partial file when the server honours Range."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # not a prefix of this file: start over
        part.unlink()
        have = 0
    if size is not None and have == size:
        return
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part is whole (the checksum decides)
            return
        raise
    with resp:
        mode = "wb"
        if have and resp.status == 206:
            start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start.strip() == str(have):
                mode = "ab"
        if mode == "wb":  # the server ignored Range (200) or answered another range: restart cleanly
            have = 0
        length = resp.headers.get("Content-Length")
        body = int(length) if length and length.isdigit() else None
        total = have + body if body is not None else size
        got = 0
        with open(part, mode) as fh, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                          unit_divisor=1024, desc=part.name.removesuffix(".part"),
                                          disable=not progress, leave=False, file=sys.stderr) as bar:
            try:
                while chunk := resp.read(CHUNK):
                    fh.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as exc:  # reset, timeout, IncompleteRead
                raise _Dropped(f"connection lost after {have + got} bytes ({exc})") from exc
    if body is not None and got < body:
        raise _Dropped(f"connection closed after {have + got} of {have + body} bytes")


def _from_mirror(url: str, part: Path, size: int | None, retries: int, timeout: float, progress: bool,
                 log: Callable[[str], None]) -> str | None:
    """Get the whole body of `url` into `part` (resuming after drops); None on success, else why not."""
    for attempt in range(retries + 1):
        try:
            _stream(url, part, size, timeout, progress)
            return None
        except _Dropped as exc:
            if attempt == retries:
                return f"{exc}; gave up after {retries} resumes"
            log(f"{part.name.removesuffix('.part')}: {exc}; resuming")
            time.sleep(0.1 * 2**attempt)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            return str(exc)
    return None  # unreachable: the loop returns


def download(archive: Archive, dest_dir: Path, *, recorded: dict | None = None, retries: int = 3,
             timeout: float = 60.0, progress: bool = True,
             log: Callable[[str], None] = print) -> tuple[Path, dict]:
    """Fetch `archive` into `dest_dir` (verified), trying each mirror in turn; returns (path, checksums).

    A dropped connection is resumed from the partial file up to `retries` times per mirror; an HTTP or
    connection error or a checksum mismatch moves on to the next mirror (a mismatching file is deleted).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    final, part = dest_dir / archive.file, dest_dir / f"{archive.file}.part"
    want = expected_checksums(archive, recorded)
    if final.is_file():  # downloaded earlier but not extracted (e.g. interrupted): reuse if it checks out
        actual = file_checksums(final)
        if mismatch(archive, actual, want) is None:
            return final, actual
        final.unlink()
    failures: list[str] = []
    for i, url in enumerate(archive.urls):
        why = _from_mirror(url, part, archive.size, retries, timeout, progress, log)
        if why is None:
            if (archive.size or BIG) >= BIG:
                log(f"{archive.file}: downloaded; checking its checksum")
            actual = file_checksums(part)
            why = mismatch(archive, actual, want)
            if why is None:
                os.replace(part, final)
                return final, {**actual, "url": url}
            part.unlink()  # a wrong file is no prefix to resume from
        failures.append(f"{url}: {why}")
        if i + 1 < len(archive.urls):
            log(f"{archive.file}: {why} (from {url}); trying the next mirror")
    raise ReproError(f"could not download {archive.file} from any of its {len(archive.urls)} mirror(s): "
                     + "; ".join(failures))


def _safe_members(names: Iterable[str], archive: Path) -> None:
    for name in names:
        p = PurePosixPath(name.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts:
            raise ReproError(f"{archive} holds an unsafe path {name!r}; refusing to extract it")


def _merge(src: Path, dest: Path) -> None:
    """Move the tree `src` into `dest` by renames: whole subtrees where `dest` lacks them, files replaced."""
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        return
    if src.is_dir() and dest.is_dir():
        for child in sorted(src.iterdir()):
            _merge(child, dest / child.name)
        return
    if dest.is_dir():
        shutil.rmtree(dest)
    os.replace(src, dest)


def extract(archive: Archive, path: Path, root: Path) -> Path:
    """Unpack a verified archive into `root/archive.extract_to` via a temp folder inside the root."""
    dest = root / archive.extract_to
    if archive.format == "file":
        dest.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest / archive.file)
        return dest
    tmp_base = state_dir(root)
    tmp_base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"extract-{archive.file}-", dir=tmp_base))
    try:
        try:
            if archive.format == "zip":
                with zipfile.ZipFile(path) as zf:
                    _safe_members(zf.namelist(), path)
                    zf.extractall(tmp)
            else:
                with tarfile.open(path) as tf:
                    _safe_members(tf.getnames(), path)
                    if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: also refuses links out, devices
                        tf.extractall(tmp, filter="data")
                    else:
                        tf.extractall(tmp, members=[m for m in tf.getmembers() if m.isfile() or m.isdir()])
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
            raise ReproError(f"cannot extract {path}: {exc}; delete it and fetch again with --force") from exc
        _merge(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@dataclass
class FetchResult:
    dataset: str
    root: Path
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    report: VerifyReport | None = None


def fetch(manifest: Manifest, root: str | os.PathLike[str], *, force: bool = False, only: Iterable[str] = (),
          check: bool = True, retries: int = 3, timeout: float = 60.0, progress: bool = True,
          log: Callable[[str], None] = print) -> FetchResult:
    """Download, verify and extract the archives of `manifest` under `root`; then verify the data.

    Archives already extracted (per the record) are skipped unless `force`; so is the whole dataset when
    its folders already hold every image (e.g. a copy made by hand), which `verify` then checks.
    """
    root = Path(root)
    result = FetchResult(manifest.name, root)
    if manifest.embedded:
        raise ReproError(f"dataset {manifest.name} is embedded in the suite: there is nothing to download")
    archives = [manifest.archive(f) for f in only] if only else list(manifest.archives)
    record = load_record(root, manifest.name)
    if not force and not only and folder_status(manifest, root) == "present":
        result.skipped = [a.file for a in archives]
        log(f"{manifest.name}: already present under {root} (use --force to download again)")
    else:
        downloads = state_dir(root) / "downloads"
        for archive in archives:
            entry = record["archives"].get(archive.file, {})
            if entry.get("extracted") and not force:
                result.skipped.append(archive.file)
                continue
            if force:
                entry = {k: v for k, v in entry.items() if k == "sha256" and not archive.sha256}
            path, sums = download(archive, downloads, recorded=entry, retries=retries, timeout=timeout,
                                  progress=progress, log=log)
            newly = not entry.get("sha256") and not archive.sha256
            extract(archive, path, root)
            path.unlink(missing_ok=True)
            record["archives"][archive.file] = {**sums, "extracted": True,
                                                "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            save_record(root, manifest.name, record)
            if newly:
                log(f"{archive.file}: md5 verified; recorded its sha256 {sums['sha256']} in "
                    f"{record_path(root, manifest.name)}")
            result.fetched.append(archive.file)
            log(f"{archive.file}: verified and extracted into {root / archive.extract_to}")
    if check and not only:  # a partial fetch (--only) cannot pass a whole-dataset check
        result.report = verify(manifest, root)
    return result
