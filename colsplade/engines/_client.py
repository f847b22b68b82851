"""Elasticsearch and OpenSearch behind one small client protocol.

Everything above ``engines/`` talks to :class:`EngineClient`; the engine differences (client library,
error types, field types available) live here. Requests go through each official client's transport
(connection pooling, retries, timeouts), and every failure is translated into the colsplade exception
tree: :class:`EngineUnreachableError` when there was no answer, :class:`EngineRefusedError` when the engine
answered with an error status.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from colsplade._logging import quiet_logger
from colsplade._types import KNN_NATIVE_ATTRIBUTE, EngineName
from colsplade.config import Settings, redact_url
from colsplade.exceptions import (
    EngineAuthenticationError,
    EngineAuthorizationError,
    EngineCertificateError,
    EngineRefusedError,
    EngineUnreachableError,
    InvalidInputError,
)

logger = logging.getLogger(__name__)

__all__ = ["Capabilities", "EngineClient", "connect"]


@dataclass(frozen=True)
class Capabilities:
    """What a node can do for colsplade, probed from its version, modules and plugins."""

    engine: EngineName
    version: str
    rank_features: bool
    sparse_vector: bool
    painless: bool
    knn: bool
    modules: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()
    #: Whether the k-NN plugin can run its native engines (faiss, nmslib; binary vectors need faiss).
    #: False only where the node says so: colsplade's local OpenSearch, whose k-NN plugin from Maven
    #: Central lacks the native libraries (a faiss field would crash it), carries the node attribute
    #: ``colsplade_knn_native: false``; any other node is taken at its word that its plugin is whole.
    knn_native: bool = True

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split("-")[0].split(".")[:3] if p.isdigit())

    @property
    def splade_type(self) -> str:
        """The field type for SPLADE impacts on this node."""
        if self.rank_features:
            return "rank_features"
        if self.sparse_vector:
            return "sparse_vector"
        raise InvalidInputError(
            f"{self.engine} {self.version} has neither rank_features (mapper-extras module) nor sparse_vector; "
            "install the mapper-extras module or use Elasticsearch 8.11+"
        )

    @property
    def language_analyzers(self) -> bool:
        """Whether the node has the language analysers (``english``, ...): the ``analysis-common`` module.

        Full distributions (Docker images, cloud) have it; the Maven ``integ-test-zip`` of Elasticsearch
        does not, and colsplade's local OpenSearch node adds it.
        """
        return "analysis-common" in self.modules

    def resolve_analyzer(self, analyzer: str = "auto") -> str:
        """The text analyser an index made for BM25 gets: ``auto`` is ``english`` where the node has the
        language analysers (the analyser a team's English index normally has), else ``standard``; a named
        language analyser on a node without them is refused."""
        if analyzer == "auto":
            return "english" if self.language_analyzers else "standard"
        if analyzer not in _BUILTIN_ANALYZERS and not self.language_analyzers:
            raise InvalidInputError(
                f"{self.engine} {self.version} has no {analyzer!r} analyser (no analysis-common module); "
                f"use one of {', '.join(sorted(_BUILTIN_ANALYZERS))}, or a full distribution of the engine"
            )
        return analyzer

    @property
    def in_engine_rerank(self) -> bool:
        """Whether MaxSim can run inside the engine (a painless script over nested vectors)."""
        return self.painless

    @property
    def vectors_left_out_of_source(self) -> bool:
        """Whether new indices leave vector fields (``sparse_vector``, ``dense_vector``) out of the
        ``_source`` a search or get returns, unless asked (Elasticsearch 9.2+:
        ``index.mapping.exclude_source_vectors`` defaults to true; updates still keep them). colsplade
        asks for them where it reads stored impacts (``explain``, :meth:`EngineClient.get_document`)."""
        return self.engine == "elasticsearch" and self.version_tuple[:2] >= (9, 2)

    def source_with_vectors(self, source: Any = True) -> Any:
        """A search body's ``_source`` value that returns the vector fields too: ``source`` (True or a
        list of fields) as it is where vectors stay in ``_source``, else with ``exclude_vectors: false``.

        >>> caps = Capabilities("elasticsearch", "9.2.8", False, True, False, False)
        >>> caps.source_with_vectors(["splade", "title"])
        {'includes': ['splade', 'title'], 'exclude_vectors': False}
        >>> Capabilities("opensearch", "3.5.0", True, False, True, True).source_with_vectors(["splade"])
        ['splade']
        """
        if not self.vectors_left_out_of_source or source is False:
            return source
        if source is True:
            return {"exclude_vectors": False}
        if isinstance(source, Mapping):
            return {**source, "exclude_vectors": False}
        return {"includes": list(source), "exclude_vectors": False}


#: Analysers every node has, without the analysis-common module.
_BUILTIN_ANALYZERS = frozenset({"standard", "simple", "whitespace", "stop", "keyword"})


def _error_details(body: Any) -> tuple[str, str]:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            causes = error.get("root_cause") or []
            first = causes[0] if causes and isinstance(causes[0], Mapping) else error
            return str(first.get("type", error.get("type", "error"))), str(
                first.get("reason", error.get("reason"))
            )
        if isinstance(error, str):
            return "error", error
    return "error", str(body)[:500]


_HINTS = {
    "index_not_found_exception": "Create it first (colsplade index create) or check the index name",
    "resource_already_exists_exception": "Use another name, or `colsplade index create --existing-ok` to add fields",
    # The elasticsearch Python client asks for its own major's REST API (compatible-with=N); a server one
    # major older cannot answer that.
    "media_type_header_exception": "The elasticsearch Python client asks for the REST API of its own major "
    "version, and elasticsearch-py 9.x talks to Elasticsearch 9 only; for an Elasticsearch 8 cluster install "
    "'elasticsearch>=8.13,<9', which talks to Elasticsearch 8 and 9",
}

_REFUSALS: dict[int, type[EngineRefusedError]] = {403: EngineAuthorizationError}


def refusal(status: int, body: Any, *, sent: str = "") -> EngineRefusedError:
    """The typed error for an engine's error answer (401 and 403 get their own classes); ``sent``
    describes the credentials of a 401 (never the secret)."""
    error_type, reason = _error_details(body)
    if status == 403 and error_type == "cluster_block_exception":
        # A read-only block (disk watermark) is a 403 too, but no privilege would lift it.
        return EngineRefusedError(status, error_type, reason, body)
    if status == 401:
        return EngineAuthenticationError(status, error_type, reason, body, sent=sent)
    cls = _REFUSALS.get(status, EngineRefusedError)
    return cls(status, error_type, reason, body, _HINTS.get(error_type, ""))


def _certificate_problem(exc: BaseException) -> str | None:
    """The verification message of an SSL certificate error anywhere in ``exc``'s chain, else None."""
    import ssl

    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return str(current.verify_message or current.reason or current)
        if isinstance(current, BaseException):
            todo.extend([current.__cause__, current.__context__, *current.args])
            todo.extend(getattr(current, "errors", ()) or ())
            todo.append(getattr(current, "info", None))
            todo.append(getattr(current, "reason", None))
    text = str(exc)
    marker = "CERTIFICATE_VERIFY_FAILED"
    if marker in text:
        detail = text.split(marker, 1)[1].strip(" ]:)'\"")
        return detail.split("(_ssl")[0].strip(" ()") or "certificate verify failed"
    return None


class EngineClient:
    """One connection to an Elasticsearch or OpenSearch cluster.

    Create it with :func:`connect`. It is thread-safe (the official clients pool connections), reusable,
    and closed with :meth:`close` or a ``with`` block.
    """

    #: ``"elasticsearch"`` or ``"opensearch"`` (set by each adapter class).
    engine: ClassVar[EngineName]

    def __init__(self, settings: Settings, raw_client: Any) -> None:
        self.settings = settings
        self.client = raw_client
        self.url = ", ".join(settings.redacted_urls)
        self._capabilities: Capabilities | None = None

    # -- transport -------------------------------------------------------------------------------

    def _perform(self, method: str, path: str, body: Any, params: Mapping[str, Any] | None) -> Any:
        raise NotImplementedError

    def _translate(self, exc: Exception) -> Exception:
        raise NotImplementedError

    def request(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """Send one request; returns the decoded body, raises colsplade's engine errors."""
        return self._call(f"{method} {path}", self._perform, method, path, body, params)

    def _call(self, what: str, perform: Any, *args: Any) -> Any:
        """``perform(*args)`` with the official client's errors translated into colsplade's."""
        try:
            return perform(*args)
        except Exception as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            if isinstance(translated, EngineRefusedError) and translated.reason in ("", "None"):
                # A HEAD answer has no body: say at least what was refused.
                translated = self._refused(
                    translated.status,
                    {"error": {"type": translated.error_type, "reason": f"{what} refused"}},
                )
            raise translated from exc

    def _msearch(self, index: str, lines: list[dict[str, Any]]) -> Any:
        raise NotImplementedError

    def _refused(self, status: int, body: Any) -> EngineRefusedError:
        return refusal(status, body, sent=self._credentials_sent() if status == 401 else "")

    def _credentials_sent(self) -> str:
        """What a 401 is about, without the secret: the user name, or which other credential."""
        who = f"user {self.settings.username!r}" if self.settings.username else "no user"
        if self.settings.api_key is not None:
            who = "the API key"
        if self.settings.client_cert:
            who += " and the client certificate"
        return f"{who} to {self.url}"

    def _unreachable(self, exc: Exception) -> EngineUnreachableError:
        problem = _certificate_problem(exc)
        if problem is not None:
            return EngineCertificateError(self.url, problem)
        # The client messages may embed the URL with credentials; keep only the exception class and a
        # redacted summary.
        secret = self.settings.password or self.settings.api_key
        text = redact_url(str(exc)) if secret is None else type(exc).__name__
        return EngineUnreachableError(self.url, text)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cluster ---------------------------------------------------------------------------------

    def health(self, wait_for_status: str | None = None, timeout: str = "30s") -> dict[str, Any]:
        params = {"wait_for_status": wait_for_status, "timeout": timeout} if wait_for_status else None
        return self.request("GET", "/_cluster/health", params=params)

    def capabilities(self) -> Capabilities:
        """Probe (once) the node's version, modules and plugins."""
        if self._capabilities is None:
            nodes = self.request(
                "GET",
                "/_nodes/_local/plugins",
                params={
                    "filter_path": "nodes.*.version,nodes.*.modules.name,nodes.*.plugins.name,nodes.*.attributes"
                },
            ).get("nodes", {})
            node = next(iter(nodes.values()), {})
            version = str(node.get("version", "0.0.0"))
            modules = tuple(sorted(m["name"] for m in node.get("modules", [])))
            plugins = tuple(sorted(p["name"] for p in node.get("plugins", [])))
            major_minor = tuple(int(x) for x in version.split(".")[:2])
            is_es = self.engine == "elasticsearch"
            self._capabilities = Capabilities(
                engine=self.engine,
                version=version,
                rank_features="mapper-extras" in modules,
                sparse_vector=is_es and major_minor >= (8, 11),
                painless="lang-painless" in modules,
                knn=(is_es and major_minor >= (8, 11)) or "opensearch-knn" in plugins,
                modules=modules,
                plugins=plugins,
                knn_native=(node.get("attributes") or {}).get(KNN_NATIVE_ATTRIBUTE) != "false",
            )
        return self._capabilities

    # -- indices ---------------------------------------------------------------------------------

    @staticmethod
    def _index_path(index: str) -> str:
        if (
            not index
            or index.startswith(("_", "-", "+"))
            or index != index.lower()
            or any(c in index for c in ' "*\\<|,>/?#')
        ):
            raise InvalidInputError(
                f'invalid index name {index!r}: lower case, no spaces or any of \\/*?"<>|,#, '
                "and not starting with _, - or +"
            )
        return "/" + quote(index, safe="")

    def index_exists(self, index: str) -> bool:
        try:
            return bool(self.request("HEAD", self._index_path(index)))
        except EngineRefusedError as exc:
            if exc.status == 404:
                return False
            raise

    def create_index(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``index`` with ``body``; on an engine that leaves vector fields out of ``_source`` itself,
        the body's ``_source`` exclusions of vector fields are left to it (see
        :func:`colsplade.mappings.without_vector_source_excludes`)."""
        if self.capabilities().vectors_left_out_of_source:
            from colsplade.mappings import without_vector_source_excludes

            body = without_vector_source_excludes(body)
        return self.request("PUT", self._index_path(index), body=dict(body))

    def delete_index(self, index: str) -> dict[str, Any]:
        return self.request("DELETE", self._index_path(index))

    def get_mapping(self, index: str) -> dict[str, Any]:
        """The mapping of ``index`` (``{"properties": ..., "_meta": ...}``); an alias resolves to its index."""
        answer = self.request("GET", self._index_path(index) + "/_mapping")
        return next(iter(answer.values()), {}).get("mappings", {})

    def put_mapping(self, index: str, mapping: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PUT", self._index_path(index) + "/_mapping", body=dict(mapping))

    def get_settings(self, index: str) -> dict[str, Any]:
        answer = self.request("GET", self._index_path(index) + "/_settings", params={"flat_settings": "true"})
        return next(iter(answer.values()), {}).get("settings", {})

    def refresh(self, index: str) -> None:
        self.request("POST", self._index_path(index) + "/_refresh")

    def flush(self, index: str) -> None:
        self.request("POST", self._index_path(index) + "/_flush")

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        body = {"query": dict(query)} if query else None
        return int(self.request("POST", self._index_path(index) + "/_count", body=body)["count"])

    def stats(self, index: str) -> dict[str, Any]:
        return self.request("GET", self._index_path(index) + "/_stats/docs,store")

    # -- documents -------------------------------------------------------------------------------

    def index_document(
        self, index: str, doc_id: str, document: Mapping[str, Any], refresh: bool = False
    ) -> dict[str, Any]:
        params = {"refresh": "true"} if refresh else None
        return self.request(
            "PUT",
            f"{self._index_path(index)}/_doc/{quote(str(doc_id), safe='')}",
            body=dict(document),
            params=params,
        )

    def get_document(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """The stored document (``_source`` with its vector fields, also where the engine leaves them out
        by default), or None when there is none."""
        params = (
            {"_source_exclude_vectors": "false"} if self.capabilities().vectors_left_out_of_source else None
        )
        try:
            return self.request(
                "GET", f"{self._index_path(index)}/_doc/{quote(str(doc_id), safe='')}", params=params
            )
        except EngineRefusedError as exc:
            if exc.status == 404:
                return None
            raise

    def search(
        self, index: str, body: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.request("POST", self._index_path(index) + "/_search", body=dict(body), params=params)

    def msearch(self, index: str, bodies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Several searches of ``index`` in one request (``_msearch``, sent by the official client's
        helper): one answer per body, in order, each with its own ``hits`` and ``_shards``.

        A sub-search the engine refused raises the typed error a lone search would (its status and
        reason, :class:`~colsplade.exceptions.EngineRefusedError` and subclasses), never a missing key;
        a partial answer comes back as it is (its ``_shards`` says so).
        """
        self._index_path(index)  # the same name check as every other request
        if not bodies:
            return []
        lines: list[dict[str, Any]] = []
        for body in bodies:
            lines.extend(({}, dict(body)))
        answer = self._call(f"POST /{index}/_msearch", self._msearch, index, lines)
        responses = answer.get("responses") if isinstance(answer, Mapping) else None
        if not isinstance(responses, list) or len(responses) != len(bodies):
            raise EngineRefusedError(
                500,
                "msearch_answer",
                f"_msearch answered {len(responses) if isinstance(responses, list) else 'no'} responses "
                f"for {len(bodies)} searches",
                answer,
            )
        for response in responses:
            if not isinstance(response, Mapping) or "error" in response:
                status = response.get("status", 500) if isinstance(response, Mapping) else 500
                raise self._refused(int(status), response)
        return responses


class ElasticsearchClient(EngineClient):
    engine = "elasticsearch"

    def _perform(self, method: str, path: str, body: Any, params: Mapping[str, Any] | None) -> Any:
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        response = self.client.perform_request(method, path, params=params, headers=headers, body=body)
        if method == "HEAD":
            return 200 <= response.meta.status < 300
        return response.body

    def _msearch(self, index: str, lines: list[dict[str, Any]]) -> Any:
        return self.client.msearch(index=index, searches=lines).body

    def _translate(self, exc: Exception) -> Exception:
        import elastic_transport
        import elasticsearch

        if isinstance(exc, elasticsearch.ApiError):
            return self._refused(exc.meta.status, exc.body)
        if isinstance(exc, elastic_transport.TransportError | elasticsearch.exceptions.ConnectionError):
            return self._unreachable(exc)
        return exc


class OpenSearchClient(EngineClient):
    engine = "opensearch"

    def _perform(self, method: str, path: str, body: Any, params: Mapping[str, Any] | None) -> Any:
        if params:
            # opensearch-py reads some query parameters ("timeout", "ignore", ...) as its own options;
            # put them in the URL so the engine gets them all.
            path = f"{path}?{urlencode({k: v for k, v in params.items() if v is not None})}"
        return self.client.transport.perform_request(method, path, body=body)

    def _msearch(self, index: str, lines: list[dict[str, Any]]) -> Any:
        return self.client.msearch(body=lines, index=index)

    def _translate(self, exc: Exception) -> Exception:
        import opensearchpy

        if isinstance(exc, opensearchpy.ConnectionError | opensearchpy.ConnectionTimeout):
            return self._unreachable(exc)
        if isinstance(exc, opensearchpy.TransportError) and isinstance(exc.status_code, int):
            body = exc.info if isinstance(exc.info, Mapping) else {"error": str(exc.error)}
            return self._refused(exc.status_code, body)
        return exc


def _client_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "request_timeout": settings.request_timeout,
        "max_retries": settings.max_retries,
        "retry_on_timeout": True,
    }
    for name in ("ca_certs", "client_cert", "client_key"):
        path = getattr(settings, name)
        if path:
            if not os.path.isfile(path):
                raise InvalidInputError(
                    f"{name} file {path!r} does not exist or is not a file; give the PEM file's path "
                    f"(COLSPLADE_{name.upper()})"
                )
            kwargs[name] = path
    if not settings.verify_certs:
        kwargs["verify_certs"] = False
        kwargs["ssl_show_warn"] = False
    return kwargs


def _elasticsearch(settings: Settings) -> ElasticsearchClient:
    try:
        import elasticsearch
    except ImportError as exc:  # pragma: no cover - core dependency
        raise ImportError("the elasticsearch client is missing: pip install colsplade") from exc
    kwargs = _client_kwargs(settings)
    if settings.api_key is not None:
        kwargs["api_key"] = settings.api_key.reveal()
    elif settings.username is not None:
        password = settings.password.reveal() if settings.password else ""
        kwargs["basic_auth"] = (settings.username, password)
    from elasticsearch.serializer import OrjsonSerializer

    # orjson parses a rerank window's hits (blobs, impacts, text: ~1 MB) 4-5x faster than the json module
    kwargs["serializer"] = OrjsonSerializer()
    return ElasticsearchClient(settings, elasticsearch.Elasticsearch(list(settings.urls), **kwargs))


def _opensearch(settings: Settings) -> OpenSearchClient:
    import opensearchpy

    kwargs = _client_kwargs(settings)
    kwargs["timeout"] = kwargs.pop("request_timeout")
    if settings.api_key is not None:
        kwargs["headers"] = {"Authorization": f"ApiKey {settings.api_key.reveal()}"}
    elif settings.username is not None:
        kwargs["http_auth"] = (settings.username, settings.password.reveal() if settings.password else "")
    if any(u.startswith("https") for u in settings.urls):
        kwargs["use_ssl"] = True
    kwargs["serializer"] = _orjson_serializer()
    return OpenSearchClient(settings, opensearchpy.OpenSearch(list(settings.urls), **kwargs))


def _orjson_serializer() -> Any:
    """opensearch-py's JSON serializer with orjson doing the work (same output, several times faster)."""
    import orjson
    from opensearchpy.serializer import JSONSerializer

    class OrjsonSerializer(JSONSerializer):  # type: ignore[misc]
        def loads(self, s: Any) -> Any:
            return orjson.loads(s)

        def dumps(self, data: Any) -> Any:
            if isinstance(data, str | bytes):
                return data
            options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
            return orjson.dumps(data, default=self.default, option=options).decode("utf-8")

    return OrjsonSerializer()


def _detect(settings: Settings) -> EngineName:
    """Ask the cluster which engine it is: OpenSearch says so in ``version.distribution``."""
    # no retries of a refused probe, but with several node URLs one that is down must not decide it
    probe = _opensearch(settings.replace(max_retries=len(settings.urls) - 1))
    try:
        # The client logs every non-2xx answer as a warning; a refused probe is an expected answer here.
        with quiet_logger("opensearch", below=logging.ERROR):
            answer = probe.request("GET", "/")
    except EngineAuthenticationError:
        raise
    except EngineAuthorizationError as exc:
        raise exc.with_hint(
            "colsplade asks GET / which engine it talks to: grant the user cluster:monitor/main, or name the "
            "engine with --engine / COLSPLADE_ENGINE"
        ) from exc
    except EngineRefusedError:
        # Minimal Elasticsearch builds do not serve GET /; OpenSearch always does.
        return "elasticsearch"
    finally:
        probe.close()
    distribution = (answer.get("version") or {}).get("distribution")
    return "opensearch" if distribution == "opensearch" else "elasticsearch"


def connect(
    settings: Settings | None = None, *, url: str | None = None, engine: EngineName | None = None
) -> EngineClient:
    """Connect to the engine ``settings`` names (or ``url``); which engine it is is detected when not given.

    Raises:
        EngineUnreachableError: nothing answers at the URL.
        InvalidInputError: no URL given (use :func:`colsplade.engines.resolve_settings` to fall back to the
            local node).
    """
    settings = (settings or Settings()).replace(urls=url, engine=engine)
    if not settings.urls:
        raise InvalidInputError(
            "no engine URL: pass --url / set COLSPLADE_URL, or start a local node with `colsplade engine up`"
        )
    engine = settings.engine or _detect(settings)
    client = _elasticsearch(settings) if engine == "elasticsearch" else _opensearch(settings)
    logger.debug("connected to %s at %s", engine, client.url)
    return client
