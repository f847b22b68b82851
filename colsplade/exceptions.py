"""The one exception tree of colsplade.

Every error colsplade raises on purpose derives from :class:`ColspladeError`, so callers can catch
the whole family at once, or one branch:

``ColspladeError``
    ``EngineError``
        ``EngineUnreachableError`` -- no answer: connection refused, DNS, TLS handshake, timeout.
            ``EngineCertificateError`` -- TLS verification failed; the message names the certificate problem.
        ``EngineRefusedError`` -- the engine answered with an error status; ``status`` and ``body`` hold it.
            ``EngineAuthenticationError`` -- HTTP 401: wrong, expired or missing credentials.
            ``EngineAuthorizationError`` -- HTTP 403: the user lacks a privilege (the engine names it).
        ``EngineStartError`` -- a local node could not be fetched or started; ``log_file`` names its log.
        ``PartialResultError`` -- a strict search that the engine answered from only some shards.
    ``InvalidInputError`` (also a :class:`ValueError`) -- bad arguments, documents, queries or files.
        ``ModelDirectoryError`` -- a model directory that is missing a file or holds the wrong kind.
        ``MappingConflictError`` -- an existing index maps one of colsplade's fields another way.
        ``CorruptBlobError`` -- a token blob that is truncated, altered, or of another codec layout.
    ``ModelVersionMismatchError`` -- an index encoded by another model version than the one in use.
        ``CodecMismatchError`` -- an index whose token codes were written with another codec.
        ``DocCapMismatchError`` -- an index whose documents keep another number of SPLADE terms.
    ``ParityError`` -- an exported ONNX graph disagrees with the torch model; ``report`` has the figures.
    ``StreamError`` -- a stream client (Kafka) failed for good; nothing past the committed offsets is lost.
    ``MissingExtraError`` (also an :class:`ImportError`) -- an optional dependency is not installed.
    ``DatasetDownloadError`` (also an :class:`OSError`) -- a dataset archive could not be fetched or written.

Messages say what to do next. They never contain secrets: URLs are passed through
:func:`colsplade.config.redact_url` before they reach a message.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CodecMismatchError",
    "ColspladeError",
    "CorruptBlobError",
    "DatasetDownloadError",
    "DocCapMismatchError",
    "EngineAuthenticationError",
    "EngineAuthorizationError",
    "EngineCertificateError",
    "EngineError",
    "EngineRefusedError",
    "EngineStartError",
    "EngineUnreachableError",
    "InvalidInputError",
    "MappingConflictError",
    "MissingExtraError",
    "ModelDirectoryError",
    "ModelVersionMismatchError",
    "ParityError",
    "PartialResultError",
    "StreamError",
]


class ColspladeError(Exception):
    """Base class of every error colsplade raises on purpose."""


class EngineError(ColspladeError):
    """Something went wrong between colsplade and an Elasticsearch / OpenSearch node."""


class EngineUnreachableError(EngineError):
    """The engine did not answer (connection refused, name not resolved, TLS failure, timeout).

    >>> str(EngineUnreachableError("http://127.0.0.1:9", "connection refused"))
    'cannot reach the engine at http://127.0.0.1:9: connection refused. Check the URL, that the node runs (colsplade engine status), and network/TLS settings.'
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"cannot reach the engine at {url}: {reason}. Check the URL, that the node runs "
            "(colsplade engine status), and network/TLS settings."
        )


class EngineRefusedError(EngineError):
    """The engine answered, with an error status.

    ``status`` is the HTTP status, ``error_type`` the engine's error type (``"index_not_found_exception"``, ...)
    and ``body`` the decoded error body, kept for callers that need the details.
    """

    def __init__(self, status: int, error_type: str, reason: str, body: Any = None, hint: str = "") -> None:
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.body = body
        message = f"the engine refused the request (HTTP {status}, {error_type}): {reason}"
        if hint:
            message += f". {hint}"
        super().__init__(message)


class EngineCertificateError(EngineUnreachableError):
    """The TLS handshake failed on the server's certificate (unknown CA, expired, wrong host name).

    >>> str(EngineCertificateError("https://127.0.0.1:9200", "self-signed certificate in certificate chain"))
    "TLS certificate verification failed for https://127.0.0.1:9200: self-signed certificate in certificate chain. Give the CA that signed the cluster's certificate with --ca-certs / COLSPLADE_CA_CERTS (verification stays on)."
    """

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.reason = problem
        self.problem = problem
        EngineError.__init__(
            self,
            f"TLS certificate verification failed for {url}: {problem}. Give the CA that signed the "
            "cluster's certificate with --ca-certs / COLSPLADE_CA_CERTS (verification stays on).",
        )


class EngineAuthenticationError(EngineRefusedError):
    """HTTP 401: the engine did not accept the credentials (wrong, expired, or none given).

    ``sent`` says what was sent, never the secret itself (``"user 'docs-ingest' to https://..."``).
    """

    def __init__(
        self, status: int, error_type: str, reason: str, body: Any = None, hint: str = "", sent: str = ""
    ) -> None:
        super().__init__(status, error_type, reason, body, hint)
        self.sent = sent
        self.args = (
            f"authentication failed (HTTP {status}): {reason}. "
            + (
                hint
                or "Check the credentials: --username with COLSPLADE_PASSWORD, or --api-key / "
                "COLSPLADE_API_KEY"
            )
            + (f" (sent {sent})" if sent else ""),
        )


class EngineAuthorizationError(EngineRefusedError):
    """HTTP 403: the user is known but lacks a privilege; ``reason`` names the action the engine refused."""

    def __init__(self, status: int, error_type: str, reason: str, body: Any = None, hint: str = "") -> None:
        super().__init__(status, error_type, reason, body, hint)
        self.args = (
            f"not authorized (HTTP {status}): {reason}. "
            + (
                hint
                or "Grant the user the role this job needs (colsplade_ingest to write, colsplade_search "
                "to read: README, 'Secured clusters')"
            ),
        )

    def with_hint(self, hint: str) -> EngineAuthorizationError:
        """The same refusal, with ``hint`` saying what the job needed the action for.

        >>> str(EngineAuthorizationError(403, "security_exception", "no permissions for [x]").with_hint("do y"))
        'not authorized (HTTP 403): no permissions for [x]. do y'
        """
        return EngineAuthorizationError(self.status, self.error_type, self.reason, self.body, hint)


class EngineStartError(EngineError):
    """A local engine node could not be fetched, installed or started."""

    def __init__(self, message: str, log_file: str | None = None) -> None:
        self.log_file = log_file
        if log_file:
            message += f" (log: {log_file})"
        super().__init__(message)


class PartialResultError(EngineError):
    """A strict search (``SearchClient(..., strict=True)``) that the engine answered from only some shards.

    Without ``strict`` the same answer comes back as a result flagged ``partial``. ``shards`` holds the
    engine's shard counts (:class:`colsplade.query.ShardStats`): total, successful, skipped, failed, and
    each failed shard's reason.

    >>> str(PartialResultError("docs", 3, 2, ["docs[1]: no_shard_available_action_exception"]))
    "the engine answered the search of 'docs' from 2 of 3 shards (docs[1]: no_shard_available_action_exception); the hits may miss documents. Retry once the cluster is healthy again, or pass strict=False to accept partial results (flagged)."
    """

    def __init__(
        self, index: str, total: int, successful: int, failures: Any = (), shards: Any = None
    ) -> None:
        self.index = index
        self.total = total
        self.successful = successful
        self.failures = list(failures)
        self.shards = shards
        why = f" ({'; '.join(self.failures[:3])})" if self.failures else ""
        super().__init__(
            f"the engine answered the search of {index!r} from {successful} of {total} shards{why}; the hits "
            "may miss documents. Retry once the cluster is healthy again, or pass strict=False to accept "
            "partial results (flagged)."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.index, self.total, self.successful, self.failures, self.shards)


class InvalidInputError(ColspladeError, ValueError):
    """Bad input: arguments, documents, queries, files. Also a ValueError."""


class ModelDirectoryError(InvalidInputError):
    """A model directory is missing a file, is unreadable, or holds another kind of model."""


class MappingConflictError(InvalidInputError):
    """An existing index already maps one of colsplade's fields differently (a field-type conflict).

    Raised before anything is written: an engine cannot change a field's type in place, so adding
    colsplade's fields to such an index is refused; the message names the field, both mappings, and how
    to choose other field names (``FieldSpec(splade_field=...)``) or a new index.
    """


class ModelVersionMismatchError(ColspladeError):
    """The index was encoded with another model (name or version) than the one in use."""

    def __init__(self, index: str, index_model: str, current_model: str) -> None:
        self.index = index
        self.index_model = index_model
        self.current_model = current_model
        super().__init__(
            f"index {index!r} was encoded with model {index_model}, but {current_model} is in use; "
            "query with the index's model, or re-encode the index (colsplade ingest --reencode)."
        )


class CodecMismatchError(ModelVersionMismatchError):
    """The index's ColBERT token codes were written with another codec than the reader has.

    Decoding them with another codec's centroids would give wrong scores without any error, so it is
    refused. ``index_codec`` / ``reader_codec`` are the two codec hashes (``None``: no codec at all).
    """

    def __init__(self, index: str, index_codec: str | None, reader_codec: str | None, hint: str = "") -> None:
        self.index = index
        self.index_codec = index_codec
        self.reader_codec = reader_codec
        self.index_model = f"codec {index_codec}"
        self.current_model = f"codec {reader_codec}"
        message = (
            f"index {index!r} holds token codes of codec {index_codec}, but the model in use has "
            f"{'codec ' + reader_codec if reader_codec else 'no codec'}"
        )
        ColspladeError.__init__(
            self,
            message
            + (
                f"; {hint}"
                if hint
                else "; use the model directory that ingested the index (its colbert_codec.npz), "
                "or re-encode the index (colsplade ingest --reencode)"
            ),
        )


class DocCapMismatchError(ModelVersionMismatchError):
    """The index's documents keep another number of SPLADE terms (``doc_top_k``) than this run would.

    A lower cap drops terms a query may match, so documents capped differently in one index are not
    scored alike. ``index_cap`` / ``run_cap`` are the two caps (``None``: no cap).
    """

    def __init__(self, index: str, model: str, index_cap: int | None, run_cap: int | None) -> None:
        self.index = index
        self.index_cap = index_cap
        self.run_cap = run_cap
        self.index_model = f"{model} (doc_top_k {index_cap})"
        self.current_model = f"{model} (doc_top_k {run_cap})"
        ColspladeError.__init__(
            self,
            f"index {index!r} holds documents that keep at most {index_cap} SPLADE terms (doc_top_k), "
            f"this run would write {run_cap if run_cap is not None else 'all'}; open the model with the "
            f"index's cap (load_encoder(model_dir, doc_top_k={index_cap})), or re-encode the whole index "
            "with the new cap (colsplade ingest --reencode)",
        )


class ParityError(ColspladeError):
    """An exported ONNX graph disagrees with the torch model beyond the tolerance.

    Raised by :func:`colsplade.onnx_export.export_model_dir` after its parity check; ``report`` is the
    :class:`~colsplade.onnx_export.ExportReport` with the figures of every variant (the files stay on
    disk for inspection, but ``colsplade.json`` does not list a failed variant).
    """

    def __init__(self, message: str, report: Any = None) -> None:
        self.report = report
        super().__init__(message)


class MissingExtraError(ColspladeError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it.

    >>> str(MissingExtraError("torch", "train"))
    "torch is not installed; install it with: pip install 'colsplade[train]'"
    """

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"{package} is not installed; install it with: pip install 'colsplade[{extra}]'")


class StreamError(ColspladeError):
    """A stream client failed for good: a fatal Kafka consumer error, a commit that cannot be retried, a
    transaction that had to be aborted. Nothing past the last committed offsets was acknowledged, so
    running the worker again redoes the rest (idempotent ids: nothing doubles)."""


class CorruptBlobError(InvalidInputError):
    """A token blob that is truncated, altered, or written by another codec layout."""


class DatasetDownloadError(ColspladeError, OSError):
    """A dataset archive could not be fetched (network, HTTP error) or written; the message names the URL."""
