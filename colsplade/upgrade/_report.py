"""The upgrade's report: ``report.md`` (what was decided and why, every plan's figures) and ``report.png``
(each plan's nDCG@10 gain over BM25 with its 95 % interval, and its p50), next to ``summary.json``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["report_markdown", "write_report"]

logger = logging.getLogger(__name__)


def _plans_table(section: Mapping[str, Any]) -> list[str]:
    gains = section.get("gains") or {}
    lines = [
        "| plan | nDCG@10 | gain over BM25 (95 % interval) | MRR@10 | recall@100 | p50 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in sorted(section["plans"].items(), key=lambda kv: -kv[1]["ndcg@10"]):
        g = gains.get(name)
        gain = f"{g['mean']:+.3f} ({g['lo']:+.3f} to {g['hi']:+.3f})" if g else "baseline"
        lines.append(
            f"| {name} | {r['ndcg@10']:.3f} | {gain} | {r['mrr@10']:.3f} | {r['recall@100']:.3f} | "
            f"{r['p50_ms'] if r['p50_ms'] is not None else '-'} |"
        )
    return lines


def report_markdown(summary: Mapping[str, Any]) -> str:
    """The report of one upgrade ``summary`` (see :func:`colsplade.upgrade.upgrade`) as Markdown."""
    decision = summary["decision"]
    verdict = (
        f"**Switched**: alias `{summary['alias']}` now reads `{summary['target_index']}`"
        if summary["switched"]
        else f"**Not switched**: alias `{summary['alias']}` still reads `{summary['source_index']}`"
    )
    lines = [
        f"# colsplade upgrade of `{summary['alias']}`",
        "",
        f"{verdict}; default plan `{decision['plan']}` (decided on the {decision['decided_by']} queries).",
        "",
        f"Why: {decision['reason']}.",
        "",
        f"- source `{summary['source_index']}` ({summary['documents']} documents, {summary['engine']}), "
        f"text fields {', '.join(summary['text_fields'])} (analysers: "
        f"{', '.join(f'{k}={v}' for k, v in summary['analyzers'].items())})",
        f"- seconds: {', '.join(f'{k} {v}' for k, v in summary['seconds'].items() if v is not None)}",
        f"- model: {summary['train'].get('steps')} steps on {summary['train'].get('device')}, served as "
        f"{summary['export'].get('variant')}",
        "",
        "Roll back with `colsplade upgrade " + summary["alias"] + " --rollback`; delete what the alias "
        "does not read with `--cleanup`.",
        "",
        f"## Gate: {summary['gate']['queries']} held-out pseudo-queries (targets indexed without the query's span)",
        "",
        *_plans_table(summary["gate"]),
    ]
    if summary["gate"].get("gains_by_kind"):
        lines += ["", "Gain over BM25 by pseudo-query kind:", ""]
        for kind, gains in summary["gate"]["gains_by_kind"].items():
            best = max(gains, key=lambda p: gains[p])
            lines.append(f"- {kind}: best {best} {gains[best]:+.3f}")
    if "qrels" in summary:
        a = summary["agreement"]
        lines += [
            "",
            f"## The team's labelled queries ({summary['qrels']['queries']})",
            "",
            *_plans_table(summary["qrels"]),
            "",
            f"Gate against labels: same plan {a['same_plan']}, same switch decision "
            f"{a['same_switch_decision']}, Spearman of the plans' gains {a['spearman_gain']}.",
        ]
    return "\n".join(lines) + "\n"


def _plot(summary: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = [("gate (pseudo)", summary["gate"])] + (
        [("qrels", summary["qrels"])] if "qrels" in summary else []
    )
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(summary["gate"]["gains"]) + 2))
    gate = summary["gate"]["gains"]
    names = sorted(gate, key=lambda p: gate[p]["mean"])  # one order for every section: rows are plans
    for n, (label, section) in enumerate(sections):
        names = [p for p in names if p in section["gains"]]
        means = [section["gains"][p]["mean"] for p in names]
        err = [[m - section["gains"][p]["lo"] for p, m in zip(names, means, strict=True)],
               [section["gains"][p]["hi"] - m for p, m in zip(names, means, strict=True)]]  # fmt: skip
        y = [i + 0.2 * n for i in range(len(names))]
        axes[0].errorbar(means, y, xerr=err, fmt="o", label=label, capsize=3)
    axes[0].set_yticks(range(len(names)), names)
    axes[0].axvline(0, color="grey", lw=1)
    axes[0].set_xlabel("nDCG@10 gain over the index's BM25 (95 % interval)")
    axes[0].legend()
    plans = summary["gate"]["plans"]
    names = sorted(plans, key=lambda p: plans[p]["p50_ms"] or 0)
    axes[1].barh(names, [plans[p]["p50_ms"] or 0 for p in names])
    axes[1].set_xlabel("p50 latency, ms (gate queries, end to end)")
    fig.suptitle(
        f"colsplade upgrade of {summary['alias']}: {'switched' if summary['switched'] else 'kept BM25'}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(summary: Mapping[str, Any], work: Path) -> None:
    """``report.md`` and ``report.png`` into ``work`` (the PNG needs matplotlib: the ``[eval]`` extra)."""
    (work / "report.md").write_text(report_markdown(summary), encoding="utf-8")
    try:
        _plot(summary, work / "report.png")
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'colsplade[eval]'): no report.png")
