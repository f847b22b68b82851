"""README's main job on both engines (with a tiny model; the quick model's training is the trainer's tests)."""

from click.testing import CliRunner

from colsplade.cli import main


def test_quickstart_answers_with_an_explanation(engine, engine_index, tiny_joint_model):
    model, url = str(tiny_joint_model), engine.settings.urls[0]
    args = ["--url", url, "quickstart", "--model", model, "--index", engine_index, "--no-progress"]
    first = CliRunner().invoke(main, [*args, "--query", "cancer cells in mice"])
    assert first.exit_code == 0, first.output
    assert "query: cancer cells in mice" in first.output
    assert "1. [" in first.output and "why the top hit matched" in first.output and "MaxSim" in first.output
    assert engine.count(engine_index) == 559
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "already holds the sample" in again.output
