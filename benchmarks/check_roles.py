"""Are colsplade's two roles least-privilege? Drop each action in turn and run the jobs on a secured node.

For every action of ``ingest_role`` (own patterns + ``--source``) and ``search_role`` on OpenSearch, a fresh
pair of users gets the roles with that one action removed, and the jobs run: ingest 10 documents, re-encode
an existing index behind an alias, re-encode that alias into its next version, index stats (eval reports them), hybrid + SPLADE search on the index and
on the alias. An action whose removal breaks nothing is listed under ``unneeded``. Writes
``benchmarks/results/roles.json``: {"engine", "version", "full_roles_ok", "actions": {role: {group:
{action: "needed: <error>" | "unneeded"}}}, "unneeded": [...]}.

    colsplade engine up --engine opensearch --secure --name roles
    python benchmarks/check_roles.py --node roles
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, versions, write_report

from colsplade.config import Settings
from colsplade.engines import connect, ingest_role, put_role, put_user, search_role
from colsplade.ingest import FieldMapping, IterableSource, ingest, reindex
from colsplade.local import node_status
from colsplade.query import SearchClient

WORDS = ["cell", "gene", "protein", "virus", "cancer", "mouse", "brain", "blood"]
Role = Callable[[str], dict[str, Any]]


def _docs() -> list[dict[str, str]]:
    rng = np.random.default_rng(0)
    return [
        {"_id": f"d{i}", "title": " ".join(rng.choice(WORDS, 2)), "text": " ".join(rng.choice(WORDS, 10))}
        for i in range(10)
    ]


def run_jobs(node: Any, admin: Any, encoder: Any, ingest_for: Role, search_for: Role) -> str:
    """``"ok"`` when every job works with these roles, else the first error."""
    ns = "roles-" + uuid.uuid4().hex[:6]
    source = "legacy-" + ns  # outside the ingest role's own pattern ``ns*``
    for doc in _docs():
        admin.index_document(source, doc["_id"], {k: v for k, v in doc.items() if k != "_id"})
    admin.refresh(source)
    password = "Pw-" + uuid.uuid4().hex
    users = {}
    for kind, role in (("ingest", ingest_for(ns)), ("search", search_for(ns))):
        put_role(admin, f"{ns}-{kind}", role)
        put_user(admin, f"{ns}-{kind}", password, [f"{ns}-{kind}"])
        users[kind] = Settings(urls=(node.url,), ca_certs=node.ca_certs).replace(
            username=f"{ns}-{kind}", password=password
        )
    try:
        with connect(users["ingest"]) as client:
            ingest(
                IterableSource(_docs()),
                client,
                f"{ns}-docs",
                encoder,
                fields=FieldMapping(id_field="_id"),
                progress=False,
            )
            reindex(client, source, encoder, alias=f"{ns}-alias", progress=False)
            # the alias's next version, read from its current one (the ingest role reads its own indices)
            reindex(client, f"{ns}-alias", encoder, progress=False)
            client.stats(f"{ns}-docs")
        for index in (f"{ns}-docs", f"{ns}-alias"):
            searcher = SearchClient(index, encoder, settings=users["search"])
            searcher.search("cancer gene", k=3, bm25_fields=["title", "text"])
            searcher.search("cell", k=3)
            searcher.close()
        return "ok"
    except Exception as exc:  # the point is to record which error a missing action causes
        return f"{type(exc).__name__}: {str(exc)[:160]}"
    finally:
        for row in admin.request("GET", "/_cat/indices", params={"format": "json", "h": "index"}):
            if row["index"].startswith(ns) or row["index"] == source:
                admin.delete_index(row["index"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--node", default="default", help="name of the running local secured OpenSearch node")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "roles.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    node = node_status("opensearch", args.node)
    if node is None or not node.secure:
        sys.exit(
            f"no secured local OpenSearch node {args.node!r}: colsplade engine up --engine opensearch --secure --name {args.node}"
        )
    from colsplade.encoders import load_encoder
    from colsplade.testing import make_tiny_model_dir

    encoder = load_encoder(
        make_tiny_model_dir("joint", Path(tempfile.mkdtemp()) / "joint", variants=("int8",)), variant="int8"
    )
    admin = connect(node.settings("admin"))

    def ingest_for(ns: str) -> dict[str, Any]:
        return ingest_role([ns + "*"], source_patterns=["legacy-" + ns], engine="opensearch")

    def search_for(ns: str) -> dict[str, Any]:
        return search_role([ns + "*"], engine="opensearch")

    report: dict[str, Any] = {
        "engine": "opensearch",
        "version": node.version,
        "machine": machine(),
        "versions": versions(),
        "full_roles_ok": run_jobs(node, admin, encoder, ingest_for, search_for) == "ok",
        "actions": {},
        "unneeded": [],
    }
    for name, base in (("colsplade_ingest", ingest_for), ("colsplade_search", search_for)):
        sample = base("x")
        groups: list[tuple[str, int | None]] = [("cluster_permissions", None)]
        groups += [("index_permissions", i) for i in range(len(sample["index_permissions"]))]
        for key, i in groups:
            label = key if i is None else f"index_permissions[{i}]"
            actions = sample[key] if i is None else sample[key][i]["allowed_actions"]
            for action in actions:

                def without(
                    ns: str, base: Role = base, key: str = key, i: int | None = i, action: str = action
                ) -> dict[str, Any]:
                    role = base(ns)
                    (role[key] if i is None else role[key][i]["allowed_actions"]).remove(action)
                    return role

                if name == "colsplade_ingest":
                    outcome = run_jobs(node, admin, encoder, without, search_for)
                else:
                    outcome = run_jobs(node, admin, encoder, ingest_for, without)
                verdict = "unneeded" if outcome == "ok" else f"needed: {outcome}"
                report["actions"].setdefault(name, {}).setdefault(label, {})[action] = verdict
                if outcome == "ok":
                    report["unneeded"].append(f"{name} {label} {action}")
                print(name, label, action, "->", verdict[:100], flush=True)
    admin.close()
    write_report(args.out, report)


if __name__ == "__main__":
    main()
