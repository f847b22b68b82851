"""colsplade.testing.ForwardingProxy against a local stand-in for a node (no engine needed)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import pytest

from colsplade.testing import ForwardingProxy


class _Node:
    """An HTTP server that answers every request with what it received, like a tiny engine."""

    def __init__(self, name: str) -> None:
        node = self
        self.name = name
        self.seen: list[tuple[str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                node.seen.append((self.command, self.path))
                status = 404 if self.path.startswith("/missing") else 200
                data = json.dumps(
                    {"node": node.name, "method": self.command, "path": self.path, "body": body,
                     "header": self.headers.get("x-test")}
                ).encode()  # fmt: skip
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("x-elastic-product", "Elasticsearch")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def node() -> Iterator[_Node]:
    n = _Node("a")
    yield n
    n.close()


def _call(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict, dict]:
    request = Request(
        url, data=body, method=method, headers={"x-test": "kept", "content-type": "application/json"}
    )
    try:
        with urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"{}")
    except HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


def test_forwards_requests_and_answers_as_they_are(node: _Node) -> None:
    with ForwardingProxy(node.url + "/") as proxy:
        assert proxy.target == node.url and proxy.url != node.url
        status, headers, body = _call(proxy.url + "/docs/_doc/1?refresh=true", "PUT", b'{"a": 1}')
        assert status == 200
        assert body == {"node": "a", "method": "PUT", "path": "/docs/_doc/1?refresh=true",
                        "body": '{"a": 1}', "header": "kept"}  # fmt: skip
        assert headers["x-elastic-product"] == "Elasticsearch"
        assert _call(proxy.url + "/missing")[0] == 404, "the node's own errors pass through"
        assert proxy.forwarded == 2 and proxy.refused == 0


def test_fails_the_first_bulk_requests(node: _Node) -> None:
    with ForwardingProxy(node.url, fail_first=2) as proxy:
        assert _call(proxy.url + "/_cluster/health")[0] == 200, "only bulk requests are failed"
        first = _call(proxy.url + "/_bulk", "POST", b"{}\n")
        assert first[0] == 429 and first[2]["error"]["type"] == "es_rejected_execution_exception"
        assert _call(proxy.url + "/docs/_bulk", "POST", b"{}\n")[0] == 429
        assert _call(proxy.url + "/_bulk", "POST", b"{}\n")[0] == 200
        assert proxy.refused == 2
        assert [p for _, p in node.seen] == ["/_cluster/health", "/_bulk"]
        proxy.fail_next(1)
        assert _call(proxy.url + "/_bulk", "POST", b"{}\n")[0] == 429


def test_fail_path_and_status_are_settable(node: _Node) -> None:
    with ForwardingProxy(node.url, fail_first=1, fail_path="", fail_status=503) as proxy:
        status, _, body = _call(proxy.url + "/")
        assert status == 503 and body["status"] == 503
        assert _call(proxy.url + "/")[0] == 200
    with pytest.raises(ValueError):
        ForwardingProxy(node.url, fail_first=-1)


def test_follows_the_target_and_drops_connections_while_it_is_away(node: _Node) -> None:
    other = _Node("b")
    with ForwardingProxy(node.url) as proxy:
        assert _call(proxy.url + "/")[2]["node"] == "a"
        node.close()
        with pytest.raises((URLError, http.client.HTTPException, ConnectionError)):
            _call(proxy.url + "/")
        assert proxy.dropped == 1
        proxy.target = other.url  # the node came back on another port
        assert _call(proxy.url + "/")[2]["node"] == "b"
    other.close()
    assert "refused=0" in repr(proxy)
