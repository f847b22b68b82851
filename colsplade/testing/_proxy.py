"""A real HTTP proxy in front of an engine node, for tests of retries and outages (stdlib only).

Like httpx's ``MockTransport`` it lets a test put failures between colsplade and the engine, but over
real sockets, so the official clients' own transports, pools and retries are exercised too::

    from colsplade.engines import connect
    from colsplade.testing import ForwardingProxy

    with ForwardingProxy(node_url, fail_first=3) as proxy:      # the first 3 bulk requests get a 429
        client = connect(url=proxy.url, engine="elasticsearch")
        ...
    assert proxy.refused == 3

``proxy.target`` may be reassigned while the proxy runs (a node restarted on another port); while the
target does not answer, the proxy drops each connection, as an absent node would.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import HTTPError
from urllib.request import Request, urlopen

__all__ = ["ForwardingProxy"]

#: Headers that describe one connection (RFC 9110 section 7.6.1) or that the proxy sets itself.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "date",
        "server",
    }
)


class ForwardingProxy:
    """Forward every request to ``target``; answer the first ``fail_first`` matching ones with an error.

    Args:
        target: base URL of the node (``http://127.0.0.1:9200``). The attribute may be changed later.
        fail_first: how many requests whose path contains ``fail_path`` are answered with ``fail_status``
            (and an engine-shaped JSON error body) instead of being forwarded.
        fail_path: the path substring that selects the requests to fail (default ``_bulk``); ``""`` fails
            the first requests whatever their path.
        fail_status: the HTTP status of the failures (default 429, the engine's "too many requests").
        timeout: seconds to wait for the target's answer.

    Attributes: ``url`` (where clients connect), ``refused`` (requests answered with the failure),
    ``forwarded`` (requests the target answered), ``dropped`` (connections dropped because the target
    did not answer). Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        target: str,
        *,
        fail_first: int = 0,
        fail_path: str = "_bulk",
        fail_status: int = 429,
        host: str = "127.0.0.1",
        timeout: float = 60.0,
    ) -> None:
        if fail_first < 0:
            raise ValueError(f"fail_first must not be negative, not {fail_first}")
        self.target = target
        self.fail_path = fail_path
        self.fail_status = fail_status
        self.timeout = timeout
        self.refused = 0
        self.forwarded = 0
        self.dropped = 0
        self._remaining = fail_first
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), _handler_for(self))
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ForwardingProxy", daemon=True
        )
        self._thread.start()

    @property
    def target(self) -> str:
        """The URL requests are forwarded to (without a trailing slash)."""
        return self._target

    @target.setter
    def target(self, url: str) -> None:
        self._target = url.rstrip("/")

    def fail_next(self, n: int) -> None:
        """Answer the next ``n`` matching requests with the failure (added to any still pending)."""
        with self._lock:
            self._remaining += n

    def _should_fail(self, path: str) -> bool:
        if self.fail_path not in path:
            return False
        with self._lock:
            if self._remaining <= 0:
                return False
            self._remaining -= 1
            self.refused += 1
            return True

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ForwardingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ForwardingProxy({self.url} -> {self.target}, refused={self.refused})"


def _failure_body(status: int) -> bytes:
    error_type = "es_rejected_execution_exception" if status == 429 else "proxy_injected_failure"
    reason = "rejected by colsplade.testing.ForwardingProxy"
    return json.dumps({"error": {"type": error_type, "reason": reason}, "status": status}).encode()


def _handler_for(proxy: ForwardingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so a closed proxy leaves no pooled connection serving.
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in _NOT_FORWARDED:
                    self.send_header(key, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _forward(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            if proxy._should_fail(self.path):
                self._answer(
                    proxy.fail_status,
                    [("content-type", "application/json")],
                    _failure_body(proxy.fail_status),
                )
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
            request = Request(proxy.target + self.path, data=body, headers=headers, method=self.command)
            try:
                with urlopen(request, timeout=proxy.timeout) as answer:
                    status, data, answer_headers = answer.status, answer.read(), answer.headers
            except HTTPError as exc:  # the engine's own error answer: passed on as it is
                status, data, answer_headers = exc.code, exc.read(), exc.headers
            except OSError:
                # The target is away: drop the connection, as the node itself would.
                proxy._count("dropped")
                self.close_connection = True
                self.connection.close()
                return
            proxy._count("forwarded")
            self._answer(status, list(answer_headers.items()), data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

    return Handler
