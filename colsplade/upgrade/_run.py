"""``colsplade upgrade``: a team's BM25 index to neural search in one resumable run.

Stages, each recorded in ``state.json`` of the work directory when it is done, so the same command after
a crash (or a kill -9) goes on from the first stage not done: inspect, hold out, train, export, re-encode,
gate index, measure, decide. Training resumes from its checkpoints, the re-encode from its ingest
checkpoint (document ids are the source's, so a rewrite is idempotent); the gate index is rebuilt and the
measurement rerun. The source index is never written to.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from colsplade.engines import (
    EngineClient,
    alias_indices,
    check_write_privileges,
    next_version,
    scan_index,
    switch_alias,
)
from colsplade.exceptions import EngineAuthorizationError, InvalidInputError, ParityError
from colsplade.mappings import merge_meta
from colsplade.upgrade._gate import GATE_KINDS, GateQuery, choose, gate_queries, paired_bootstrap, spearman
from colsplade.upgrade._inspect import MIN_DOCUMENTS, inspect_index

__all__ = ["GATE_PLANS", "RECIPE", "cleanup", "rollback", "upgrade"]

logger = logging.getLogger(__name__)

STAGES = ("inspect", "holdout", "train", "export", "reencode", "gate_index", "measure", "decide")

#: The plans the gate measures against the index's own BM25 (every named plan that ranks with the model).
GATE_PLANS = (
    "bm25+colbert(fused)",
    "bm25+colbert(rrf)",
    "bm25+colbert",
    "hybrid(bm25+splade)+colbert(fused)",
    "hybrid(bm25+splade)+colbert",
    "hybrid(bm25+splade)",
    "splade+colbert(fused)",
    "splade+colbert",
    "splade",
)

#: The label-free training recipe (``benchmarks/configs/scifact-joint-label-free.json``): a joint model,
#: pseudo-queries from the documents, BM25 negatives on the team's own index, ColBERT -> SPLADE
#: distillation with teacher-filtered in-batch negatives. The steps come from the time budget.
RECIPE: dict[str, Any] = {
    "kind": "joint",
    "label_free": True,
    "pseudo_kinds": ["title", "ict", "crop"],
    "negatives": "bm25",
    "negatives_depth": 30,
    "negatives_skip_top": 2,
    "n_negatives": 1,
    "near_duplicate_threshold": 0.6,
    "batch_size": 16,
    "lr": 5e-05,
    "head_lr": 0.0005,
    "splade_distill_weight": 1.0,
    "distill_temperature": 1.0,
    "teacher_filter": True,
    "max_doc_length": 256,
    "train_max_doc_length": 128,
    "regularizer": "flops",
    "lambda_query": 0.0002,
    "lambda_doc": 0.0001,
    "init_doc_nnz": 256,
    "query_top_k": 64,
    "doc_top_k": 256,
    "log_steps": 5,
    "save_steps": 10,
}
#: Measured seconds per step of :data:`RECIPE` (2 CPU cores: 2.5-3.3 s; one GPU: well under 1 s); the
#: planned steps are the budget divided by this, and the time budget stops the run if steps are slower.
SECONDS_PER_STEP = {"cpu": 3.0, "cuda": 0.4}


class _State:
    """``state.json``: the run's settings and the outputs of every finished stage (written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = (
            json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"stages": {}}
        )

    def done(self, stage: str) -> bool:
        return stage in self.data["stages"]

    def get(self, stage: str) -> dict[str, Any]:
        return dict(self.data["stages"].get(stage) or {})

    def record(self, stage: str, values: Mapping[str, Any]) -> None:
        self.data["stages"][stage] = dict(values)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


def _device_kind(device: str) -> str:
    if device != "auto":
        return "cuda" if device.startswith("cuda") else "cpu"
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def _sample_ids(client: EngineClient, index: str, n: int, seed: int) -> list[str]:
    """A seeded uniform sample of ``n`` document ids (reservoir over one scan of the ids only)."""
    rng = random.Random(seed)
    sample: list[str] = []
    # ids only: a field name no document has leaves every _source empty
    for i, hit in enumerate(
        scan_index(client, index, batch_size=5000, source_includes=["__colsplade_none__"])
    ):
        if len(sample) < n:
            sample.append(hit.doc_id)
        else:
            j = rng.randrange(i + 1)
            if j < n:
                sample[j] = hit.doc_id
    rng.shuffle(sample)
    return sample


def _sources(client: EngineClient, index: str, ids: Sequence[str], fields: Sequence[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        for hit in scan_index(client, index, query={"ids": {"values": chunk}}, source_includes=list(fields)):
            out[hit.doc_id] = hit.source
    return out


def _read_labels(qrels: str | None, queries: str | None) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    if not qrels and not queries:
        return {}, {}
    if not (qrels and queries):
        raise InvalidInputError(
            "give --qrels FILE and --queries FILE together (BEIR qrels TSV, queries JSONL)"
        )
    from colsplade.evaluation import load_qrels, load_queries

    judged = {q: {d: r for d, r in docs.items() if r > 0} for q, docs in load_qrels(qrels).items()}
    judged = {q: docs for q, docs in judged.items() if docs}
    texts = load_queries(queries)
    missing = [q for q in judged if q not in texts]
    if missing:
        raise InvalidInputError(
            f"{len(missing)} judged queries have no text in {queries}, e.g. {missing[0]!r}"
        )
    if not judged:
        raise InvalidInputError(f"{qrels} judges no document relevant (score > 0)")
    return judged, {q: texts[q] for q in judged}


@contextlib.contextmanager
def _engine(client: EngineClient | None, settings: Any, autostart: bool = False) -> Iterator[EngineClient]:
    """The caller's client as it is, or one connected from ``settings`` and closed after."""
    if client is not None:
        yield client
        return
    from colsplade.engines import connect_default

    with connect_default(settings, autostart=autostart) as owned:
        yield owned


def upgrade(
    index: str,
    *,
    client: EngineClient | None = None,
    settings: Any = None,
    alias: str | None = None,
    text_fields: Sequence[str] | None = None,
    title_field: str | None = None,
    base: str | None = None,
    budget_minutes: float = 8.0,
    steps: int | None = None,
    holdout: int = 300,
    distractors: int = 2000,
    gate_kinds: Sequence[str] = GATE_KINDS,
    qrels: str | None = None,
    queries: str | None = None,
    decide_by: Literal["auto", "pseudo", "qrels"] = "auto",
    force: bool = False,
    work_dir: str | os.PathLike[str] | None = None,
    min_documents: int = MIN_DOCUMENTS,
    device: str = "auto",
    seed: int = 13,
    train_overrides: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Upgrade ``index`` (an alias, or an index with ``alias`` named) to colsplade, label-free.

    Trains a joint model on the index's own documents (less a seeded hold-out), exports it to ONNX int8
    (fp32 when int8 fails the parity check), re-encodes every document into ``<alias>-v<n>`` (the source
    is never modified), and measures the team's current search (BM25 on its own fields and analysers)
    against every plan of :data:`GATE_PLANS`:

    - on pseudo-queries of the held-out documents, searched in a scratch index where each target is in
      its positive form, next to ``distractors`` other documents (see :mod:`colsplade.upgrade._gate`);
    - on the team's own labelled queries too, when ``qrels`` and ``queries`` (BEIR TSV / JSONL) are given:
      the new index against BM25 on the source index. They are never trained on.

    The plan with the largest gain over BM25 becomes the new index's default plan (``_meta``; a
    :class:`~colsplade.query.SearchClient` that names no plan takes it). The alias is switched, in one
    atomic request, only when that gain's 95 % bootstrap interval is above 0 (or ``force``); otherwise the
    team keeps BM25 and the summary says why. ``decide_by``: ``auto`` decides on the qrels when given,
    else on the pseudo-queries.

    ``train_overrides``: :class:`~colsplade.training.TrainConfig` settings that replace the recipe's
    (:data:`RECIPE`), e.g. shorter documents on a slow machine.

    Returns the summary (also ``summary.json``, ``report.md`` and ``report.png`` in ``work_dir``, default
    ``./colsplade-upgrade/<alias>``). Run the same call again to resume after an interruption.
    """
    with _engine(client, settings, autostart=True) as engine:
        settings = settings if settings is not None else engine.settings  # training mines on the same engine
        return _Upgrade(engine, settings, dict(
            index=index, alias=alias, text_fields=text_fields, title_field=title_field, base=base,
            budget_minutes=budget_minutes, steps=steps, holdout=holdout, distractors=distractors,
            gate_kinds=list(gate_kinds), qrels=qrels, queries=queries, decide_by=decide_by, force=force,
            work_dir=work_dir, min_documents=min_documents, device=device, seed=seed, progress=progress,
            train_overrides=dict(train_overrides or {}),
        )).run()  # fmt: skip


class _Upgrade:
    """One upgrade run between its stages."""

    def __init__(self, client: EngineClient, settings: Any, options: dict[str, Any]) -> None:
        self.client = client
        self.settings = settings
        self.o = options
        if options["decide_by"] not in ("auto", "pseudo", "qrels"):
            raise InvalidInputError(f"decide_by must be auto, pseudo or qrels, not {options['decide_by']!r}")
        if options["decide_by"] == "qrels" and not options["qrels"]:
            raise InvalidInputError("decide_by='qrels' needs --qrels and --queries")
        if options["holdout"] < 10:
            raise InvalidInputError("hold out at least 10 documents (--holdout): the gate measures on them")
        if options["budget_minutes"] <= 0:
            raise InvalidInputError("--budget-minutes must be positive")
        self.labels = _read_labels(options["qrels"], options["queries"])
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    # ------------------------------------------------------------------ the run

    def run(self) -> dict[str, Any]:
        o = self.o
        try:
            facts = inspect_index(
                self.client, o["index"], alias=o["alias"], text_fields=o["text_fields"],
                title_field=o["title_field"], min_documents=o["min_documents"], base=o["base"],
            )  # fmt: skip
        except EngineAuthorizationError as exc:
            raise exc.with_hint(
                f"colsplade upgrade needs to read {o['index']!r}: its aliases, mapping and documents (the "
                "colsplade_ingest role holds those privileges and the writes that follow: README, 'Secured "
                "clusters')"
            ) from None
        work = Path(o["work_dir"] or Path("colsplade-upgrade") / facts.alias)
        self.work = work
        self.state = _State(work / "state.json")
        if self.state.done("decide"):
            logger.info("this upgrade is done already (%s); see %s", work / "state.json", work / "report.md")
            return json.loads((work / "summary.json").read_text(encoding="utf-8"))
        if self.state.done("inspect"):
            self.target = self.state.get("inspect")["target"]
        else:
            self.target = next_version(self.client, facts.alias)
            check_write_privileges(self.client, self.target, facts.alias, job="colsplade upgrade")
            self.state.data["options"] = {k: v for k, v in o.items() if k != "progress"}
            self.state.record("inspect", {**asdict(facts), "target": self.target})
        self.facts = facts
        logger.info(
            "upgrade %s (%s, %d documents, text fields %s) -> %s; work directory %s",
            facts.alias, facts.concrete, facts.documents, facts.all_text_fields, self.target, work,
        )  # fmt: skip
        for n, stage in enumerate(STAGES[1:], start=2):
            if self.state.done(stage):
                logger.info("stage %d/%d %s: done before, skipped", n, len(STAGES), stage)
                continue
            logger.info("stage %d/%d %s", n, len(STAGES), stage)
            t = time.perf_counter()
            values = getattr(self, f"_{stage}")()
            values["seconds"] = round(time.perf_counter() - t, 1)
            self.state.record(stage, values)
        return json.loads((work / "summary.json").read_text(encoding="utf-8"))

    # ------------------------------------------------------------------ stages

    def _holdout(self) -> dict[str, Any]:
        o, facts = self.o, self.facts
        n_hold = min(o["holdout"], max(10, facts.documents // 5))
        n_distract = min(o["distractors"], facts.documents - n_hold)
        ids = _sample_ids(self.client, facts.concrete, n_hold + n_distract, o["seed"])
        held, distract = ids[:n_hold], ids[n_hold:]
        sources = _sources(self.client, facts.concrete, held, facts.all_text_fields)
        queries = gate_queries(
            [(d, sources[d]) for d in held if d in sources],
            title_field=facts.title_field,
            text_fields=facts.text_fields,
            kinds=o["gate_kinds"],
            seed=o["seed"],
        )
        if len(queries) < 10:
            raise InvalidInputError(
                f"only {len(queries)} of {len(held)} held-out documents gave a gate query (a title of 3+ "
                "words, or a body of 3+ sentences): the text fields "
                f"{facts.all_text_fields} are too short to measure an upgrade on"
            )
        (self.work / "holdout.json").write_text(
            json.dumps(
                {"holdout_ids": held, "distractor_ids": distract, "queries": [asdict(q) for q in queries]}
            ),
            encoding="utf-8",
        )
        kinds = {k: sum(q.kind == k for q in queries) for k in o["gate_kinds"]}
        return {"held_out": len(held), "distractors": len(distract), "queries": len(queries), "kinds": kinds}

    def _holdout_data(self) -> dict[str, Any]:
        data = json.loads((self.work / "holdout.json").read_text(encoding="utf-8"))
        data["queries"] = [GateQuery(**q) for q in data["queries"]]
        return data

    def _train(self) -> dict[str, Any]:
        from colsplade.training import TrainConfig, train

        o, facts = self.o, self.facts
        kind = _device_kind(o["device"])
        budget_s = o["budget_minutes"] * 60
        planned = o["steps"] or max(10, int(budget_s / SECONDS_PER_STEP[kind]))
        config = TrainConfig.from_dict(
            {
                **RECIPE,
                "out": str(self.work / "model"),
                "from_index": facts.concrete,
                "title_field": facts.title_field,
                "text_fields": facts.text_fields,
                "holdout_ids": self._holdout_data()["holdout_ids"],
                "base": o["base"] or "minilm",
                "max_steps": planned,
                "time_budget_s": budget_s,
                "device": o["device"],
                "num_threads": os.cpu_count() or 1,
                "seed": o["seed"],
                "progress": o["progress"],
                "name": f"{facts.alias}-upgrade",
                **o["train_overrides"],
            }
        )
        result = train(config, settings=self.settings)
        return {
            "planned_steps": planned,
            "steps": result.steps,
            "device": kind,
            "model": str(self.work / "model"),
        }

    def _export(self) -> dict[str, Any]:
        from colsplade.onnx_export import export_model_dir

        model = self.work / "model"
        try:
            report = export_model_dir(model, variants=("int8",))
            variant = "int8"
        except ParityError as exc:
            logger.warning("the int8 model failed its parity check (%s): the upgrade serves fp32", exc)
            report = export_model_dir(model, variants=(), raise_on_failure=True)
            variant = "fp32"
        return {"variant": variant, "ok": report.ok}

    @functools.cached_property
    def encoder(self) -> Any:
        """The exported model, loaded once for the re-encode, the gate index and the measurement."""
        from colsplade.encoders import load_encoder

        return load_encoder(self.work / "model", variant=self.state.get("export")["variant"])

    def _reencode(self) -> dict[str, Any]:
        from colsplade.ingest import FieldMapping, reindex

        facts = self.facts
        summary = reindex(
            self.client,
            facts.concrete,
            self.encoder,
            alias=facts.alias,
            target=self.target,
            fields=FieldMapping(text_fields=tuple(facts.all_text_fields)),
            switch=False,
            checkpoint=self.work / "reencode.checkpoint",
            dead_letter=self.work / "reencode.dead.jsonl",
            progress=self.o["progress"],
        )
        if summary.dead_lettered:
            logger.warning(
                "%d document(s) could not be re-encoded (%s): the alias will not switch unless --force",
                summary.dead_lettered, self.work / "reencode.dead.jsonl",
            )  # fmt: skip
        return {
            "target": self.target,
            "indexed": summary.indexed,
            "caught_up": summary.caught_up,
            "dead_lettered": summary.dead_lettered,
            "docs_per_second": round(summary.docs_per_second, 1),
        }

    def _gate_index(self) -> dict[str, Any]:
        from colsplade.ingest import FieldMapping, create_like, ingest, prepare_index

        facts, data = self.facts, self._holdout_data()
        name = f"{self.target}-gate"
        encoder = self.encoder
        if not self.client.index_exists(name):  # a resumed run rewrites the same documents by id
            create_like(self.client, facts.concrete, name, encoder)
        prepare_index(self.client, name, encoder)
        targets = {q.doc_id: q for q in data["queries"]}
        others = _sources(self.client, facts.concrete, data["distractor_ids"], facts.all_text_fields)
        docs = [{"_id": q.doc_id, **_nest(q.fields)} for q in targets.values()]
        docs += [{"_id": d, **src} for d, src in others.items() if d not in targets]
        summary = ingest(
            docs,
            self.client,
            name,
            encoder,
            fields=FieldMapping(text_fields=tuple(facts.all_text_fields)),
            prepare=False,
            progress=self.o["progress"],
        )
        return {"index": name, "documents": summary.indexed, "dead_lettered": summary.dead_lettered}

    def _measure(self) -> dict[str, Any]:
        from colsplade.evaluation import Plan, evaluate_plans
        from colsplade.query import SearchClient

        facts, data = self.facts, self._holdout_data()
        encoder = self.encoder
        plans = [Plan("bm25", None), *(Plan(p, {"plan": p}) for p in GATE_PLANS)]
        fields = facts.all_text_fields
        gate_index = self.state.get("gate_index")["index"]
        gate = SearchClient(gate_index, encoder, client=self.client, text_fields=fields)
        gate_queries_ = {q.query_id: q.query for q in data["queries"]}
        gate_qrels = {q.query_id: {q.doc_id: 1} for q in data["queries"]}
        pseudo = evaluate_plans(
            self.client, gate, gate_queries_, gate_qrels, plans, bm25_index=gate_index, bm25_fields=fields,
            progress=self.o["progress"],
        )  # fmt: skip
        kinds = {q.query_id: q.kind for q in data["queries"]}
        out: dict[str, Any] = {"pseudo": _summarise(pseudo, kinds)}
        judged, texts = self.labels
        if judged:
            search = SearchClient(self.target, encoder, client=self.client, text_fields=fields)
            labelled = evaluate_plans(
                self.client, search, texts, judged, plans, bm25_index=facts.concrete, bm25_fields=fields,
                progress=self.o["progress"],
            )  # fmt: skip
            out["qrels"] = _summarise(labelled, {})
        (self.work / "measure.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
        return {"plans": len(plans), "gate_queries": len(gate_queries_), "qrels_queries": len(judged)}

    def _decide(self) -> dict[str, Any]:
        o, facts = self.o, self.facts
        measured = json.loads((self.work / "measure.json").read_text(encoding="utf-8"))
        gate = choose(measured["pseudo"]["gains"], force=False)
        by = o["decide_by"] if o["decide_by"] != "auto" else ("qrels" if "qrels" in measured else "pseudo")
        decision = choose(measured[by]["gains"], force=o["force"])
        reencode = self.state.get("reencode")
        if reencode.get("dead_lettered") and not o["force"] and decision["switch"]:
            decision = {**decision, "switch": False,
                        "reason": decision["reason"] + f"; but {reencode['dead_lettered']} document(s) were not "
                        "re-encoded (reencode.dead.jsonl): the alias stays (--force switches anyway)"}  # fmt: skip
        plan = decision["plan"]
        recorded = {
            "search": {"plan": plan, "text_fields": facts.all_text_fields},
            "upgrade": {
                "from": facts.concrete,
                "alias": facts.alias,
                "decided_by": by,
                "reason": decision["reason"],
            },
        }
        meta = merge_meta(self.client.get_mapping(self.target).get("_meta"), {"colsplade": recorded})
        self.client.put_mapping(self.target, {"_meta": meta})
        if decision["switch"]:
            previous = switch_alias(self.client, facts.alias, self.target)
            logger.info(
                "alias %s switched to %s (from %s)", facts.alias, self.target, ", ".join(previous) or "none"
            )
        else:
            logger.warning("alias %s not switched: %s", facts.alias, decision["reason"])
        summary = self._summary(measured, gate, decision, by)
        summary["report"] = str(self.work / "report.md")
        (self.work / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        from colsplade.upgrade._report import write_report

        write_report(summary, self.work)
        return {"plan": plan, "switched": decision["switch"], "decided_by": by}

    def _summary(self, measured: dict, gate: dict, decision: dict, by: str) -> dict[str, Any]:
        stages = self.state.data["stages"]
        seconds = {s: stages.get(s, {}).get("seconds") for s in STAGES[1:-1]}
        total = sum(v for v in seconds.values() if v)
        out: dict[str, Any] = {
            "index": self.facts.name,
            "alias": self.facts.alias,
            "source_index": self.facts.concrete,
            "target_index": self.target,
            "engine": self.client.engine,
            "documents": self.facts.documents,
            "text_fields": self.facts.all_text_fields,
            "analyzers": self.facts.analyzers,
            "seconds": {**seconds, "total": round(total, 1)},
            "train": stages.get("train"),
            "export": stages.get("export"),
            "reencode": stages.get("reencode"),
            "gate": {
                "plan": gate["plan"],
                "switch": gate["switch"],
                "reason": gate["reason"],
                **measured["pseudo"],
            },
            "decision": {**decision, "decided_by": by},
            "switched": decision["switch"],
        }
        if "qrels" in measured:
            q = measured["qrels"]
            out["qrels"] = q
            qdecision = choose(q["gains"])
            gains_pseudo = [measured["pseudo"]["gains"][p]["mean"] for p in GATE_PLANS if p in q["gains"]]
            gains_real = [q["gains"][p]["mean"] for p in GATE_PLANS if p in q["gains"]]
            out["agreement"] = {
                "same_plan": gate["plan"] == qdecision["plan"],
                "same_switch_decision": gate["switch"] == qdecision["switch"],
                "spearman_gain": spearman(gains_pseudo, gains_real),
                "qrels_plan": qdecision["plan"],
                "qrels_switch": qdecision["switch"],
            }
        return out


def _nest(fields: Mapping[str, str]) -> dict[str, Any]:
    """Dotted field names back into nested objects (``{"a.b": x}`` -> ``{"a": {"b": x}}``)."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        node = out
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _summarise(measured: Mapping[str, Any], kinds: Mapping[str, str]) -> dict[str, Any]:
    """Per-plan means and latency, and each plan's paired gain over BM25 in nDCG@10 (overall and by kind)."""
    per_query = measured["per_query"]
    base = per_query["bm25"]
    qids = sorted(base)
    gains: dict[str, dict[str, float]] = {}
    by_kind: dict[str, dict[str, float]] = {}
    for plan, values in per_query.items():
        if plan == "bm25":
            continue
        g = paired_bootstrap([values[q]["ndcg@10"] for q in qids], [base[q]["ndcg@10"] for q in qids])
        gains[plan] = {k: round(v, 4) for k, v in g.items()}
        for kind in sorted(set(kinds.values())):
            sub = [q for q in qids if kinds.get(q) == kind]
            if sub:
                diff = sum(values[q]["ndcg@10"] - base[q]["ndcg@10"] for q in sub) / len(sub)
                by_kind.setdefault(kind, {})[plan] = round(diff, 4)
    plans = {
        name: {
            "ndcg@10": r["ndcg@10"],
            "mrr@10": r["mrr@10"],
            "recall@100": r["recall@100"],
            "p50_ms": r["latency_ms"].get("p50"),
        }
        for name, r in measured["plans"].items()
    }
    out: dict[str, Any] = {"queries": len(qids), "plans": plans, "gains": gains}
    if by_kind:
        out["gains_by_kind"] = by_kind
    return out


# ---------------------------------------------------------------------- after the run


def rollback(index: str, *, client: EngineClient | None = None, settings: Any = None) -> dict[str, Any]:
    """Point alias ``index`` back at the index it read before the upgrade (recorded in the new index's
    ``_meta``), in one atomic request. The upgraded index is kept until :func:`cleanup`."""
    with _engine(client, settings) as client:
        current = alias_indices(client, index)
        if len(current) != 1:
            raise InvalidInputError(f"{index!r} is no alias on one index: nothing to roll back")
        meta = (client.get_mapping(current[0]).get("_meta") or {}).get("colsplade") or {}
        previous = (meta.get("upgrade") or {}).get("from")
        if not previous:
            raise InvalidInputError(
                f"alias {index!r} points to {current[0]!r}, which no colsplade upgrade made: nothing to roll back"
            )
        if not client.index_exists(previous):
            raise InvalidInputError(f"the index before the upgrade, {previous!r}, is gone (cleaned up?)")
        switch_alias(client, index, previous)
        logger.info("alias %s points back to %s; %s is kept until --cleanup", index, previous, current[0])
        return {"alias": index, "now": previous, "was": current[0]}


def cleanup(
    index: str,
    *,
    client: EngineClient | None = None,
    settings: Any = None,
    work_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Delete what an upgrade of alias ``index`` left that the alias does not read: the gate's scratch
    index always; the index before the upgrade when the alias reads the new one; the new one when it
    does not (a gate that kept BM25, or a rollback). The index the alias points to is never deleted."""
    work = Path(work_dir or Path("colsplade-upgrade") / index)
    state = _State(work / "state.json")
    inspect = state.get("inspect")
    if not inspect:
        raise InvalidInputError(f"no upgrade of {index!r} recorded in {work / 'state.json'} (--work-dir)")
    with _engine(client, settings) as client:
        live = set(alias_indices(client, inspect["alias"]))
        if not live and client.index_exists(inspect["concrete"]):
            live = {inspect["concrete"]}  # no alias yet: the team still reads its index by name
        candidates = [inspect["concrete"], inspect["target"], f"{inspect['target']}-gate"]
        deleted = []
        for name in candidates:
            if name not in live and client.index_exists(name):
                client.delete_index(name)
                deleted.append(name)
        logger.info(
            "deleted %s; the alias reads %s", ", ".join(deleted) or "nothing", ", ".join(sorted(live))
        )
        return {"alias": inspect["alias"], "deleted": deleted, "kept": sorted(live)}
