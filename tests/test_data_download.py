"""No SOURCE: the official archive is downloaded into the cache, checked by MD5, and reused."""

import hashlib
import http.server
import threading
import time

import pytest

import data
from data import download
from data.prepare import main
from tests.fixtures_data import synthetic, tar_folder, write_official


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server for one file, counting its downloads."""
    archive = tar_folder(write_official(tmp_path / "src", synthetic()), tmp_path / "served.tar.gz")
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            payload = archive.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/cifar-10-python.tar.gz", archive, hits
    httpd.shutdown()


def test_download_checks_md5_then_prepares_and_reuses_the_cache(server, tmp_path, monkeypatch):
    url, archive, hits = server
    monkeypatch.setattr(download, "URL", url)
    monkeypatch.setattr(download, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    manifest = data.prepare(None, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert manifest["source"]["kind"] == "official" and manifest["splits"] == {"train": 20, "test": 10}
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["cifar-10-python.tar.gz"]
    data.prepare(None, tmp_path / "again", cache_dir=tmp_path / "cache")
    assert len(hits) == 1


def test_wrong_md5_is_refused_and_not_cached(server, tmp_path, monkeypatch):
    url, _, _ = server
    monkeypatch.setattr(download, "URL", url)
    with pytest.raises(data.DataError, match=r"downloaded file has MD5 \w+, expected c58f30108f718f92721af3b95e74349a"):
        data.prepare(None, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == [] and not (tmp_path / "out").exists()


def test_no_network_fails_fast_and_says_how_to_pass_a_source(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(download, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # nothing listens there
    start = time.perf_counter()
    assert main(["--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert err.startswith("error: http://127.0.0.1:9/cifar-10-python.tar.gz: download failed (")
    assert "pass a local copy as SOURCE: python -m data.prepare path/to/cifar-10-python.tar.gz" in err
    assert err.count("\n") == 1 and list((tmp_path / "cache").iterdir()) == []


def test_a_resolver_that_never_answers_does_not_hang(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "CONNECT_TIMEOUT_S", 0.5)
    monkeypatch.setattr(download.socket, "getaddrinfo", lambda *args: time.sleep(30))
    start = time.perf_counter()
    with pytest.raises(data.DataError, match=r"download failed \(cannot resolve www.cs.toronto.edu\); without a"):
        data.prepare(None, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert time.perf_counter() - start < 5
