"""The whole ``colsplade upgrade`` on SciFact as a team would run it, and its gate against the real qrels.

A team's BM25 index is made from the 5,183 abstracts alone (title + text, the ``english`` analyser where
the engine has it; the local OpenSearch does), with alias-less name ``scifact-team``. Then one call,
``colsplade.upgrade.upgrade("scifact-team", alias="scifact-search", ...)``, trains label-free on it (less
the held-out documents), exports, re-encodes, measures every plan against the index's own BM25 on the
held-out pseudo-queries, and decides on them alone (``decide_by="pseudo"``). The 300 test queries and their
qrels are measured in the same run (never trained on, never deciding), so the gate's choice and switch
decision can be set against what the labels say.

    python benchmarks/bench_upgrade.py --engine opensearch --budget-minutes 8

Writes ``benchmarks/results/upgrade.json`` with the issue's keys (dataset, docs, seconds, gate, qrels,
agreement) plus the machine, versions, load and settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from _common import DATA, write_report

from colsplade.engines import BulkAction, bulk_write, connect_default, resolve_settings
from colsplade.evaluation import load_beir, resolve_dataset


def _corpus(data_dir: Path) -> dict[str, dict]:
    with (data_dir / "corpus.jsonl").open(encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    return {str(r["_id"]): r for r in records}


def _team_index(client, name: str, corpus: dict[str, dict]) -> str:
    analyzer = client.capabilities().resolve_analyzer("auto")
    if client.index_exists(name):
        client.delete_index(name)
    text = {"type": "text", "analyzer": analyzer}
    client.create_index(name, {"mappings": {"properties": {"title": text, "text": text}}})
    actions = [
        BulkAction(index=name, doc_id=doc_id, source={"title": d.get("title", ""), "text": d.get("text", "")})
        for doc_id, d in corpus.items()
    ]
    failed = [r for r in bulk_write(client, actions) if not r.ok]
    assert not failed, failed[:3]
    client.refresh(name)
    return analyzer


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--engine", default="opensearch", choices=["opensearch", "elasticsearch"])
    parser.add_argument("--budget-minutes", type=float, default=8.0)
    parser.add_argument("--holdout", type=int, default=300)
    parser.add_argument("--distractors", type=int, default=2000)
    parser.add_argument("--work-dir", default="/tmp/colsplade-bench-upgrade")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "upgrade.json"))
    parser.add_argument("--keep", action="store_true", help="Keep the indices (default: deleted at the end).")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="Go on with an interrupted run in --work-dir (the team index is kept).",
    )
    args = parser.parse_args()

    from colsplade.config import load_settings
    from colsplade.upgrade import cleanup, upgrade

    load_before = os.getloadavg()
    data_dir = resolve_dataset(args.data)
    load_beir(data_dir, "test")  # a BEIR directory with test qrels, or a clear error now
    settings = resolve_settings(load_settings().replace(engine=args.engine), autostart=True)
    work = Path(args.work_dir)
    if not args.resume:
        shutil.rmtree(work, ignore_errors=True)
    with connect_default(settings) as client:
        if args.resume:  # the team index and the stages done stay
            analyzer = client.capabilities().resolve_analyzer("auto")
        else:
            for name in ("scifact-search-v1", "scifact-search-v1-gate"):
                if client.index_exists(name):
                    client.delete_index(name)
            analyzer = _team_index(client, "scifact-team", _corpus(Path(data_dir)))
        started = time.perf_counter()
        summary = upgrade(
            "scifact-team",
            client=client,
            alias="scifact-search",
            budget_minutes=args.budget_minutes,
            holdout=args.holdout,
            distractors=args.distractors,
            qrels=str(Path(data_dir) / "qrels" / "test.tsv"),
            queries=str(Path(data_dir) / "queries.jsonl"),
            decide_by="pseudo",
            work_dir=work,
            progress=False,
        )
        wall = time.perf_counter() - started
        if not args.keep:
            cleanup("scifact-search", client=client, work_dir=work)
            for name in ("scifact-search-v1", "scifact-team"):  # what the alias read, and the team's index
                if client.index_exists(name):
                    client.delete_index(name)
    s = summary["seconds"]
    gate = summary["gate"]
    qrels = summary["qrels"]
    report = {
        "dataset": "scifact",
        "docs": summary["documents"],
        "seconds": {
            "train": s.get("train"),
            "export": s.get("export"),
            "reencode": s.get("reencode"),
            "measure": round((s.get("gate_index") or 0) + (s.get("measure") or 0), 1),
            # the stages' own seconds (a resumed run's included), not the wall time of this process
            "total": s.get("total"),
        },
        "gate": {
            "plan": gate["plan"],
            "switched": summary["switched"],
            "reason": summary["decision"]["reason"],
            "queries": gate["queries"],
            "bm25": {"ndcg@10": gate["plans"]["bm25"]["ndcg@10"]},
            "pseudo": {
                p: {"ndcg@10": gate["plans"][p]["ndcg@10"], "ci95": [g["lo"], g["hi"]], "gain": g["mean"]}
                for p, g in gate["gains"].items()
            },
            "gains_by_kind": gate.get("gains_by_kind"),
        },
        "qrels": {
            "queries": qrels["queries"],
            "bm25": {
                "ndcg@10": qrels["plans"]["bm25"]["ndcg@10"],
                "p50_ms": qrels["plans"]["bm25"]["p50_ms"],
            },
            "plans": {
                p: {
                    "ndcg@10": r["ndcg@10"],
                    "recall@100": r["recall@100"],
                    "p50_ms": r["p50_ms"],
                    "gain": qrels["gains"][p]["mean"],
                    "ci95": [qrels["gains"][p]["lo"], qrels["gains"][p]["hi"]],
                }
                for p, r in qrels["plans"].items()
                if p != "bm25"
            },
        },
        "agreement": summary["agreement"],
        "settings": {
            "engine": summary["engine"],
            "bm25_analyzer": analyzer,
            "budget_minutes": args.budget_minutes,
            "holdout": args.holdout,
            "distractors": args.distractors,
            "train": summary["train"],
            "export": summary["export"],
            "decide_by": "pseudo",
        },
        "load_average_at_start": [round(x, 2) for x in load_before],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "all_stage_seconds": s,
        "wall_seconds_this_process": round(wall, 1),
        "resumed": args.resume,
    }
    write_report(args.out, report)
    results = Path(args.out).parent
    shutil.copy(work / "report.md", results / "upgrade-report.md")
    if (work / "report.png").exists():
        shutil.copy(work / "report.png", results / "upgrade.png")


if __name__ == "__main__":
    main()
