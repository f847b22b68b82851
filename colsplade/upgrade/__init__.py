"""A team's BM25 index to neural search in one command: :func:`upgrade`, :func:`rollback`, :func:`cleanup`.

    from colsplade.upgrade import upgrade, rollback

    summary = upgrade("docs")       # alias "docs": train label-free, re-encode, measure, maybe switch
    summary["switched"], summary["decision"]["reason"]
    rollback("docs")                # the alias back to the index before the upgrade

Training needs the ``[train]`` extra. The gate's pure parts (:func:`gate_queries`,
:func:`paired_bootstrap`, :func:`choose`) need numpy only.
"""

from __future__ import annotations

from colsplade.upgrade._gate import GATE_KINDS, GateQuery, choose, gate_queries, paired_bootstrap, spearman
from colsplade.upgrade._inspect import MIN_DOCUMENTS, IndexFacts, inspect_index, text_fields_of
from colsplade.upgrade._report import report_markdown, write_report
from colsplade.upgrade._run import GATE_PLANS, RECIPE, cleanup, rollback, upgrade

__all__ = [
    "GATE_KINDS",
    "GATE_PLANS",
    "MIN_DOCUMENTS",
    "RECIPE",
    "GateQuery",
    "IndexFacts",
    "choose",
    "cleanup",
    "gate_queries",
    "inspect_index",
    "paired_bootstrap",
    "report_markdown",
    "rollback",
    "spearman",
    "text_fields_of",
    "upgrade",
    "write_report",
]
