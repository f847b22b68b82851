"""Plain JSON over HTTP(S) to a local service before any engine client exists (health probes, the
security bootstrap, the file realm's checks as a user); stdlib only."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

__all__ = ["json_request", "probe_json"]


def json_request(
    url: str,
    context: ssl.SSLContext | None,
    method: str = "GET",
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """``(HTTP status, decoded answer)`` of one JSON request (status 0: no answer; an error status comes
    with the start of its body as text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")[:500]
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return 0, str(exc)


def probe_json(
    url: str,
    timeout: float = 2.0,
    context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """The JSON object a ``GET url`` answers with 200, else None (not up yet, refused, not JSON)."""
    status, answer = json_request(url, context, "GET", headers=headers, timeout=timeout)
    return answer if status == 200 and isinstance(answer, dict) else None
