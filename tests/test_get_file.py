"""fastconv.utils.data_utils.get_file against a local HTTP server.

The server (127.0.0.1, a free port, in a thread) serves whatever a test puts
in its routes and counts the requests, so caching, hashing, extraction,
hostile archives and broken downloads are all tested without a network.
Every test writes under tmp_path: ``HOME`` and ``KERAS_HOME`` point there.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import socket
import tarfile
import threading
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from fastconv.utils import data_utils
from fastconv.utils.data_utils import get_file

PAYLOAD = b"fastconv get_file test payload\n" * 10
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: the server closes the connection after every response, which
    # is what lets a handler end a body early.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.server.hits[self.path] += 1
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        route(self)

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


class _Server:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.routes = {}
        self.httpd.hits = Counter()
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> Counter:
        return self.httpd.hits

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, path: str, body: bytes, length: bool = True) -> str:
        def route(handler: _Handler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/octet-stream")
            if length:
                handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        self.httpd.routes[path] = route
        return self.url(path)

    def serve_truncated(self, path: str, declared: int, body: bytes) -> str:
        def route(handler: _Handler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Length", str(declared))
            handler.end_headers()
            handler.wfile.write(body)
            handler.wfile.flush()
            handler.close_connection = True  # then the server closes the socket
        self.httpd.routes[path] = route
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def _server_instance():
    server = _Server()
    yield server
    server.close()


@pytest.fixture
def server(_server_instance):
    _server_instance.httpd.routes.clear()
    _server_instance.hits.clear()
    return _server_instance


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Never the real ~/.keras, and never a proxy for 127.0.0.1."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                 "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def _files(path) -> set:
    """Every file, link and folder under path, relative to it."""
    found = set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(root, name), path))
    return found


def _tar_bytes(members, mode="w:gz") -> bytes:
    """A tar archive of (TarInfo, data-or-None) pairs."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def _zip_bytes(members) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def _read(path) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------
# Download and cache


def test_downloads_into_cache_subdir_and_reports_progress(server, cache, capsys):
    url = server.serve("/data.bin", PAYLOAD)
    path = get_file("data.bin", url, cache_dir=str(cache))
    assert path == str(cache / "datasets" / "data.bin")
    assert (cache / "datasets" / "data.bin").read_bytes() == PAYLOAD
    assert _files(cache / "datasets") == {"data.bin"}  # no temp file left
    out = capsys.readouterr().out
    assert out.startswith(f"Downloading data from {url}\n")
    n = len(PAYLOAD)
    assert f"{n}/{n} [==============================]" in out


def test_progress_without_content_length(server, cache, capsys):
    url = server.serve("/nolength", PAYLOAD, length=False)
    path = get_file("nolength", url, cache_dir=cache)  # a PathLike cache_dir
    assert _read(path) == PAYLOAD
    assert f"{len(PAYLOAD)}/Unknown" in capsys.readouterr().out


def test_second_call_uses_the_cache(server, cache, capsys):
    url = server.serve("/data.bin", PAYLOAD)
    first = get_file("data.bin", url, cache_dir=str(cache))
    capsys.readouterr()
    second = get_file("data.bin", url, cache_dir=str(cache))
    third = get_file("data.bin", url, cache_dir=str(cache), file_hash=SHA256)
    assert first == second == third
    assert server.hits["/data.bin"] == 1
    assert "Downloading" not in capsys.readouterr().out


@pytest.mark.parametrize("kwargs", [
    {"file_hash": SHA256},
    {"file_hash": SHA256.upper()},
    {"file_hash": SHA256, "hash_algorithm": "sha256"},
    {"file_hash": MD5},
    {"file_hash": MD5, "hash_algorithm": "md5"},
    {"md5_hash": MD5},
    {"md5_hash": MD5, "hash_algorithm": "sha256"},   # md5_hash always means md5
])
def test_right_hash_is_accepted(server, cache, kwargs):
    url = server.serve("/data.bin", PAYLOAD)
    path = get_file("data.bin", url, cache_dir=str(cache), **kwargs)
    assert _read(path) == PAYLOAD


@pytest.mark.parametrize("kwargs", [
    {"file_hash": "0" * 64},
    {"file_hash": "0" * 32},
    {"md5_hash": "0" * 32},
])
def test_wrong_hash_of_a_download_raises_and_keeps_nothing(server, cache, kwargs):
    url = server.serve("/data.bin", PAYLOAD)
    with pytest.raises(ValueError, match="hash of the file downloaded from .*data.bin"):
        get_file("data.bin", url, cache_dir=str(cache), **kwargs)
    assert server.hits["/data.bin"] == 1
    assert _files(cache / "datasets") == set()


@pytest.mark.parametrize("file_hash", [SHA256, MD5])
def test_stale_cached_file_is_downloaded_again(server, cache, capsys, file_hash):
    url = server.serve("/data.bin", PAYLOAD)
    (cache / "datasets").mkdir(parents=True)
    (cache / "datasets" / "data.bin").write_bytes(b"an older version")
    path = get_file("data.bin", url, cache_dir=str(cache), file_hash=file_hash)
    assert _read(path) == PAYLOAD
    assert server.hits["/data.bin"] == 1
    out = capsys.readouterr().out
    assert "A local file was found, but it seems to be incomplete or outdated" in out
    assert file_hash in out and "Downloading data from" in out
    assert _files(cache / "datasets") == {"data.bin"}


def test_failed_redownload_leaves_the_stale_file_alone(server, cache):
    url = server.serve_truncated("/data.bin", 1000, b"0123456789")
    (cache / "datasets").mkdir(parents=True)
    (cache / "datasets" / "data.bin").write_bytes(b"an older version")
    with pytest.raises(OSError, match="retrieval incomplete"):
        get_file("data.bin", url, cache_dir=str(cache), file_hash=SHA256)
    assert (cache / "datasets" / "data.bin").read_bytes() == b"an older version"
    assert _files(cache / "datasets") == {"data.bin"}


# ---------------------------------------------------------------------------
# Broken downloads


def test_truncated_download_leaves_no_partial_file(server, cache):
    url = server.serve_truncated("/big.bin", 1000, b"0123456789")
    with pytest.raises(OSError, match=f"URL fetch failure on {url}: .*"
                                      "got only 10 out of 1000 bytes"):
        get_file("big.bin", url, cache_dir=str(cache))
    assert _files(cache / "datasets") == set()  # neither big.bin nor a temporary file
    # A later call tries again rather than trusting a partial file.
    server.serve("/big.bin", PAYLOAD)
    assert _read(get_file("big.bin", url, cache_dir=str(cache))) == PAYLOAD


class _SpyProgbar:
    """Stands in for Progbar: looks at the cache folder after every chunk."""

    def __init__(self, target, folder, final, interrupt=False):
        self.target, self.folder, self.final = target, folder, final
        self.interrupt = interrupt
        self.seen = []

    def update(self, current, finalize=None):
        self.seen.append((current, os.path.exists(self.final), sorted(_files(self.folder))))
        if self.interrupt:
            raise KeyboardInterrupt


def test_download_goes_to_a_temp_file_renamed_at_the_end(server, cache, monkeypatch):
    body = bytes(range(256)) * 1024  # 256 KiB: several chunks
    url = server.serve("/big.bin", body)
    spies = []

    def spy(target):
        spies.append(_SpyProgbar(target, cache / "datasets", cache / "datasets" / "big.bin"))
        return spies[-1]
    monkeypatch.setattr(data_utils, "Progbar", spy)
    assert _read(get_file("big.bin", url, cache_dir=str(cache))) == body
    (progbar,) = spies
    assert progbar.target == len(body) and len(progbar.seen) > 1
    for current, final_exists, files in progbar.seen:
        assert not final_exists
        (temp,) = files
        assert temp.startswith(".big.bin.") and temp.endswith(".tmp")
    assert progbar.seen[-1][0] == len(body)
    assert _files(cache / "datasets") == {"big.bin"}


def test_interrupted_download_removes_its_temp_file(server, cache, monkeypatch):
    url = server.serve("/big.bin", PAYLOAD)
    monkeypatch.setattr(data_utils, "Progbar", lambda target: _SpyProgbar(
        target, cache / "datasets", cache / "datasets" / "big.bin", interrupt=True))
    with pytest.raises(KeyboardInterrupt):
        get_file("big.bin", url, cache_dir=str(cache))
    assert _files(cache / "datasets") == set()


def test_truncated_chunked_download_leaves_nothing(server, cache):
    def route(handler):
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.wfile.write(b"a\r\n0123456789\r\n")  # then closes without the last chunk
        handler.close_connection = True
    server.httpd.routes["/chunked"] = route
    url = server.url("/chunked")
    with pytest.raises(OSError, match=f"URL fetch failure on {url}: None -- retrieval "
                                      "incomplete"):
        get_file("chunked", url, cache_dir=str(cache))
    assert _files(cache / "datasets") == set()


def test_unreachable_url_names_the_origin(cache):
    url = f"http://127.0.0.1:{_closed_port()}/x"
    with pytest.raises(OSError, match=f"URL fetch failure on {url}: .*refused"):
        get_file("x", url, cache_dir=str(cache))
    assert _files(cache / "datasets") == set()


def test_http_404_names_the_origin_and_status(server, cache):
    url = server.url("/missing")
    with pytest.raises(OSError, match=f"URL fetch failure on {url}: 404 -- Not Found"):
        get_file("missing", url, cache_dir=str(cache))
    assert server.hits["/missing"] == 1
    assert _files(cache / "datasets") == set()


# ---------------------------------------------------------------------------
# Where the cache is


def test_keras_home_is_the_default_cache_dir(server, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    url = server.serve("/data.bin", PAYLOAD)
    assert get_file("data.bin", url) == str(tmp_path / "kh" / "datasets" / "data.bin")


def test_home_keras_without_keras_home(server, tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME")
    url = server.serve("/data.bin", PAYLOAD)
    path = get_file("data.bin", url, cache_subdir="sub")
    assert path == str(tmp_path / "home" / ".keras" / "sub" / "data.bin")
    assert os.path.isfile(path)


def test_unwritable_cache_dir_falls_back(server, tmp_path, monkeypatch):
    monkeypatch.setattr(data_utils, "_FALLBACK_CACHE_DIR", str(tmp_path / "fallback"))
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache dir should be")
    url = server.serve("/data.bin", PAYLOAD)
    path = get_file("data.bin", url, cache_dir=str(blocker))
    assert path == str(tmp_path / "fallback" / "datasets" / "data.bin")


def test_fname_with_subdir_and_absolute_paths(server, cache, tmp_path):
    url = server.serve("/data.bin", PAYLOAD)
    nested = get_file(os.path.join("a", "b.bin"), url, cache_dir=str(cache))
    assert nested == str(cache / "datasets" / "a" / "b.bin") and os.path.isfile(nested)
    absolute = tmp_path / "elsewhere" / "c.bin"
    assert get_file(str(absolute), url, cache_dir=str(cache)) == str(absolute)
    assert absolute.read_bytes() == PAYLOAD
    subdir = tmp_path / "absolute_subdir"
    assert get_file("d.bin", url, cache_dir=str(cache), cache_subdir=str(subdir)) \
        == str(subdir / "d.bin")


# ---------------------------------------------------------------------------
# Extraction


@pytest.mark.parametrize("mode,archive_format", [
    ("w:gz", "auto"), ("w:bz2", "tar"), ("w", ["tar"]), ("w:xz", ("zip", "tar")),
])
def test_extract_tar(server, cache, mode, archive_format):
    data = _tar_bytes([(_file("pkg/one.txt"), b"one"), (_file("pkg/two.txt"), b"two"),
                       (_link("pkg/alias.txt", "one.txt"), None),
                       (_link("pkg/hard.txt", "pkg/two.txt", hard=True), None)], mode)
    url = server.serve("/pkg.tar", data)
    path = get_file("pkg.tar", url, cache_dir=str(cache), extract=True,
                    archive_format=archive_format)
    assert path == str(cache / "datasets" / "pkg.tar")
    assert (cache / "datasets" / "pkg" / "two.txt").read_bytes() == b"two"
    assert (cache / "datasets" / "pkg" / "alias.txt").read_bytes() == b"one"
    assert (cache / "datasets" / "pkg" / "hard.txt").read_bytes() == b"two"


def test_extract_zip_and_formats_that_do_not_match(server, cache):
    url = server.serve("/pkg.zip", _zip_bytes([("pkg/one.txt", b"one"), ("top.txt", b"t")]))
    get_file("pkg.zip", url, cache_dir=str(cache), extract=True, archive_format="tar")
    get_file("pkg.zip", url, cache_dir=str(cache), extract=True, archive_format=None)
    get_file("pkg.zip", url, cache_dir=str(cache), extract=False)
    assert _files(cache / "datasets") == {"pkg.zip"}
    get_file("pkg.zip", url, cache_dir=str(cache), extract=True)
    assert (cache / "datasets" / "pkg" / "one.txt").read_bytes() == b"one"
    assert (cache / "datasets" / "top.txt").read_bytes() == b"t"
    assert server.hits["/pkg.zip"] == 1


def test_extract_of_a_non_archive_keeps_the_file(server, cache):
    url = server.serve("/plain.txt", PAYLOAD)
    path = get_file("plain.txt", url, cache_dir=str(cache), extract=True)
    assert _files(cache / "datasets") == {"plain.txt"} and _read(path) == PAYLOAD


def test_untar_returns_the_folder(server, cache):
    url = server.serve("/flowers.tgz", _tar_bytes([(_file("flowers/rose.txt"), b"rose")]))
    path = get_file("flowers", url, cache_dir=str(cache), untar=True)
    assert path == str(cache / "datasets" / "flowers")
    assert (cache / "datasets" / "flowers" / "rose.txt").read_bytes() == b"rose"
    assert (cache / "datasets" / "flowers.tar.gz").is_file()
    # The folder exists: neither downloaded nor extracted again.
    (cache / "datasets" / "flowers" / "rose.txt").unlink()
    assert get_file("flowers", url, cache_dir=str(cache), untar=True) == path
    assert not (cache / "datasets" / "flowers" / "rose.txt").exists()
    assert server.hits["/flowers.tgz"] == 1


def test_untar_of_a_non_tar_is_an_error(server, cache):
    url = server.serve("/flowers.tgz", PAYLOAD)
    with pytest.raises(ValueError, match="is not a tar archive"):
        get_file("flowers", url, cache_dir=str(cache), untar=True)


def _hostile_tars(outside):
    """case: (members, the member refused, how the message says it was)."""
    by_name = "nothing was extracted"
    return {
        "dotdot": ([(_file("ok.txt"), b"ok"), (_file("../evil"), b"evil")], "../evil",
                   "has a '..' component; " + by_name),
        "absolute": ([(_file(str(outside / "abs_evil")), b"evil")], str(outside / "abs_evil"),
                     "has an absolute path; " + by_name),
        "symlink_out": ([(_link("link", "../../outside"), None)], "link",
                        "outside the target directory; " + by_name),
        "symlink_abs": ([(_link("link", str(outside)), None)], "link",
                        "is a link to the absolute path"),
        "hardlink_out": ([(_link("hard", "../../outside/x", hard=True), None)], "hard",
                         "outside the target directory; " + by_name),
        "device": ([(_device("dev"), None)], "dev", "is a device or FIFO; " + by_name),
        # Passes every check by name; only resolving 'a' on disk shows that
        # 'a/b' is the parent of the target directory.
        "symlink_chain": ([(_link("a", "."), None), (_link("a/b", ".."), None),
                           (_file("a/b/evil"), b"evil")], "a/b",
                          "resolves outside the target directory; the members extracted "
                          "before it were removed"),
    }


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    return info


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink_out", "symlink_abs",
                                  "hardlink_out", "device", "symlink_chain"])
def test_hostile_tar_is_refused_and_writes_nothing(server, tmp_path, case):
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    members, bad_name, how = _hostile_tars(outside)[case]
    url = server.serve("/evil.tgz", _tar_bytes(members))
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"member {bad_name!r} ") + ".*"
                       + re.escape(how)):
        get_file("evil.tgz", url, cache_dir=str(cache), extract=True)
    assert _files(tmp_path) - before <= {"cache", "cache/datasets",
                                         "cache/datasets/evil.tgz"}
    assert _files(cache / "datasets") == {"evil.tgz"}
    assert _files(outside) == set()


@pytest.mark.parametrize("name", ["../evil", "/abs_evil", "ok/../../evil", "..\\evil"])
def test_hostile_zip_is_refused_and_writes_nothing(server, tmp_path, name):
    cache = tmp_path / "cache"
    url = server.serve("/evil.zip", _zip_bytes([("ok.txt", b"ok"), (name, b"evil")]))
    with pytest.raises(ValueError, match=re.escape(f"member {name!r}") + ".*"
                       + re.escape("nothing was extracted")):
        get_file("evil.zip", url, cache_dir=str(cache), extract=True)
    assert _files(tmp_path) == {"cache", "cache/datasets", "cache/datasets/evil.zip"}


def test_failed_extraction_removes_what_it_wrote(server, cache):
    data = _tar_bytes([(_file("one.txt"), b"one"), (_file("dir/two.bin"), bytes(20000))],
                      "w")
    url = server.serve("/cut.tar", data[:512 * 4 + 5000])  # cut inside two.bin
    with pytest.raises(tarfile.ReadError):
        get_file("cut.tar", url, cache_dir=str(cache), extract=True)
    assert _files(cache / "datasets") == {"cut.tar"}


# ---------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize("kwargs,error,match", [
    ({"fname": ""}, ValueError, "`fname` must be a non-empty"),
    ({"fname": None}, TypeError, "`fname` must be a str or os.PathLike, got NoneType"),
    ({"fname": b"x"}, TypeError, "`fname` must be a str or os.PathLike, got bytes"),
    ({"fname": "sub/"}, ValueError, "`fname` must name a file, got 'sub/'"),
    ({"fname": ".."}, ValueError, "`fname` must name a file"),
    ({"origin": ""}, ValueError, "`origin` must be a non-empty URL"),
    ({"origin": 3}, TypeError, "`origin` must be a URL string, got int"),
    ({"untar": "yes"}, TypeError, "`untar` must be True or False, got 'yes'"),
    ({"extract": None}, TypeError, "`extract` must be True or False, got None"),
    ({"hash_algorithm": "sha1"}, ValueError,
     r"`hash_algorithm` must be one of \('auto', 'md5', 'sha256'\), got 'sha1'"),
    ({"file_hash": "0" * 40}, ValueError, "64 \\(sha256\\) or 32 \\(md5\\) hex digits.*got 40"),
    ({"file_hash": "0" * 32, "hash_algorithm": "sha256"}, ValueError,
     "must have 64 hex digits for sha256, got 32"),
    ({"md5_hash": "0" * 64}, ValueError, "`md5_hash` must have 32 hex digits for md5"),
    ({"file_hash": "xyz"}, ValueError, "`file_hash` must be a hex digest, got 'xyz'"),
    ({"file_hash": 123}, TypeError, "`file_hash` must be a hex digest string, got int"),
    ({"archive_format": "rar"}, ValueError,
     r"`archive_format` must be 'auto', 'tar', 'zip', None or a list.*got 'rar'"),
    ({"archive_format": ["tar", "7z"]}, ValueError, r"got \['tar', '7z'\]"),
    ({"archive_format": 1}, TypeError, "`archive_format` must be .*got int"),
    ({"cache_subdir": None}, TypeError, "`cache_subdir` must be a str or os.PathLike"),
    ({"cache_dir": 5}, TypeError, "`cache_dir` must be a str or os.PathLike, got int"),
])
def test_bad_arguments_are_named(server, cache, kwargs, error, match):
    arguments = {"fname": "data.bin", "origin": server.url("/data.bin"),
                 "cache_dir": str(cache)}
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        get_file(**arguments)
    assert server.hits["/data.bin"] == 0


def test_numpy_bools_are_accepted(server, cache):
    url = server.serve("/data.bin", PAYLOAD)
    assert os.path.isfile(get_file("data.bin", url, cache_dir=str(cache),
                                   untar=np.False_, extract=np.bool_(False)))
