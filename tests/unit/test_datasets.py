"""colsplade.evaluation.download_dataset / resolve_dataset against a local HTTP server (no internet)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from colsplade.evaluation import download_dataset, load_beir, resolve_dataset
from colsplade.evaluation._download import BEIR_MD5
from colsplade.exceptions import InvalidInputError


def beir_zip(name: str = "tiny", extra: dict[str, bytes] | None = None) -> bytes:
    """A BEIR-format zip with a top folder ``name/``, as the public archives are laid out."""
    corpus = [{"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"} for i in range(3)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}/", "")
        zf.writestr(f"{name}/corpus.jsonl", "".join(json.dumps(d) + "\n" for d in corpus))
        zf.writestr(f"{name}/queries.jsonl", '{"_id": "q0", "text": "what is text 1"}\n')
        zf.writestr(f"{name}/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq0\td1\t1\n")
        for member, data in (extra or {}).items():
            zf.writestr(member, data)
    return buf.getvalue()


class _Server:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    thread.join(timeout=5)


def test_download_unpacks_verifies_and_is_idempotent(server, tmp_path):
    blob = beir_zip()
    server.files["/tiny.zip"] = blob
    sha = hashlib.sha256(blob).hexdigest()
    path = download_dataset(
        "tiny", cache_dir=tmp_path, url=server.url("/tiny.zip"), sha256=sha, progress=False
    )
    assert path == tmp_path / "tiny"
    assert (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()
    assert (path / "qrels" / "test.tsv").is_file()
    data = load_beir(path, "test")
    assert len(data.corpus) == 3 and data.qrels == {"q0": {"d1": 1}}
    assert not list(tmp_path.glob(".tiny-*")), "the work directory is cleaned up"
    assert server.hits["/tiny.zip"] == 1
    again = download_dataset("tiny", cache_dir=tmp_path, url=server.url("/tiny.zip"), sha256=sha)
    assert again == path and server.hits["/tiny.zip"] == 1  # no second download
    # and the name now resolves, also where loaders take a directory
    assert resolve_dataset("tiny", cache_dir=tmp_path) == path


def test_cache_root_from_environment(server, tmp_path, monkeypatch):
    server.files["/tiny.zip"] = blob = beir_zip()
    monkeypatch.setenv("COLSPLADE_DATASETS_DIR", str(tmp_path / "cache"))
    path = download_dataset(
        "tiny", url=server.url("/tiny.zip"), sha256=hashlib.sha256(blob).hexdigest(), progress=False
    )
    assert path == tmp_path / "cache" / "tiny"
    monkeypatch.chdir(tmp_path)  # no ./tiny here: the name goes to the cache
    assert resolve_dataset("tiny") == path
    assert load_beir("tiny", "test").path == path


def test_checksum_mismatch_is_refused(server, tmp_path):
    server.files["/tiny.zip"] = beir_zip()
    with pytest.raises(InvalidInputError, match=r"checksum mismatch.*sha256"):
        download_dataset(
            "tiny", cache_dir=tmp_path, url=server.url("/tiny.zip"), sha256="0" * 64, progress=False
        )
    assert not (tmp_path / "tiny").exists() and not list(tmp_path.iterdir())


def test_published_md5_is_checked_for_known_names(server, tmp_path, monkeypatch):
    """A known BEIR name from its own URL is checked against the published md5 (here: a fake archive)."""
    from colsplade.evaluation import _download

    server.files["/scifact.zip"] = beir_zip("scifact")
    monkeypatch.setattr(_download, "BEIR_URL", server.url("/{name}.zip"))
    with pytest.raises(InvalidInputError, match=f"md5.*{BEIR_MD5['scifact']}"):
        download_dataset("scifact", cache_dir=tmp_path, progress=False)
    assert not (tmp_path / "scifact").exists()


def test_path_traversal_member_is_refused(server, tmp_path):
    blob = beir_zip(extra={"tiny/../../evil.txt": b"x"})
    server.files["/evil.zip"] = blob
    cache = tmp_path / "cache"
    with pytest.raises(InvalidInputError, match="outside"):
        download_dataset(
            "tiny", cache_dir=cache, url=server.url("/evil.zip"), sha256=hashlib.sha256(blob).hexdigest()
        )
    assert not (tmp_path / "evil.txt").exists() and not (cache / "evil.txt").exists()
    assert not (cache / "tiny").exists()


def test_absolute_member_is_refused(server, tmp_path):
    blob = beir_zip(extra={"/tmp/evil.txt": b"x"})
    server.files["/abs.zip"] = blob
    with pytest.raises(InvalidInputError, match="outside"):
        download_dataset("tiny", cache_dir=tmp_path, url=server.url("/abs.zip"), progress=False)


def test_missing_archive_names_the_url(server, tmp_path):
    with pytest.raises(InvalidInputError, match=r"HTTP 404"):
        download_dataset("nothere", cache_dir=tmp_path, url=server.url("/nothere.zip"), progress=False)


def test_bad_names_are_refused(tmp_path):
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(InvalidInputError, match="not a dataset name"):
            download_dataset(bad, cache_dir=tmp_path)


def test_resolve_dataset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    assert resolve_dataset(tmp_path / "mine") == tmp_path / "mine"  # an existing directory, as is
    assert resolve_dataset("mine") == Path("mine")
    with pytest.raises(InvalidInputError, match=r"colsplade datasets download scifact$"):
        resolve_dataset("scifact", cache_dir=tmp_path / "empty")
    with pytest.raises(InvalidInputError, match=r"colsplade datasets download no-such-set --url"):
        resolve_dataset("no-such-set", cache_dir=tmp_path / "empty")
    with pytest.raises(InvalidInputError, match="does not exist"):
        resolve_dataset(tmp_path / "nope" / "deeper")
