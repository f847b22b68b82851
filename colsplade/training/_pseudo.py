"""Label-free training pairs: pseudo-queries made from a corpus's own documents (no queries, no qrels).

Three kinds of pair, each from one document (pure functions; no torch, no engine):

* ``title``: the title is the query, the body (without the title) the positive;
* ``ict`` (inverse cloze task): one sentence is the query, the document without it the positive;
* ``crop``: a short random span of words is the query, an independent longer span of the same
  document the positive (crops may overlap, as in Contriever).

Each document gives one pair per example set, of a kind drawn with :data:`DEFAULT_KIND_WEIGHTS` among
the kinds it can give (a title needs a body, ICT at least three sentences, a crop enough words), so two
examples of one batch never come from the same document. The positive's text replaces the document's
text *in the training corpus only*; hard negatives are mined on the original texts.

>>> doc = PseudoDocument("d1", "Aspirin and the heart", "Aspirin thins the blood of most patients. "
...     "It lowers the risk of infarction in adults. Doses vary by age, weight and kidney function.")
>>> [kind for kind in KINDS if can_make(doc, kind)]
['title', 'ict', 'crop']
>>> pair = make_pair(doc, "title", random.Random(0))
>>> pair.query, pair.positive_text[:20]
('Aspirin and the heart', 'Aspirin thins the bl')
>>> near_duplicate("the cat sat on the mat today", "The cat sat on the mat, today!")
True
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from colsplade._text import TEXT_JOINER, split_sentences
from colsplade.exceptions import InvalidInputError

__all__ = [
    "DEFAULT_KIND_WEIGHTS",
    "KINDS",
    "MIN_PAIRS",
    "PseudoDocument",
    "PseudoPair",
    "can_make",
    "filter_near_duplicates",
    "make_pair",
    "make_pairs",
    "near_duplicate",
    "split_sentences",
]

logger = logging.getLogger(__name__)

KINDS = ("title", "ict", "crop")
#: how often each kind is drawn when a document can give it (renormalised over the kinds it can give).
DEFAULT_KIND_WEIGHTS: Mapping[str, float] = {"title": 0.3, "ict": 0.45, "crop": 0.25}
#: fewer pairs than this cannot make a useful contrastive run (a handful of batches of distinct documents).
MIN_PAIRS = 32

_MIN_TITLE_WORDS = 2
_MIN_BODY_WORDS = 8
_ICT_MIN_SENTENCES = 3
_ICT_SENTENCE_WORDS = (4, 48)
_CROP_QUERY_WORDS = (4, 12)
_CROP_MIN_WORDS = 24
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class PseudoDocument:
    """A document as label-free training reads it: id, title (may be empty), body."""

    doc_id: str
    title: str
    body: str

    @property
    def text(self) -> str:
        """Title and body joined as ingest joins a document's text fields: the text the index encodes."""
        return TEXT_JOINER.join(t for t in (self.title, self.body) if t)


@dataclass(frozen=True)
class PseudoPair:
    """One training pair: a pseudo-query, its document and the positive's text (what the model reads)."""

    doc_id: str
    kind: str
    query: str
    positive_text: str


def _ict_candidates(sentences: Sequence[str]) -> list[int]:
    if len(sentences) < _ICT_MIN_SENTENCES:
        return []
    lo, hi = _ICT_SENTENCE_WORDS
    return [i for i, s in enumerate(sentences) if lo <= len(s.split()) <= hi]


def can_make(doc: PseudoDocument, kind: str) -> bool:
    """Whether ``doc`` can give a pair of ``kind`` (see the module docstring for the conditions)."""
    if kind == "title":
        return len(doc.title.split()) >= _MIN_TITLE_WORDS and len(doc.body.split()) >= _MIN_BODY_WORDS
    if kind == "ict":
        return bool(_ict_candidates(split_sentences(doc.body)))
    if kind == "crop":
        return len(doc.text.split()) >= _CROP_MIN_WORDS
    raise InvalidInputError(f"unknown pseudo-query kind {kind!r}; choose from {', '.join(KINDS)}")


def make_pair(doc: PseudoDocument, kind: str, rng: random.Random) -> PseudoPair:
    """One pair of ``kind`` from ``doc`` (which must be able to give it: :func:`can_make`)."""
    if kind == "title":
        return PseudoPair(doc.doc_id, kind, doc.title.strip(), doc.body.strip())
    if kind == "ict":
        sentences = split_sentences(doc.body)
        i = rng.choice(_ict_candidates(sentences))
        rest = " ".join(s for j, s in enumerate(sentences) if j != i)
        positive = TEXT_JOINER.join(t for t in (doc.title, rest) if t)
        return PseudoPair(doc.doc_id, kind, sentences[i], positive)
    words = doc.text.split()
    n_query = rng.randint(*_CROP_QUERY_WORDS)
    start = rng.randrange(len(words) - n_query + 1)
    query = " ".join(words[start : start + n_query])
    # an independent crop of at least half the document: it may or may not hold the query's words
    n_pos = rng.randint(len(words) // 2, len(words))
    pos_start = rng.randrange(len(words) - n_pos + 1)
    return PseudoPair(doc.doc_id, kind, query, " ".join(words[pos_start : pos_start + n_pos]))


def make_pairs(
    documents: Iterable[PseudoDocument],
    *,
    kinds: Sequence[str] = KINDS,
    weights: Mapping[str, float] = DEFAULT_KIND_WEIGHTS,
    seed: int = 42,
    max_pairs: int | None = None,
    min_pairs: int = MIN_PAIRS,
) -> list[PseudoPair]:
    """One pair per document that can give one of ``kinds``, drawn by ``weights``; seeded.

    Raises :class:`InvalidInputError` when fewer than ``min_pairs`` documents give a pair (too small or
    too short a corpus), naming how many were read and why the others gave none.
    """
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise InvalidInputError(f"pseudo-query kinds must be among {', '.join(KINDS)}, not {list(kinds)}")
    rng = random.Random(seed)
    pairs: list[PseudoPair] = []
    n_docs = n_empty = n_short = 0
    for doc in documents:
        n_docs += 1
        if not doc.text.strip():
            n_empty += 1
            continue
        usable = [k for k in kinds if can_make(doc, k)]
        if not usable:
            n_short += 1
            continue
        kind = rng.choices(usable, weights=[weights.get(k, 0.0) or 1e-9 for k in usable])[0]
        pairs.append(make_pair(doc, kind, rng))
    if len(pairs) < min_pairs:
        raise InvalidInputError(
            f"the corpus is too small for label-free training: {n_docs} document(s) read, {len(pairs)} gave a "
            f"pseudo-query ({n_empty} empty, {n_short} too short: a title needs {_MIN_BODY_WORDS}+ words of "
            f"body, a sentence pair {_ICT_MIN_SENTENCES}+ sentences, a crop {_CROP_MIN_WORDS}+ words); at "
            f"least {min_pairs} are needed. Give a larger corpus, or train on labelled queries (--data)"
        )
    if n_empty or n_short:
        logger.info("%d of %d documents gave no pseudo-query (%d empty, %d too short)", n_empty + n_short,
                    n_docs, n_empty, n_short)  # fmt: skip
    if max_pairs is not None and len(pairs) > max_pairs:
        pairs = rng.sample(pairs, max_pairs)
    counts = {k: sum(p.kind == k for p in pairs) for k in kinds}
    logger.info("label-free pairs: %d (%s)", len(pairs), ", ".join(f"{k} {n}" for k, n in counts.items()))
    return pairs


def _shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def near_duplicate(a: str, b: str, threshold: float = 0.6) -> bool:
    """Whether two texts are near-duplicates: Jaccard similarity of their word 3-gram sets >= ``threshold``.

    A near-duplicate of the positive among the hard negatives would teach the model to push a relevant
    document down (a false negative); corpora collected from feeds often hold re-posts and versions.
    """
    return _jaccard(_shingles(a), _shingles(b)) >= threshold


def _jaccard(sa: set[tuple[str, ...]], sb: set[tuple[str, ...]]) -> float:
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def filter_near_duplicates(
    positive_text: str,
    query: str,
    negatives: Sequence[str],
    corpus: Mapping[str, str],
    threshold: float = 0.6,
) -> tuple[list[str], int]:
    """-> (the negatives that are neither near-duplicates of the positive nor hold the query verbatim,
    how many were dropped). A document containing the pseudo-query word for word is another copy of its
    source sentence or title far more often than an unrelated document."""
    needle = " " + " ".join(_WORD.findall(query.lower())) + " "
    positive = _shingles(positive_text)  # once, not once per negative
    kept: list[str] = []
    for d in negatives:
        text = corpus.get(d, "")
        verbatim = needle.strip() and needle in " " + " ".join(_WORD.findall(text.lower())) + " "
        if verbatim or _jaccard(positive, _shingles(text)) >= threshold:
            continue
        kept.append(d)
    return kept, len(negatives) - len(kept)
