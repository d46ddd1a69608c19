"""Verified downloads against a local HTTP server on 127.0.0.1 (never the internet): mirrors, resume,
checksums before extraction, atomic extraction, and pixel verification."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repro.cli import main
from repro.data.fetch import fetch, load_record
from repro.data.manifests import parse_manifest
from repro.data.verify import pixel_digest, verify
from repro.errors import ReproError


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        rng = self.headers.get("Range")
        with srv.lock:
            srv.log.append((self.path, rng))
        if self.path not in srv.files:
            self.send_error(404)
            return
        opts = srv.opts.get(self.path, {})
        if opts.get("status"):
            self.send_error(opts["status"])
            return
        data = srv.files[self.path]
        if opts.get("truncate"):
            data = data[: len(data) // 2]
        if opts.get("corrupt"):
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        start = 0
        if rng and not opts.get("ignore_range"):
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with srv.lock:
            drop = opts.get("drop_after") if srv.drops.get(self.path, 0) > 0 else None
            if drop:
                srv.drops[self.path] -= 1
        if drop:  # send part of the body, then hang up although Content-Length promised more
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class Server:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.files, self.httpd.opts, self.httpd.drops = {}, {}, {}
        self.httpd.log, self.httpd.lock = [], threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def add(self, path: str, data: bytes, drops: int = 1, **opts) -> str:
        self.httpd.files[path] = data
        self.httpd.opts[path] = opts
        self.httpd.drops[path] = drops if opts.get("drop_after") else 0
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    @property
    def log(self) -> list[tuple[str, str | None]]:
        return self.httpd.log


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _closed_port_url(path: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"  # nothing listens there any more: connection refused


def _png(seed: int, shape: tuple[int, ...]) -> tuple[bytes, np.ndarray]:
    arr = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue(), arr


def _images() -> dict[str, tuple[bytes, np.ndarray]]:
    """A tiny dataset: toy/HR (two colour, one gray) and toy/LR (two images)."""
    specs = {"toy/HR/a.png": (24, 32, 3), "toy/HR/b.png": (30, 20, 3), "toy/HR/g.png": (16, 16),
             "toy/LR/ax2.png": (12, 16, 3), "toy/LR/bx2.png": (15, 10, 3)}
    return {p: _png(i, s) for i, (p, s) in enumerate(specs.items())}


def _zip(images) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, (data, _) in images.items():
            zf.writestr(path, data)
    return buf.getvalue()


def _tar(images, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for path, data in {**{p: d for p, (d, _) in images.items()}, **(extra or {})}.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _manifest(file: str, data: bytes, urls: list[str], images, *, md5_only: bool = False, size: bool = True):
    spec: dict = {"urls": urls}
    if md5_only:
        spec["md5"] = hashlib.md5(data).hexdigest()
    else:
        spec["sha256"] = hashlib.sha256(data).hexdigest()
    if size:
        spec["size"] = len(data)
    return parse_manifest({
        "name": "toy", "description": "toy set", "license": "test", "source": "built by the test",
        "archives": {file: spec},
        "folders": {"toy/HR": {"count": 3}, "toy/LR": {"count": 2}},
        "pixels": {p: {"shape": list(a.shape), "sha256": pixel_digest(a)} for p, (_, a) in images.items()},
    })


def _leftovers(root: Path) -> list[str]:
    """Temp folders and partial files fetch must never leave behind."""
    state = root / ".repro"
    if not state.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in state.rglob("*")
                  if p.name.startswith("extract-") or p.name.endswith((".part", ".tmp")))


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_good_path_then_skipped(server, tmp_path, kind):
    images = _images()
    data = _zip(images) if kind == "zip" else _tar(images)
    file = f"toy.{kind}"
    m = _manifest(file, data, [server.add(f"/{file}", data)], images)
    result = fetch(m, tmp_path, progress=False, log=lambda s: None)
    assert result.fetched == [file] and result.report.ok, result.report.problems
    assert result.report.checked == 5
    assert (tmp_path / "toy/HR/a.png").is_file()
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / ".repro/downloads" / file).exists()  # archive removed once extracted
    rec = load_record(tmp_path, "toy")["archives"][file]
    assert rec["sha256"] == hashlib.sha256(data).hexdigest() and rec["extracted"] and rec["size"] == len(data)
    n = len(server.log)
    again = fetch(m, tmp_path, progress=False, log=lambda s: None)
    assert again.fetched == [] and again.skipped == [file] and len(server.log) == n  # not fetched again
    forced = fetch(m, tmp_path, force=True, progress=False, log=lambda s: None)
    assert forced.fetched == [file] and forced.report.ok and len(server.log) == n + 1


@pytest.mark.parametrize("fault", ["truncate", "corrupt"])
def test_bad_archive_detected_before_extraction(server, tmp_path, fault):
    images = _images()
    data = _zip(images)
    m = _manifest("toy.zip", data, [server.add("/toy.zip", data, **{fault: True})], images)
    flipped = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
    bad = data[: len(data) // 2] if fault == "truncate" else flipped
    with pytest.raises(ReproError) as err:
        fetch(m, tmp_path, progress=False, log=lambda s: None)
    msg = str(err.value)
    assert "toy.zip" in msg
    assert hashlib.sha256(data).hexdigest() in msg  # expected
    assert hashlib.sha256(bad).hexdigest() in msg  # actual
    assert not (tmp_path / "toy").exists()  # nothing extracted
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / ".repro/downloads/toy.zip").exists()


def test_md5_only_archive_records_sha256_then_requires_it(server, tmp_path):
    images = _images()
    data = _tar(images)
    m = _manifest("toy.tar", data, [server.add("/toy.tar", data)], images, md5_only=True, size=False)
    assert fetch(m, tmp_path, progress=False, log=lambda s: None).report.ok
    rec = load_record(tmp_path, "toy")["archives"]["toy.tar"]
    assert rec["sha256"] == hashlib.sha256(data).hexdigest() and rec["md5"] == hashlib.md5(data).hexdigest()
    # the recorded sha256 now pins the file: a server that serves other bytes is refused
    server.httpd.opts["/toy.tar"] = {"corrupt": True}
    with pytest.raises(ReproError, match=rec["sha256"]):
        fetch(m, tmp_path, force=True, progress=False, log=lambda s: None)


def test_dropped_connection_is_resumed_with_range(server, tmp_path):
    images = _images()
    data = _zip(images)
    cut = len(data) // 3
    m = _manifest("toy.zip", data, [server.add("/toy.zip", data, drop_after=cut, drops=2)], images)
    logs: list[str] = []
    result = fetch(m, tmp_path, progress=False, log=logs.append)
    assert result.report.ok
    ranges = [r for p, r in server.log if p == "/toy.zip"]
    assert ranges == [None, f"bytes={cut}-", f"bytes={2 * cut}-"]
    assert any("resuming" in s for s in logs)
    assert _leftovers(tmp_path) == []


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    images = _images()
    data = _zip(images)
    m = _manifest("toy.zip", data, [server.add("/toy.zip", data)], images)
    part = tmp_path / ".repro/downloads/toy.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    assert fetch(m, tmp_path, progress=False, log=lambda s: None).report.ok
    assert server.log == [("/toy.zip", "bytes=1000-")]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    images = _images()
    data = _zip(images)
    m = _manifest("toy.zip", data, [server.add("/toy.zip", data, ignore_range=True)], images)
    part = tmp_path / ".repro/downloads/toy.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    assert fetch(m, tmp_path, progress=False, log=lambda s: None).report.ok  # not 1000 bytes twice


@pytest.mark.parametrize("dead", ["closed_port", "http_500", "wrong_bytes"])
def test_dead_first_mirror_falls_back_to_second(server, tmp_path, dead):
    images = _images()
    data = _zip(images)
    first = {"closed_port": lambda: _closed_port_url("/toy.zip"),
             "http_500": lambda: server.add("/a/toy.zip", data, status=500),
             "wrong_bytes": lambda: server.add("/a/toy.zip", data, corrupt=True)}[dead]()
    m = _manifest("toy.zip", data, [first, server.add("/b/toy.zip", data)], images)
    logs: list[str] = []
    result = fetch(m, tmp_path, progress=False, log=logs.append)
    assert result.report.ok
    assert server.log[-1] == ("/b/toy.zip", None)
    assert any("next mirror" in s for s in logs)
    rec = load_record(tmp_path, "toy")["archives"]["toy.zip"]
    assert rec["url"].endswith("/b/toy.zip")


def test_all_mirrors_failing_names_each(server, tmp_path):
    images = _images()
    data = _zip(images)
    urls = [_closed_port_url("/toy.zip"), server.add("/toy.zip", data, status=404)]
    m = _manifest("toy.zip", data, urls, images)
    with pytest.raises(ReproError, match="any of its 2 mirror") as err:
        fetch(m, tmp_path, progress=False, log=lambda s: None)
    assert urls[0] in str(err.value) and "404" in str(err.value)
    assert not (tmp_path / "toy").exists() and _leftovers(tmp_path) == []


def test_interrupted_extraction_leaves_nothing_half_done(server, tmp_path, monkeypatch):
    images = _images()
    data = _zip(images)
    m = _manifest("toy.zip", data, [server.add("/toy.zip", data)], images)

    def boom(self, path=None, members=None, pwd=None):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(zipfile.ZipFile, "extractall", boom)
        with pytest.raises(KeyboardInterrupt):
            fetch(m, tmp_path, progress=False, log=lambda s: None)
    assert not (tmp_path / "toy").exists() and _leftovers(tmp_path) == []
    assert (tmp_path / ".repro/downloads/toy.zip").is_file()  # verified archive kept for the rerun
    n = len(server.log)
    assert fetch(m, tmp_path, progress=False, log=lambda s: None).report.ok
    assert len(server.log) == n  # the rerun extracted the kept archive without downloading again


def test_unsafe_tar_member_is_refused(server, tmp_path):
    images = _images()
    data = _tar(images, extra={"../escape.txt": b"x"})
    m = _manifest("toy.tar", data, [server.add("/toy.tar", data)], images)
    root = tmp_path / "root"
    with pytest.raises(ReproError, match="unsafe path"):
        fetch(m, root, progress=False, log=lambda s: None)
    assert not (tmp_path / "escape.txt").exists() and not (root / "toy").exists()
    assert _leftovers(root) == []


def test_archives_merge_into_a_shared_folder(server, tmp_path):
    """Two zips with the same top folder (as DIV2K's X2 and X4 LR zips) both land in it."""
    images = _images()
    hr = {p: v for p, v in images.items() if "/HR/" in p}
    lr = {p: v for p, v in images.items() if "/LR/" in p}
    base = _manifest("hr.zip", _zip(hr), [server.add("/hr.zip", _zip(hr))], images)
    raw = {"name": "toy", "description": "d", "license": "l", "source": "s",
           "archives": {"hr.zip": {"urls": [server.url("/hr.zip")], "sha256": base.archives[0].sha256},
                        "lr.zip": {"urls": [server.add("/lr.zip", _zip(lr))],
                                   "sha256": hashlib.sha256(_zip(lr)).hexdigest()}},
           "folders": {"toy/HR": {"count": 3}, "toy/LR": {"count": 2}},
           "pixels": {p.path: {"shape": list(p.shape), "sha256": p.sha256} for p in base.pixels}}
    m = parse_manifest(raw)
    first = fetch(m, tmp_path, only=["lr.zip"], progress=False, log=lambda s: None)
    assert first.fetched == ["lr.zip"] and first.report is None
    assert not verify(m, tmp_path).ok
    result = fetch(m, tmp_path, progress=False, log=lambda s: None)
    assert result.fetched == ["hr.zip"] and result.skipped == ["lr.zip"] and result.report.ok
    with pytest.raises(ReproError, match="valid choices: hr.zip, lr.zip"):
        fetch(m, tmp_path, only=["nosuch.zip"], progress=False, log=lambda s: None)


def test_verify_reports_changed_pixel_and_missing_file(server, tmp_path):
    images = _images()
    data = _zip(images)
    m = _manifest("toy.zip", data, [server.add("/toy.zip", data)], images)
    assert fetch(m, tmp_path, progress=False, log=lambda s: None).report.ok
    arr = images["toy/HR/a.png"][1].copy()
    arr[5, 7, 1] ^= 1
    Image.fromarray(arr).save(tmp_path / "toy/HR/a.png")
    (tmp_path / "toy/LR/bx2.png").unlink()
    report = verify(m, tmp_path)
    assert not report.ok
    assert report.missing == ["toy/LR/bx2.png"]
    assert len(report.mismatched) == 1 and report.mismatched[0].startswith("toy/HR/a.png: pixels differ")
    assert pixel_digest(arr) in report.mismatched[0]
    assert any("toy/LR: 1 images, expected 2" in p for p in report.folder_problems)



def test_cli_fetch_and_verify_end_to_end(server, tmp_path, capsys, monkeypatch):
    import repro.commands.data as data_cmd

    images = _images()
    data = _tar(images)
    m = _manifest("toy.tar", data, [_closed_port_url("/toy.tar"), server.add("/toy.tar", data)], images)
    monkeypatch.setattr(data_cmd, "get_manifest", lambda name: m)
    root = str(tmp_path)
    assert main(["data", "fetch", "toy", "--root", root, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "trying the next mirror" in out and "toy: OK (5 images checked" in out
    assert main(["data", "fetch", "toy", "--root", root, "--quiet"]) == 0
    assert "already present" in capsys.readouterr().out
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "toy/HR/g.png")
    assert main(["data", "verify", "toy", "--root", root]) == 1
    out = capsys.readouterr().out
    assert "mismatch: toy/HR/g.png: pixels differ" in out and "repro data fetch toy --force" in out
    assert main(["data", "fetch", "toy", "--root", root, "--quiet", "--force"]) == 0
    assert main(["data", "verify", "toy", "--root", root]) == 0
