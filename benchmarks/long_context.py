"""How long a document a ModernBERT model serves before chunking pays (results/long_context.json).

    python benchmarks/long_context.py [--lengths 512,1024,2048,4096,8192] [--kinds colbert,splade]

ModernBERT reads 8,192 positions (local attention over a 128-token window in two layers of three, global
attention in the third), where BERT stops at 512. Whether a long document should go through in one piece
or be cut into passages (``--long-docs chunk``) depends on what one piece costs, so this measures it on a
model of the real size with random weights (the cost does not depend on the weights):

* ``modernbert-base``: the shape of GTE-ModernColBERT-v1 (hidden 768, 22 layers, 12 heads, MLP 1152,
  vocabulary 50,368, 8,192 positions); ``colbert`` projects to 128 dimensions, ``splade`` keeps the MLM
  head (the Ettin / ModernBERT SPLADE models). Built with transformers, turned into a colsplade model
  directory with ``init_model_dir``, exported with ``export_model_dir`` (fp32 + int8, parity-checked).
* ``bert-base`` (hidden 768, 12 layers, vocabulary 30,522, 512 positions), ColBERT only, at 512 tokens:
  the cost a team pays today per 512-token passage.

Per kind, variant and length, in a fresh process:
the encoder's seconds for one document of exactly that many tokens (median of ``--reps``, one run at the
longest lengths), ms per token, and the peak resident memory. ``parity``: the fp32 ONNX encoder against
the torch model at each length (max |diff| of the token vectors, or of the SPLADE weights, and whether
the non-zero terms are equal): the graph's sliding-window mask must follow the length, not the export's
sample. Memory: the resident size added by the encode (ONNX Runtime's arena keeps
its peak). ``limit``: the longest length whose parity holds and whose int8 cost per token stays within
``--max-cost-ratio`` of the 512-token cost (beyond it, chunking into passages is cheaper by that much).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_report

SHAPES: dict[str, dict[str, Any]] = {
    "modernbert-base": {
        "arch": "modernbert",
        "hidden": 768,
        "layers": 22,
        "heads": 12,
        "intermediate": 1152,
        "vocab": 50368,
        "positions": 8192,
    },
    "bert-base": {
        "arch": "bert",
        "hidden": 768,
        "layers": 12,
        "heads": 12,
        "intermediate": 3072,
        "vocab": 30522,
        "positions": 512,
    },
}


def build_base(shape: str, out: Path, *, mlm: bool) -> Path:
    """A random backbone of ``shape`` on the tiny WordPiece tokenizer (its ids all exist in the vocabulary)."""
    from colsplade.testing import make_tiny_base_model

    spec = SHAPES[shape]
    make_tiny_base_model(
        out,
        arch=spec["arch"],
        mlm=mlm,
        hidden=spec["hidden"],
        layers=spec["layers"],
        heads=spec["heads"],
        intermediate=spec["intermediate"],
        max_positions=spec["positions"],
        vocab_size=spec["vocab"],
        local_attention=128,
        global_attn_every_n_layers=3,
    )
    tokenizer_config = out / "tokenizer_config.json"
    data = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    data["model_max_length"] = spec["positions"]
    tokenizer_config.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return out


def build_model_dir(shape: str, kind: str, work: Path) -> tuple[Path, float]:
    """Model directory of ``kind`` on a random ``shape`` backbone, exported (fp32 + int8); seconds taken."""
    from colsplade.onnx_export import export_model_dir
    from colsplade.training import init_model_dir

    out = work / f"{shape}-{kind}"
    if (out / "onnx" / "model-int8.onnx").is_file():
        return out, 0.0
    start = time.perf_counter()
    base = build_base(shape, work / f".{shape}-{kind}-base", mlm=kind == "splade")
    positions = SHAPES[shape]["positions"]
    init_model_dir(kind, out, base=str(base), dim=128, max_query_length=32, max_doc_length=positions)
    # Random weights of this depth put the int8 ranking check near its threshold; the figures here are
    # costs, and the fp32 parity is measured below at every length.
    report = export_model_dir(out, variants=("int8",), raise_on_failure=False)
    (out / "export-summary.txt").write_text(report.summary(), encoding="utf-8")
    shutil.rmtree(base, ignore_errors=True)
    return out, time.perf_counter() - start


def document(model_dir: Path, tokens: int) -> str:
    """A text of tiny-vocabulary words that the model directory's tokenizer reads as exactly ``tokens`` ids."""
    from colsplade.encoders import TextTokenizer, read_model_config
    from colsplade.testing import TINY_WORDS

    tokenizer = TextTokenizer(model_dir, read_model_config(model_dir))
    rng = random.Random(tokens)
    words = [rng.choice(TINY_WORDS) for _ in range(tokens)]
    overhead = len(tokenizer.tokenize(["the"], is_query=False).ids[0]) - 1
    text = " ".join(words[: tokens - overhead])
    got = len(tokenizer.tokenize([text], is_query=False).ids[0])
    if got != tokens:
        raise RuntimeError(f"built a {got}-token document, wanted {tokens}")
    return text


def child(model_dir: str, variant: str, tokens: int, reps: int) -> dict[str, Any]:
    """Time one document of ``tokens`` ids, in this (fresh) process; peak memory from ru_maxrss."""
    from colsplade.encoders import load_encoder

    encoder = load_encoder(model_dir, variant=variant)
    text = document(Path(model_dir), tokens)
    encoder.encode_documents(["the cells of the immune response"])  # session warm-up
    before = _rss_mib()
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        encoder.encode_documents([text])
        seconds.append(time.perf_counter() - start)
    # ONNX Runtime's arena keeps the run's peak allocation, so the resident size after the runs is the
    # encode's peak (ru_maxrss would not do: Linux carries it over from the parent through exec).
    after = _rss_mib()
    median = statistics.median(seconds)
    return {
        "tokens": tokens,
        "reps": reps,
        "seconds": round(median, 3),
        "ms_per_token": round(1000 * median / tokens, 3),
        "rss_after_mib": round(after),
        "encode_extra_mib": round(after - before),
    }


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(model_dir: Path, variant: str, tokens: int, reps: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(model_dir), variant, str(tokens), str(reps)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return {"tokens": tokens, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parity(model_dir: Path, lengths: list[int]) -> list[dict[str, Any]]:
    """fp32 ONNX against torch at each length, one document each."""
    import numpy as np

    from colsplade.encoders import load_encoder
    from colsplade.training import load_model_dir

    model = load_model_dir(model_dir)
    encoder = load_encoder(model_dir, variant="fp32")
    rows = []
    for tokens in lengths:
        text = document(model_dir, tokens)
        kind = model.kind
        ref = model.encode([text], is_query=False)[kind][0]
        got = encoder.encode_documents([text])[0]
        if kind == "colbert":
            same = ref.shape == got.shape
            diff = float(np.abs(ref - got).max()) if same else float("inf")
            rows.append({"tokens": tokens, "max_abs_diff": diff, "vectors": int(got.shape[0])})
        else:
            same = set(ref) == set(got)
            diff = max((abs(ref[k] - got.get(k, 0.0)) for k in ref), default=0.0)
            rows.append({"tokens": tokens, "max_abs_diff": float(diff), "nonzero_terms_equal": same})
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model_dir, variant, tokens, reps = sys.argv[2:6]
        print(json.dumps(child(model_dir, variant, int(tokens), int(reps))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="512,1024,2048,4096,8192")
    parser.add_argument("--kinds", default="colbert,splade")
    parser.add_argument("--variants", default="int8,fp32")
    parser.add_argument("--reps", type=int, default=3, help="runs per length up to 2,048 tokens (1 above)")
    parser.add_argument("--max-cost-ratio", type=float, default=2.0)
    parser.add_argument("--workdir", default=None, help="keep the built models here (reused if present)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "long_context.json"))
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    kinds = args.kinds.split(",")
    variants = args.variants.split(",")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="colsplade-long-"))
    work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    report: dict[str, Any] = {
        "settings": {
            "shapes": SHAPES,
            "lengths": lengths,
            "reps": args.reps,
            "max_cost_ratio": args.max_cost_ratio,
            "threads": "ONNX Runtime default (one per core)",
            "load_average_at_start": load_start,
        },
        "models": {},
    }
    try:
        for kind in kinds:
            model_dir, seconds = build_model_dir("modernbert-base", kind, work)
            entry: dict[str, Any] = {"build_and_export_seconds": round(seconds, 1), "variants": {}}
            for variant in variants:
                entry["variants"][variant] = [
                    measure(model_dir, variant, n, args.reps if n <= 2048 else 1) for n in lengths
                ]
                print(kind, variant, entry["variants"][variant], flush=True)
            entry["parity"] = parity(model_dir, lengths)
            rows = entry["variants"].get("int8") or next(iter(entry["variants"].values()))
            base_cost = next((r["ms_per_token"] for r in rows if r.get("tokens") == 512), None)
            served = [
                r["tokens"]
                for r, p in zip(rows, entry["parity"], strict=True)
                if "error" not in r
                and p["max_abs_diff"] <= 1e-3
                and p.get("nonzero_terms_equal", True)
                and base_cost
                and r["ms_per_token"] <= args.max_cost_ratio * base_cost
            ]
            entry["limit"] = max(served) if served else None
            report["models"][f"modernbert-base-{kind}"] = entry
        if "colbert" in kinds:
            model_dir, seconds = build_model_dir("bert-base", "colbert", work)
            report["models"]["bert-base-colbert"] = {
                "build_and_export_seconds": round(seconds, 1),
                "variants": {v: [measure(model_dir, v, n, args.reps) for n in (256, 512)] for v in variants},
            }
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    report["settings"]["load_average_at_end"] = os.getloadavg()
    write_report(args.out, report)


if __name__ == "__main__":
    main()
