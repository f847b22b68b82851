"""The command line without an engine: registration, shared flags, the exit-status table, entry points.

Engine calls are monkeypatched; the commands against real nodes are in tests/integration.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from colsplade.cli import EXIT_CODES, exit_code_for, main
from colsplade.cli._options import CONNECTION_FLAGS
from colsplade.exceptions import (
    ColspladeError,
    EngineAuthenticationError,
    EngineAuthorizationError,
    EngineCertificateError,
    EngineRefusedError,
    EngineStartError,
    EngineUnreachableError,
    InvalidInputError,
    MissingExtraError,
    ModelDirectoryError,
    ModelVersionMismatchError,
)

#: Every command README documents (and the new ``datasets download``), as argument paths.
COMMANDS = [
    ("engine", "up"),
    ("engine", "down"),
    ("engine", "status"),
    ("index", "create"),
    ("index", "info"),
    ("index", "delete"),
    ("ingest",),
    ("search",),
    ("encode",),
    ("export",),
    ("init-model",),
    ("import-model",),
    ("train",),
    ("eval",),
    ("compare",),
    ("quickstart",),
    ("datasets", "download"),
]

#: The commands that talk to an engine: each takes the same connection flags as the group.
ENGINE_COMMANDS = [
    ("search",),
    ("ingest",),
    ("eval",),
    ("train",),
    ("index", "create"),
    ("index", "info"),
    ("index", "delete"),
    ("quickstart",),
]


def _run(args: list[str]):
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_is_registered(path: tuple[str, ...]) -> None:
    result = _run([*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: main {' '.join(path)}" in result.output


@pytest.mark.parametrize("path", ENGINE_COMMANDS, ids=" ".join)
def test_engine_commands_take_the_connection_flags(path: tuple[str, ...]) -> None:
    shown = _run([*path, "--help"]).output
    group = _run(["--help"]).output
    for flag in CONNECTION_FLAGS.values():
        assert flag in shown, f"{' '.join(path)} does not take {flag}"
        assert flag in group


class _Stop(Exception):
    pass


@pytest.fixture
def seen_settings(monkeypatch: pytest.MonkeyPatch) -> list:
    """connect_default / resolve_settings record the settings they get, then fail as unreachable."""
    import colsplade.engines

    seen: list = []

    def fake(settings=None, *, autostart=False):
        seen.append(settings)
        raise EngineUnreachableError("http://fake:1", "test")

    monkeypatch.setattr(colsplade.engines, "connect_default", fake)
    monkeypatch.setattr(colsplade.engines, "resolve_settings", fake)
    for var in ("COLSPLADE_URL", "COLSPLADE_ENGINE", "COLSPLADE_TIMEOUT", "COLSPLADE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    return seen


def test_connection_flags_on_the_command_beat_the_group(seen_settings: list) -> None:
    result = _run(
        ["--url", "http://group:9200", "--timeout", "7", "search", "q", "--url", "http://a:1,http://b:2"]
    )
    assert result.exit_code == 4, result.output
    (settings,) = seen_settings
    assert settings.urls == ("http://a:1", "http://b:2") and settings.request_timeout == 7.0
    _run(["--url", "http://group:9200", "index", "info", "x", "--engine", "opensearch", "--no-verify-certs"])
    assert seen_settings[1].urls == ("http://group:9200",)
    assert seen_settings[1].engine == "opensearch" and seen_settings[1].verify_certs is False


def test_eval_and_quickstart_start_the_local_node_of_engine(
    seen_settings: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import colsplade.encoders

    monkeypatch.setattr(colsplade.encoders, "load_joint_encoder", lambda *a, **k: object())
    model = str(tmp_path)
    base = ["eval", "--dataset", str(tmp_path), "--model", model]
    for args, engine, urls in (
        (base, "elasticsearch", ()),
        ([*base, "--engine", "opensearch"], "opensearch", ()),
        ([*base, "--url", "http://es:9200"], None, ("http://es:9200",)),  # detected from the URL
        (["--engine", "opensearch", *base], "opensearch", ()),
    ):
        seen_settings.clear()
        result = _run(args)
        assert result.exit_code == 4, result.output
        assert (seen_settings[0].engine, seen_settings[0].urls) == (engine, urls), args


def test_quickstart_takes_the_connection_flags(seen_settings: list, tmp_path: Path) -> None:
    result = _run(["quickstart", "--model", str(tmp_path), "--url", "http://qs:9200", "--username", "u"])
    assert result.exit_code == 4, result.output
    assert seen_settings[0].urls == ("http://qs:9200",) and seen_settings[0].username == "u"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ColspladeError("something else"), 1),
        (InvalidInputError("bad argument"), 2),
        (ModelDirectoryError("no colsplade.json in the model directory"), 2),
        (EngineUnreachableError("http://127.0.0.1:9", "connection refused"), 4),
        (EngineRefusedError(404, "index_not_found_exception", "no such index [x]"), 5),
        (EngineStartError("java not found", log_file="node.log"), 6),
        (ModelVersionMismatchError("docs", "a@1", "b@2"), 7),
        (MissingExtraError("torch", "train"), 8),
        (EngineAuthenticationError(401, "security_exception", "unable to authenticate user [u]"), 9),
        (EngineAuthorizationError(403, "security_exception", "no permissions for [indices:admin/create]"), 9),
        (EngineCertificateError("https://127.0.0.1:9200", "unable to get local issuer certificate"), 4),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_each_error_class_has_its_exit_status(
    error: ColspladeError, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import colsplade.engines

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(colsplade.engines, "connect_default", fail)
    result = _run(["--url", "http://127.0.0.1:9200", "index", "info", "docs"])
    assert result.exit_code == code == exit_code_for(error)
    assert f"error: {error}" in result.output and "Traceback" not in result.output


def test_usage_errors_exit_2() -> None:
    assert _run(["search"]).exit_code == 2  # QUERY missing
    assert _run(["no-such-command"]).exit_code == 2
    assert _run(["index", "create", "x", "--element-type", "int3"]).exit_code == 2


def test_the_table_documents_every_code_once() -> None:
    codes = [row.code for row in EXIT_CODES]
    assert codes == sorted(set(codes)) == list(range(len(codes)))
    shown = _run(["--help"]).output
    assert "Exit status:" in shown
    for row in EXIT_CODES:
        assert f"{row.code}  {row.meaning}" in shown
    import colsplade.cli

    for row in EXIT_CODES:  # the module docstring has the same table
        assert f"\n{row.code}     " in colsplade.cli.__doc__


def test_partial_ingest_exits_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import colsplade.encoders
    import colsplade.engines
    import colsplade.ingest
    from colsplade.ingest import IngestSummary

    captured = {}

    @contextlib.contextmanager
    def client(settings, autostart=False):
        captured["settings"] = settings
        yield object()

    def ingest(source, client, index, encoder, **options):
        captured.update(index=index, **options)
        return IngestSummary(index=index, read=3, indexed=2, dead_lettered=1)

    monkeypatch.setattr(colsplade.encoders, "as_encoder", lambda *a, **k: object())
    monkeypatch.setattr(colsplade.engines, "connect_default", client)
    monkeypatch.setattr(colsplade.ingest, "ingest", ingest)
    result = _run(
        ["ingest", "docs.jsonl", "--index", "d", "--model", str(tmp_path), "--url", "http://i:9200"]
    )
    assert result.exit_code == 3 == EXIT_CODES[3].code, result.output
    assert "dead-lettered" in EXIT_CODES[3].meaning and "2 indexed, 1 dead-lettered" in result.output
    assert captured["index"] == "d" and captured["settings"].urls == ("http://i:9200",)


def _fake_ingest_run(monkeypatch: pytest.MonkeyPatch) -> dict:
    """``colsplade ingest`` with no model, no engine: ingest / reindex record what they were handed."""
    import colsplade.encoders
    import colsplade.engines
    import colsplade.ingest
    from colsplade.ingest import IngestSummary

    captured: dict = {}

    @contextlib.contextmanager
    def client(settings, autostart=False):
        yield object()

    def run(name):
        def call(*args, **options):
            captured.update(call=name, args=args, **options)
            return IngestSummary(index="i", read=1, indexed=1)

        return call

    monkeypatch.setattr(colsplade.encoders, "as_encoder", lambda *a, **k: "encoder")
    monkeypatch.setattr(colsplade.engines, "connect_default", client)
    monkeypatch.setattr(colsplade.ingest, "ingest", run("ingest"))
    monkeypatch.setattr(colsplade.ingest, "reindex", run("reindex"))
    return captured


def test_ingest_from_index_reencodes_behind_the_alias(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    captured = _fake_ingest_run(monkeypatch)
    args = ["ingest", "docs", "--from-index", "--target", "docs-v3", "--model", str(tmp_path)]
    result = _run([*args, "--no-copy", "--bulk-mb", "2"])
    assert result.exit_code == 0, result.output
    assert captured["call"] == "reindex" and captured["args"][1:] == ("docs", "encoder")
    assert captured["alias"] is None and captured["target"] == "docs-v3" and not captured["in_place"]
    assert captured["dead_letter"] == "docs.dead-letter.jsonl"
    assert captured["fields"].copy_fields == () and captured["batching"].bulk_bytes == 2 * 1024 * 1024


def test_ingest_of_a_kafka_url_reads_a_consumer_group(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from colsplade.ingest import KafkaSource

    captured = _fake_ingest_run(monkeypatch)
    url = "kafka://b:9092/docs"
    args = ["ingest", url, "--group", "g", "--index", "d", "--id-field", "doc_id", "-X", "acks=all"]
    result = _run([*args, "--model", str(tmp_path)])
    assert result.exit_code == 0, result.output
    source, _client, index, encoder = captured["args"]
    assert captured["call"] == "ingest" and (index, encoder) == ("d", "encoder")
    assert isinstance(source, KafkaSource) and source.group == "g" and source.config == {"acks": "all"}
    assert not source.key_as_id  # --id-field: the id comes from the document, not the message key
    assert captured["dead_letter"] == "d.dead-letter.jsonl"


def test_ingest_without_a_model_says_how_to_name_one(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_ingest_run(monkeypatch)
    monkeypatch.delenv("COLSPLADE_MODEL", raising=False)
    result = _run(["ingest", "docs.jsonl", "--index", "d"])
    assert result.exit_code != 0 and "--model DIR" in result.output, result.output


def test_train_hands_every_connection_flag_to_the_miner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    training = pytest.importorskip("colsplade.training")
    seen = []

    def train(config, *, settings=None):
        seen.append((config, settings))
        raise _Stop

    monkeypatch.setattr(training, "train", train)
    args = ["train", "colbert", "--out", str(tmp_path / "m"), "--negatives", "none", "--url", "http://t:9200"]
    result = _run([*args, "--api-key", "k", "--timeout", "7"])
    assert isinstance(result.exception, _Stop), result.output
    config, settings = seen[0]
    assert settings.urls == ("http://t:9200",) and settings.api_key.reveal() == "k"
    assert settings.request_timeout == 7
    # the credentials travel as settings, never in the training config saved with the model
    assert config.engine_url is None and "k" not in vars(config).values()
    _run(["--url", "http://g:9200", *args[:-2]])
    assert seen[1][1].urls == ("http://g:9200",)


def test_datasets_download_prints_the_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import colsplade.evaluation

    calls = []

    def download_dataset(name, *, cache_dir=None, url=None):
        calls.append((name, cache_dir, url))
        if name == "nope":
            raise InvalidInputError("unknown dataset 'nope'")
        return tmp_path / name

    monkeypatch.setattr(colsplade.evaluation, "download_dataset", download_dataset, raising=False)
    result = _run(
        ["datasets", "download", "scifact", "--cache-dir", str(tmp_path), "--url", "http://m/s.zip"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "scifact")
    assert calls == [("scifact", str(tmp_path), "http://m/s.zip")]
    assert _run(["datasets", "download", "scifact"]).exit_code == 0 and calls[-1] == ("scifact", None, None)
    bad = _run(["datasets", "download", "nope"])
    assert bad.exit_code == 2 and "error: unknown dataset 'nope'" in bad.output


def test_help_imports_no_heavy_module() -> None:
    """`colsplade --help` and every command's --help stay fast: no torch, onnxruntime or engine client."""
    paths = [list(p) for p in COMMANDS]
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from colsplade.cli import main\n"
        f"for path in [[], *{paths!r}]:\n"
        "    result = CliRunner().invoke(main, [*path, '--help'])\n"
        "    assert result.exit_code == 0, (path, result.output)\n"
        "heavy = ('torch', 'transformers', 'onnxruntime', 'onnx', 'numpy', 'tokenizers', 'elasticsearch',\n"
        "         'opensearchpy')\n"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"--help imported {done.stdout.strip()}"


@pytest.mark.parametrize("module", ["colsplade", "colsplade.cli"])
def test_python_m_runs_the_command_line(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: colsplade [OPTIONS] COMMAND")
    assert "quickstart" in done.stdout and "datasets" in done.stdout and "Exit status" in done.stdout
    version = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "version" in version.stdout


def test_the_group_is_the_console_script() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "colsplade"]
    assert script.value == "colsplade.cli:main"
    assert isinstance(script.load(), click.Group) and script.load() is main
