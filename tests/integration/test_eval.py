"""`colsplade eval` / `compare` on a real engine with the shipped SciFact sample and a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import colsplade
from colsplade.cli import main

SAMPLE = Path(colsplade.__file__).parent / "data" / "scifact_sample"


def test_eval_writes_table_plot_and_compares(engine, engine_index, tmp_path, tiny_joint_model):
    model = tiny_joint_model
    url = engine.settings.urls[0]
    args = [
        "--url",
        url,
        "eval",
        "--dataset",
        str(SAMPLE),
        "--model",
        str(model),
        "--variant",
        "fp32",
        "--index",
        engine_index,
        "--max-queries",
        "8",
        "--window",
        "20",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    result_file = tmp_path / f"eval-scifact_sample-{engine.engine}.json"
    result = json.loads(result_file.read_text())
    assert result["queries"] == 8 and result["ingest"]["reused"] is False
    assert result["index_size"]["documents"] == 559
    # the default layout is the compact token store: the plans that need nested vectors say why they were skipped
    expected = {"bm25", "splade", "splade+colbert(client)", "bm25+colbert", "hybrid(bm25+splade)+colbert"}
    expected |= {"bm25+colbert(fused)", "bm25+colbert(rrf)", "splade+colbert(fused)"}
    assert expected <= set(result["plans"])
    # the report names the plan SearchClient runs when no plan is given, and marks it in the table
    assert result["default_plan"] == "bm25+colbert(fused)" == result["default_plan_result"]
    assert "**bm25+colbert(fused)** (default)" in first.output
    # the BM25 it is compared to is named: english where the engine has the language analysers
    expected_analyzer = "english" if engine.capabilities().language_analyzers else "standard"
    assert result["bm25_analyzer"] == expected_analyzer == result["ingest"]["analyzer"]
    assert f"BM25 analyser: {expected_analyzer}" in first.output
    assert "nested" in result["skipped"]["colbert-ann"]
    assert "nested float token vectors" in result["skipped"]["splade+colbert(engine)"]
    for plan in result["plans"].values():
        assert 0.0 <= plan["ndcg@10"] <= 1.0 and plan["latency_ms"]["n"] == 8
    assert (tmp_path / f"eval-scifact_sample-{engine.engine}.png").stat().st_size > 1000
    assert "| plan | nDCG@10" in first.output

    second = CliRunner().invoke(
        main, [*args[:-3], "--out", str(tmp_path / "b"), "--no-progress", "--plan", "bm25"]
    )
    assert second.exit_code == 0, second.output
    other = tmp_path / "b" / result_file.name
    assert json.loads(other.read_text())["ingest"]["reused"] is True
    compared = CliRunner().invoke(main, ["compare", str(result_file), str(other)])
    assert compared.exit_code == 0 and "| bm25 |" in compared.output
    bad = CliRunner().invoke(main, [*args[:-3], "--out", str(tmp_path / "c"), "--plan", "nope"])
    assert bad.exit_code == 2 and "unknown plan" in bad.output


def test_eval_a_model_pair_with_the_fused_plan(engine, engine_index, tmp_path, tmp_path_factory):
    from colsplade.testing import make_tiny_model_dir

    root = tmp_path_factory.mktemp("pair")
    splade = make_tiny_model_dir("splade", root / "splade", variants=())
    colbert = make_tiny_model_dir("colbert", root / "colbert", variants=())
    base = ["--url", engine.settings.urls[0], "eval", "--dataset", str(SAMPLE), "--variant", "fp32"]
    args = [
        *base, "--splade-model", str(splade), "--colbert-model", str(colbert), "--index", engine_index,
        "--max-queries", "5", "--window", "20", "--out", str(tmp_path), "--no-progress",
        "--first-stage-weight", "0.3", "--plan", "splade", "--plan", "splade+colbert(weighted)",
        "--plan", "splade+colbert(client)",
    ]  # fmt: skip
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    result = json.loads((tmp_path / f"eval-scifact_sample-{engine.engine}.json").read_text())
    assert set(result["plans"]) == {"splade", "splade+colbert(weighted)", "splade+colbert(client)"}
    # the default plan was not among those run: named, not matched
    assert result["default_plan"] == "bm25+colbert(fused)" and result["default_plan_result"] is None
    assert result["model"]["name"].count("+") == 1, "the index records the pair's identity"
    assert result["index_size"]["documents"] == 559
    both = CliRunner().invoke(main, [*base, "--model", str(splade), "--splade-model", str(splade)])
    assert both.exit_code == 2 and "--splade-model and --colbert-model" in both.output
