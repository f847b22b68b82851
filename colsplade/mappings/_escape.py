"""One reversible escaping of SPLADE token keys for ``rank_features`` / ``sparse_vector`` fields.

Both engines reject feature names containing ``.`` (they would be read as object paths). Elasticsearch's
own ML pipeline maps ``.`` to ``__``, which cannot be undone (``__`` also occurs in vocabularies), so colsplade
percent-encodes the two characters that matter: ``%`` -> ``%25`` first, then ``.`` -> ``%2E``. Every other
character, including the WordPiece ``##`` prefix, stays as is, so keys remain readable in the engine.
Ingest escapes, the query builders escape, and explain/readers unescape: all through these functions.
"""

from __future__ import annotations

from collections.abc import Mapping

from colsplade.exceptions import InvalidInputError

__all__ = ["escape_feature", "escape_impacts", "unescape_feature", "unescape_impacts"]


def escape_feature(token: str) -> str:
    """Escape one token for use as a feature name.

    >>> escape_feature("e.g."), escape_feature("100%"), escape_feature("##ing")
    ('e%2Eg%2E', '100%25', '##ing')
    >>> unescape_feature(escape_feature("%2E.")) == "%2E."
    True
    """
    if not isinstance(token, str) or not token:
        raise InvalidInputError(f"a SPLADE token must be a non-empty string, got {token!r}")
    return token.replace("%", "%25").replace(".", "%2E")


def unescape_feature(key: str) -> str:
    """Invert :func:`escape_feature`.

    >>> unescape_feature("e%2Eg%2E"), unescape_feature("100%25")
    ('e.g.', '100%')
    """
    return key.replace("%2E", ".").replace("%25", "%")


def escape_impacts(impacts: Mapping[str, float]) -> dict[str, float]:
    """Escape the keys of ``{token: weight}`` and drop weights that are not strictly positive.

    Engines refuse zero or negative feature values, so they are dropped here rather than at the engine.

    >>> escape_impacts({"u.s.": 1.5, "usa": 0.0, "the": -1.0})
    {'u%2Es%2E': 1.5}
    """
    out: dict[str, float] = {}
    for token, weight in impacts.items():
        weight = float(weight)
        if weight > 0.0 and weight == weight:  # also drops NaN
            key = escape_feature(token)
            # Two tokens cannot collide after escaping (it is injective), but keep the max to be safe.
            out[key] = max(weight, out.get(key, 0.0))
    return out


def unescape_impacts(features: Mapping[str, float]) -> dict[str, float]:
    """Invert :func:`escape_impacts` for the kept (positive) entries.

    >>> unescape_impacts({"u%2Es%2E": 1.5})
    {'u.s.': 1.5}
    """
    return {unescape_feature(k): float(v) for k, v in features.items()}
