"""Build the small SciFact sample shipped in colsplade/data/scifact_sample (deterministic).

    colsplade datasets download scifact      # once: the public BEIR SciFact zip, md5-checked
    python benchmarks/make_scifact_sample.py [--data scifact|DIR] [--out DIR]

300 train claims and 50 test claims with every abstract they cite, plus 250 random other abstracts as
distractors; metadata dropped. SciFact: claims CC BY 4.0, abstracts ODC-By 1.0 (see the sample's README).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from colsplade.evaluation import resolve_dataset

#: where the sample ships inside the package
DST = Path(__file__).resolve().parents[1] / "colsplade" / "data" / "scifact_sample"


def qrels(src: Path, split: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with open(src / "qrels" / f"{split}.tsv") as fh:
        next(fh)
        for line in fh:
            qid, did, _ = line.rstrip("\n").split("\t")
            out.setdefault(qid, []).append(did)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="scifact", help="full SciFact: BEIR directory or downloaded name")
    parser.add_argument("--out", default=str(DST), help="where the sample goes [the package's data folder]")
    args = parser.parse_args()
    src, dst = resolve_dataset(args.data), Path(args.out)
    rng = random.Random(13)
    train, test = qrels(src, "train"), qrels(src, "test")
    train_q = sorted(rng.sample(sorted(train), 300))
    test_q = sorted(rng.sample(sorted(test), 50))
    docs = {d for q in train_q for d in train[q]} | {d for q in test_q for d in test[q]}
    corpus = {}
    with open(src / "corpus.jsonl") as fh:
        for line in fh:
            doc = json.loads(line)
            corpus[doc["_id"]] = {"_id": doc["_id"], "title": doc["title"], "text": doc["text"]}
    others = sorted(set(corpus) - docs)
    docs |= set(rng.sample(others, 250))
    dst.joinpath("qrels").mkdir(parents=True, exist_ok=True)
    with open(dst / "corpus.jsonl", "w") as fh:
        for did in sorted(docs, key=int):
            fh.write(json.dumps(corpus[did]) + "\n")
    wanted = set(train_q) | set(test_q)
    with open(src / "queries.jsonl") as qf, open(dst / "queries.jsonl", "w") as fh:
        for line in qf:
            q = json.loads(line)
            if q["_id"] in wanted:
                fh.write(json.dumps({"_id": q["_id"], "text": q["text"]}) + "\n")
    for split, chosen, table in (("train", train_q, train), ("test", test_q, test)):
        with open(dst / "qrels" / f"{split}.tsv", "w") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            for qid in chosen:
                for did in table[qid]:
                    fh.write(f"{qid}\t{did}\t1\n")
    print(f"{len(docs)} documents, {len(train_q)} train and {len(test_q)} test queries -> {dst}")


if __name__ == "__main__":
    main()
