"""The CLI against real nodes: index create / info / delete, and clear errors."""

import json

from click.testing import CliRunner

from colsplade.cli import main


def test_index_commands(engine, engine_index):
    url = engine.settings.urls[0]
    runner = CliRunner()
    created = runner.invoke(main, ["--url", url, "index", "create", engine_index, "--dim", "16"])
    assert created.exit_code == 0, created.output
    assert f"created {engine_index} on {engine.engine}" in created.output
    info = runner.invoke(main, ["--url", url, "index", "info", engine_index])
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["spec"]["colbert_dim"] == 16
    again = runner.invoke(main, ["--url", url, "index", "create", engine_index])
    assert again.exit_code == 2 and "already exists" in again.output
    deleted = runner.invoke(main, ["--url", url, "index", "delete", engine_index, "--yes"])
    assert deleted.exit_code == 0 and "deleted" in deleted.output
    missing = runner.invoke(main, ["--url", url, "index", "delete", engine_index, "--yes"])
    assert missing.exit_code == 5 and "index_not_found_exception" in missing.output  # engine refused


def test_unreachable_engine_is_one_clear_line():
    result = CliRunner().invoke(
        main, ["--url", "http://127.0.0.1:9", "--engine", "opensearch", "index", "info", "x"]
    )
    assert result.exit_code == 4  # engine unreachable
    assert "cannot reach the engine at http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output
