"""Tokenisation shared by the torch models and the ONNX encoders, so both see identical ids.

Only the ``tokenizers`` library is used (no transformers). Sequences are built by hand rather than by
the tokenizer's post-processor so that ColBERT's marker insertion and query augmentation are explicit:

* SPLADE:          ``[CLS] text [SEP]``
* ColBERT / joint: ``[CLS] [Q] text [SEP] [MASK] ... [MASK]`` (queries, augmented to max_query_length)
                   ``[CLS] [D] text [SEP]``                    (documents)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colsplade.encoders._config import ModelConfig
from colsplade.exceptions import InvalidInputError, ModelDirectoryError

__all__ = ["TextTokenizer", "TokenizedTexts", "clean_texts"]

logger = logging.getLogger(__name__)


def clean_texts(texts: Sequence[str | bytes]) -> list[str]:
    """Validate a batch of texts and return them as ``str``.

    ``bytes`` are decoded as UTF-8 (invalid UTF-8 raises :class:`InvalidInputError` naming the text);
    lone surrogates in ``str`` (from ``errors="surrogateescape"`` decoding) become U+FFFD because the
    tokenizer cannot encode them. Anything else but ``str`` / ``bytes`` is refused.
    """
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError("expected a list of texts, got a single string; wrap it in a list: [text]")
    out: list[str] = []
    for i, text in enumerate(texts):
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInputError(
                    f"text {i} is not valid UTF-8 ({exc}); decode it before encoding"
                ) from exc
        elif not isinstance(text, str):
            raise InvalidInputError(f"text {i} is a {type(text).__name__}, expected str or bytes")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
        out.append(text)
    return out


@dataclass
class TokenizedTexts:
    """A tokenised batch before padding.

    ``ids[k]``: the full id sequence of text k (special tokens included);
    ``attended[k]``: how many leading ids are attended to (the rest are [MASK] augmentation);
    ``empty[k]``: the text has no content tokens (empty or whitespace only);
    ``truncated``: how many texts were cut to the maximum length.
    """

    ids: list[list[int]]
    attended: list[int]
    empty: list[bool]
    truncated: int


class TextTokenizer:
    """Builds model inputs from texts according to a model directory's ``colsplade.json``."""

    def __init__(self, model_dir: str | Path, config: ModelConfig) -> None:
        from tokenizers import Tokenizer

        path = Path(model_dir) / "tokenizer.json"
        if not path.is_file():
            raise ModelDirectoryError(
                f"{str(model_dir)!r} has no tokenizer.json (a Hugging Face fast tokenizer file); "
                "save one with tokenizer.save_pretrained(model_dir) from a *fast* tokenizer"
            )
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust side raises plain Exception subclasses
            raise ModelDirectoryError(f"cannot load {path}: {exc}") from exc
        # Truncation and padding are done here, per batch; the file's own settings would interfere.
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.model_dir = Path(model_dir)
        self.config = config
        self.vocab_size = self.tokenizer.get_vocab_size(with_added_tokens=True)
        ids = {role: self._token_id(token, role) for role, token in config.special_tokens.items()}
        self.cls_id, self.sep_id, self.pad_id, self.mask_id = ids["cls"], ids["sep"], ids["pad"], ids["mask"]
        if config.colbert is not None and config.colbert.query_augmentation and self.pad_id == self.mask_id:
            # a PyLate checkpoint imported before colsplade kept [PAD] apart: its graph drops the expansion
            logger.warning(
                "%s pads with its [MASK] token, so its queries lose their [MASK] expansion; re-import the "
                "checkpoint (colsplade import-model SRC OUT) to get the expansion back",
                model_dir,
            )
        self.query_marker_id: int | None = None
        self.doc_marker_id: int | None = None
        self.skiplist_ids: list[int] = []
        if config.colbert is not None:
            self.query_marker_id = self._token_id(config.colbert.query_marker, "colbert.query_marker")
            self.doc_marker_id = self._token_id(config.colbert.doc_marker, "colbert.doc_marker")
            skip = set()
            for word in config.colbert.skiplist:
                token_id = self.tokenizer.token_to_id(word)
                if token_id is None:
                    pieces = self.tokenizer.encode(word, add_special_tokens=False).ids
                    token_id = pieces[0] if len(pieces) == 1 else None
                if token_id is not None:
                    skip.add(token_id)
            self.skiplist_ids = sorted(skip)
        # Never reported as SPLADE terms: special tokens, [UNK], and BERT's reserved [unusedN] slots
        # (which no text produces and which would only be noise in the index).
        unused = {i for t, i in self.tokenizer.get_vocab().items() if t.startswith("[unused") or t == "[UNK]"}
        self.special_ids = sorted(
            unused
            | {self.cls_id, self.sep_id, self.pad_id, self.mask_id}
            | {i for i in (self.query_marker_id, self.doc_marker_id) if i is not None}
            | {
                token_id
                for token in self.tokenizer.get_added_tokens_decoder().values()
                if token.special and (token_id := self.tokenizer.token_to_id(token.content)) is not None
            }
        )

    def _token_id(self, token: str, role: str) -> int:
        token_id = self.tokenizer.token_to_id(token)
        if token_id is None:
            raise ModelDirectoryError(
                f"the tokenizer has no token {token!r} (the {role} token of colsplade.json)"
            )
        return token_id

    def id_to_token(self, token_id: int) -> str:
        token = self.tokenizer.id_to_token(int(token_id))
        return token if token is not None else f"[id{int(token_id)}]"

    def max_length(self, is_query: bool) -> int:
        return self.config.max_query_length if is_query else self.config.max_doc_length

    def tokenize(self, texts: Sequence[str], *, is_query: bool) -> TokenizedTexts:
        """Tokenise cleaned texts (see :func:`clean_texts`) into full id sequences (unpadded)."""
        marker = None
        if self.config.colbert is not None:
            marker = self.query_marker_id if is_query else self.doc_marker_id
        augment = is_query and self.config.colbert is not None and self.config.colbert.query_augmentation
        max_len = self.max_length(is_query)
        budget = max_len - (3 if marker is not None else 2)
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False) if texts else []
        ids: list[list[int]] = []
        attended: list[int] = []
        empty: list[bool] = []
        truncated = 0
        for enc in encodings:
            content = enc.ids
            if len(content) > budget:
                truncated += 1
                content = content[:budget]
            seq = [self.cls_id] + ([marker] if marker is not None else []) + list(content) + [self.sep_id]
            attended.append(len(seq))
            if augment:
                seq = seq + [self.mask_id] * (max_len - len(seq))
            ids.append(seq)
            empty.append(len(content) == 0)
        if truncated:
            # Once per tokenizer and side at warning level, then debug: every batch of a corpus would
            # otherwise repeat it (encoders keep the running count in ``truncated_count``).
            kind = "queries" if is_query else "documents"
            warned = self.__dict__.setdefault("_truncation_warned", set())
            level = logging.DEBUG if kind in warned else logging.WARNING
            warned.add(kind)
            logger.log(
                level,
                "%d of %d %s were longer than %d tokens and were truncated%s",
                truncated,
                len(ids),
                kind,
                max_len,
                "" if level == logging.DEBUG else " (further truncations are logged at debug level)",
            )
        return TokenizedTexts(ids=ids, attended=attended, empty=empty, truncated=truncated)

    def pad(self, ids: Sequence[Sequence[int]], attended: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Pad sequences into ``input_ids`` and ``attention_mask``, both (batch, max_len) int64."""
        width = max((len(s) for s in ids), default=0)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        attention = np.zeros((len(ids), width), dtype=np.int64)
        attend_masks = self.config.colbert is not None and self.config.colbert.attend_to_mask_tokens
        for row, (seq, n_att) in enumerate(zip(ids, attended, strict=True)):
            input_ids[row, : len(seq)] = seq
            attention[row, : len(seq) if attend_masks else n_att] = 1
        return input_ids, attention
