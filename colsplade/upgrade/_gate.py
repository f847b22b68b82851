"""The upgrade's gate: label-free evaluation queries that are no span of their target, paired bootstrap
intervals, and the decision (pure functions; numpy only).

Why the positive form: a pseudo-query cut verbatim out of a document measures string matching, and BM25
wins at that whatever the real queries would say (sentence and crop queries ranked English BM25 first on
two corpora whose real qrels rank the fused plans above it). So each held-out document gives one query,
and it is indexed in its *positive form*: the document with that query's span taken out of it.

- ``title``: the query is the title; the positive form has no title, and the title's verbatim
  repetitions are cut out of the body too.
- ``ict`` (inverse cloze): the query is one sentence of the body; the positive form is the document
  without that sentence.

What is left matches the query by topic and vocabulary, not by the string: the question the gate asks of
every plan is the one real queries ask.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from colsplade._text import field_text, split_sentences
from colsplade.exceptions import InvalidInputError

__all__ = [
    "GATE_KINDS",
    "GateQuery",
    "choose",
    "gate_queries",
    "paired_bootstrap",
    "spearman",
]

#: The pseudo-query kinds the gate can make, in the order a document is asked for them.
GATE_KINDS = ("title", "ict")

_MIN_TITLE_WORDS = 3
_MIN_BODY_WORDS = 20
_ICT_SENTENCE_WORDS = (6, 40)
_ICT_MIN_SENTENCES = 3


@dataclass(frozen=True)
class GateQuery:
    """One evaluation query: its text, its target document, and the fields the target is indexed with."""

    query_id: str
    query: str
    doc_id: str
    kind: str
    fields: dict[str, str] = field(default_factory=dict)


def _without(text: str, span: str) -> str:
    """``text`` with every case-insensitive occurrence of ``span`` cut out (whitespace tidied).

    >>> _without("Gene X binds. gene x binds again", "gene x")
    'binds. binds again'
    """
    cut = re.sub(re.escape(span), " ", text, flags=re.IGNORECASE)
    return " ".join(cut.split())


def _title_query(source: Mapping[str, Any], title_field: str, text_fields: Sequence[str]) -> tuple[str, dict]:
    title = field_text(source, title_field)
    bodies = {f: field_text(source, f) for f in text_fields}
    if (
        len(title.split()) < _MIN_TITLE_WORDS
        or sum(len(b.split()) for b in bodies.values()) < _MIN_BODY_WORDS
    ):
        return "", {}
    positive = {f: _without(b, title) for f, b in bodies.items()}
    return title, {title_field: "", **positive}


def _ict_query(
    source: Mapping[str, Any], title_field: str | None, text_fields: Sequence[str], rng: random.Random
) -> tuple[str, dict]:
    lo, hi = _ICT_SENTENCE_WORDS
    candidates = []
    for name in text_fields:
        sentences = split_sentences(field_text(source, name))
        if len(sentences) >= _ICT_MIN_SENTENCES:
            candidates += [(name, i, s) for i, s in enumerate(sentences) if lo <= len(s.split()) <= hi]
    if not candidates:
        return "", {}
    name, _i, sentence = rng.choice(candidates)
    positive = {f: field_text(source, f) for f in text_fields}
    positive[name] = _without(positive[name], sentence)
    if title_field:
        positive[title_field] = field_text(source, title_field)
    return sentence, positive


def gate_queries(
    documents: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    title_field: str | None,
    text_fields: Sequence[str],
    kinds: Sequence[str] = GATE_KINDS,
    seed: int = 0,
) -> list[GateQuery]:
    """One evaluation query per held-out document that can give one (``documents``: ``(id, source)``).

    The kinds a document can give are drawn from in turn, seeded, so a corpus with titles gets a mix of
    title and sentence queries. Whatever the kind, the query is no substring of any field of its positive
    form (a document where it still is, after the cut, gives no query).

    >>> doc = {"title": "Aspirin lowers fever", "text": "We gave aspirin to 40 children with a high fever "
    ...        "and measured their temperature every hour for two days after the first dose."}
    >>> q = gate_queries([("d1", doc)], title_field="title", text_fields=["text"], kinds=["title"])[0]
    >>> q.query, q.fields["title"], q.query.lower() in q.fields["text"].lower()
    ('Aspirin lowers fever', '', False)
    """
    unknown = [k for k in kinds if k not in GATE_KINDS]
    if unknown or not kinds:
        raise InvalidInputError(f"gate query kinds must be among {', '.join(GATE_KINDS)}, not {list(kinds)}")
    rng = random.Random(seed)
    out = []
    for n, (doc_id, source) in enumerate(documents):
        order = list(kinds)
        rng.shuffle(order)
        for kind in order:
            if kind == "title":
                if not title_field:
                    continue
                query, positive = _title_query(source, title_field, text_fields)
            else:
                query, positive = _ict_query(source, title_field, text_fields, rng)
            if not query or not any(v for v in positive.values()):
                continue
            if any(query.lower() in v.lower() for v in positive.values()):
                continue
            out.append(GateQuery(f"gate-{n}", query, doc_id, kind, positive))
            break
    return out


def paired_bootstrap(
    values: Sequence[float], baseline: Sequence[float], *, resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean of ``values - baseline`` (paired per query) and its percentile-bootstrap 95 % interval.

    >>> r = paired_bootstrap([0.5, 0.6, 0.7, 0.8], [0.4, 0.5, 0.6, 0.7])
    >>> round(r["mean"], 3), r["lo"] > 0
    (0.1, True)
    """
    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise InvalidInputError(
            "paired_bootstrap needs two equally long, non-empty lists of per-query values"
        )
    diff = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.size, size=(resamples, diff.size))
    means = diff[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(diff.mean()), "lo": float(lo), "hi": float(hi)}


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None for fewer than 3 pairs or a constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 25])
    0.8
    """
    if len(x) != len(y) or len(x) < 3:
        return None

    def ranks(v: Sequence[float]) -> np.ndarray:
        a = np.asarray(v, dtype=float)
        order = a.argsort(kind="stable")
        r = np.empty(len(a))
        r[order] = np.arange(len(a), dtype=float)
        for value in np.unique(a):  # ties share their mean rank
            tie = a == value
            r[tie] = r[tie].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return round(float(np.corrcoef(rx, ry)[0, 1]), 4)


def choose(gains: Mapping[str, Mapping[str, float]], *, force: bool = False) -> dict[str, Any]:
    """The gate's decision from each plan's paired gain over BM25 (``{plan: {"mean", "lo", "hi"}}``).

    The plan with the largest mean gain is chosen; the alias switches when its interval's lower bound is
    above 0 (or ``force``). Returns ``{"plan", "switch", "reason"}``.

    >>> choose({"a": {"mean": 0.05, "lo": 0.01, "hi": 0.09}, "b": {"mean": 0.02, "lo": -0.01, "hi": 0.05}})
    {'plan': 'a', 'switch': True, 'reason': 'a beats BM25 by +0.050 nDCG@10 (95 % interval +0.010 to +0.090)'}
    """
    if not gains:
        return {"plan": None, "switch": bool(force), "reason": "no plan was measured"}
    plan = max(gains, key=lambda name: gains[name]["mean"])
    g = gains[plan]
    interval = f"(95 % interval {g['lo']:+.3f} to {g['hi']:+.3f})"
    if g["lo"] > 0:
        return {
            "plan": plan,
            "switch": True,
            "reason": f"{plan} beats BM25 by {g['mean']:+.3f} nDCG@10 {interval}",
        }
    verdict = "is not shown to beat" if g["mean"] > 0 else "does not beat"
    reason = f"the best plan, {plan}, {verdict} BM25: {g['mean']:+.3f} nDCG@10 {interval}"
    if force:
        return {"plan": plan, "switch": True, "reason": reason + "; switched anyway (--force)"}
    return {"plan": plan, "switch": False, "reason": reason + "; the alias stays on BM25's index"}
