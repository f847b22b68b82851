"""Local node management: bad input gives one clear error naming the cause (and the log file)."""

from __future__ import annotations

import socket

import pytest

from colsplade.exceptions import EngineStartError, InvalidInputError
from colsplade.local import _distribution, find_java, install_distribution, node_status, start_node, stop_node
from colsplade.local._process import pid_alive


def test_unknown_engine_and_bad_version():
    with pytest.raises(InvalidInputError, match="unknown engine 'solr'"):
        start_node("solr")
    with pytest.raises(InvalidInputError, match="invalid elasticsearch version"):
        start_node("elasticsearch", "latest")


def test_port_taken(tmp_path, monkeypatch):
    monkeypatch.setenv("COLSPLADE_ENGINES_DIR", str(tmp_path))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(EngineStartError, match=f"port {port} on 127.0.0.1 is already in use"):
            start_node("opensearch", port=port)


def test_java_missing_or_too_old(monkeypatch):
    monkeypatch.setattr(_distribution, "_java_candidates", lambda: [])
    with pytest.raises(EngineStartError, match="Java 17\\+ is needed and was not found"):
        find_java(17)
    monkeypatch.undo()
    with pytest.raises(EngineStartError, match="Java 99\\+ is needed"):
        find_java(99)


def test_mvn_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("COLSPLADE_ENGINES_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineStartError, match="Maven \\(mvn\\) is needed"):
        install_distribution("elasticsearch", "8.19.21")


@pytest.mark.slow
def test_artifact_not_served(tmp_path, monkeypatch):
    monkeypatch.setenv("COLSPLADE_ENGINES_DIR", str(tmp_path))
    with pytest.raises(
        EngineStartError,
        match=r"Maven could not fetch org\.elasticsearch\.distribution\.integ-test-zip:elasticsearch:8\.0\.99",
    ):
        install_distribution("elasticsearch", "8.0.99")


@pytest.mark.slow
def test_node_that_fails_to_start_names_its_log(tmp_path):
    # An invalid heap size makes the JVM exit at once: the error must say so and name the log file.
    with pytest.raises(EngineStartError) as info:
        start_node("opensearch", name="broken-heap", heap="1zz", ephemeral=True, timeout=120)
    assert info.value.log_file and info.value.log_file.endswith("console.log")
    assert "exited with code" in str(info.value)
    assert node_status("opensearch", "broken-heap") is None


@pytest.mark.slow
def test_up_status_down_cycle():
    node = start_node("opensearch", name="cycle", ephemeral=True)
    try:
        assert node.is_running()
        assert node_status("opensearch", "cycle").pid == node.pid
        # A second start with the same name reuses the running node.
        assert start_node("opensearch", name="cycle").pid == node.pid
    finally:
        assert stop_node("opensearch", "cycle")
    assert node_status("opensearch", "cycle") is None
    assert not pid_alive(node.pid)
    assert not stop_node("opensearch", "cycle")
