"""Build the small SciFact sample shipped in colsplade/data/scifact_sample (deterministic).

    python benchmarks/make_scifact_sample.py

300 train claims and 50 test claims with every abstract they cite, plus 250 random other abstracts as
distractors; metadata dropped. SciFact: claims CC BY 4.0, abstracts ODC-By 1.0 (see the sample's README).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SRC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"
DST = Path(__file__).resolve().parents[1] / "colsplade" / "data" / "scifact_sample"


def qrels(split: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(SRC / "qrels" / f"{split}.tsv") as fh:
        next(fh)
        for line in fh:
            qid, did, _ = line.rstrip("\n").split("\t")
            out.setdefault(qid, []).append(did)
    return out


def main() -> None:
    rng = random.Random(13)
    train, test = qrels("train"), qrels("test")
    train_q = sorted(rng.sample(sorted(train), 300))
    test_q = sorted(rng.sample(sorted(test), 50))
    docs = {d for q in train_q for d in train[q]} | {d for q in test_q for d in test[q]}
    corpus = {}
    with open(SRC / "corpus.jsonl") as fh:
        for line in fh:
            doc = json.loads(line)
            corpus[doc["_id"]] = {"_id": doc["_id"], "title": doc["title"], "text": doc["text"]}
    others = sorted(set(corpus) - docs)
    docs |= set(rng.sample(others, 250))
    DST.joinpath("qrels").mkdir(parents=True, exist_ok=True)
    with open(DST / "corpus.jsonl", "w") as fh:
        for did in sorted(docs, key=int):
            fh.write(json.dumps(corpus[did]) + "\n")
    wanted = set(train_q) | set(test_q)
    with open(SRC / "queries.jsonl") as src, open(DST / "queries.jsonl", "w") as fh:
        for line in src:
            q = json.loads(line)
            if q["_id"] in wanted:
                fh.write(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n")
    for split, chosen, table in (("train", train_q, train), ("test", test_q, test)):
        with open(DST / "qrels" / f"{split}.tsv", "w") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for qid in chosen:
                for did in table[qid]:
                    fh.write(f"{qid}\t{did}\t1\n")
    print(f"{len(docs)} documents, {len(train_q)} train and {len(test_q)} test queries -> {DST}")


if __name__ == "__main__":
    main()
