"""The package boundaries: each subpackage's ``__all__`` is its whole public face, and no subpackage
depends on itself through another.

- every ``__all__`` entry resolves, and ``__all__`` lists each name once;
- code in one subpackage imports another subpackage only through its ``__init__`` (never from a
  ``colsplade.x._private`` module), and only names in that ``__all__``; so what other packages need is
  public, documented and kept stable;
- the graph of imports between subpackages (module-level and function-level imports alike) has no
  cycle; and each subpackage imports on its own in a fresh interpreter.

The import checks read the source (``ast``), so they need neither torch nor an engine.
"""

from __future__ import annotations

import ast
import importlib
import itertools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import colsplade

PACKAGE_DIR = Path(colsplade.__file__).resolve().parent
SUBPACKAGES = sorted(
    p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file() and p.name != "__pycache__"
)
#: Subpackages that need the [train] extra (torch) to import.
NEEDS_TORCH = {"training", "onnx_export"}
#: The command line (``python -m colsplade`` included): its modules import everything, nothing imports them.
CLI_MODULES = ("cli", "_cli_", "_quickstart", "__main__")

#: Imports from a private module of another subpackage that are known and scheduled to go, as
#: (importing unit, private module). The importing files belong to work in progress elsewhere; each
#: entry names what to import instead. Do not add entries: import from the subpackage itself.
PENDING_PRIVATE_IMPORTS: set[tuple[str, str]] = set()


def _unit(module: str) -> str | None:
    """The subpackage (or top-level module) ``colsplade.<unit>...`` belongs to; None for the root."""
    parts = module.split(".")
    if parts[0] != "colsplade" or len(parts) < 2:
        return None
    name = parts[1]
    return "cli" if name.startswith(CLI_MODULES) else name


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    importer: str  # the importing module
    module: str  # the imported module
    names: tuple[str, ...]  # the names taken from it (empty for ``import x``)
    type_only: bool = False  # under ``if TYPE_CHECKING:``: never executed

    def where(self) -> str:
        return f"{self.path.relative_to(PACKAGE_DIR.parent)}:{self.line}"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imports for annotations only)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            inside.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return inside


def _imports() -> Iterator[Import]:
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        importer = _module_name(path)
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        type_only = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(path, node.lineno, importer, alias.name, (), id(node) in type_only)
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level:  # relative: resolve against the importing package
                    base = importer.split(".")
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - node.level + 1]
                    module = ".".join([*base, module] if module else base)
                names = tuple(a.name for a in node.names)
                yield Import(path, node.lineno, importer, module, names, id(node) in type_only)


IMPORTS = list(_imports())


def _declared_all(subpackage: str) -> list[str]:
    """The literal ``__all__`` of a subpackage's ``__init__`` (read, not imported: no torch needed)."""
    tree = ast.parse((PACKAGE_DIR / subpackage / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"colsplade.{subpackage} has no literal __all__")


def _is_submodule(subpackage: str, name: str) -> bool:
    base = PACKAGE_DIR / subpackage / name
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _cross_package(imp: Import) -> str | None:
    """The subpackage ``imp`` reaches into from outside, if any."""
    target = _unit(imp.module)
    if target is None or target not in SUBPACKAGES or target == _unit(imp.importer):
        return None
    return target


def test_the_scan_sees_the_package() -> None:
    assert {"encoders", "engines", "training", "testing"} <= set(SUBPACKAGES)
    assert any(i.module == "colsplade.encoders" for i in IMPORTS)


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_all_lists_each_name_once_and_every_entry_resolves(subpackage: str) -> None:
    declared = _declared_all(subpackage)
    assert len(declared) == len(set(declared)), f"colsplade.{subpackage}.__all__ repeats names"
    if subpackage in NEEDS_TORCH:
        pytest.importorskip("torch")
    module = importlib.import_module(f"colsplade.{subpackage}")
    assert list(module.__all__) == declared
    missing = [name for name in declared if not hasattr(module, name)]
    assert not missing, f"colsplade.{subpackage}.__all__ names what it does not define: {missing}"


def test_root_all_resolves() -> None:
    missing = [name for name in colsplade.__all__ if getattr(colsplade, name, None) is None]
    assert not missing, missing


def test_other_packages_import_only_public_names() -> None:
    """A name another subpackage imports (from the ``__init__`` or, for now, a private module) is public."""
    problems = []
    for imp in IMPORTS:
        target = _cross_package(imp)
        if target is None:
            continue
        public = set(_declared_all(target))
        for name in imp.names:
            if name not in public and not _is_submodule(target, name):
                problems.append(
                    f"{imp.where()}: {name} from {imp.module} is not in colsplade.{target}.__all__"
                )
    assert not problems, "\n".join(problems)


def test_no_imports_from_private_modules_of_other_packages() -> None:
    problems = []
    for imp in IMPORTS:
        target = _cross_package(imp)
        if target is None or imp.module == f"colsplade.{target}":
            continue
        private = next((p for p in imp.module.split(".")[2:] if p.startswith("_")), None)
        if private is None:
            continue  # a public submodule (colsplade.testing.plugin)
        if (_unit(imp.importer), imp.module) in PENDING_PRIVATE_IMPORTS:
            continue
        problems.append(f"{imp.where()}: import from colsplade.{target}, not {imp.module}")
    assert not problems, "\n".join(problems)


def _graph() -> dict[str, dict[str, str]]:
    """unit -> {imported unit: where the first such import is}."""
    graph: dict[str, dict[str, str]] = {}
    for imp in IMPORTS:
        source = _unit(imp.importer)
        if source is None:
            continue  # the root package's lazy names are a facade over the others
        targets = [_unit(imp.module)]
        if imp.module == "colsplade":  # from colsplade import engines
            targets = [n for n in imp.names if n in SUBPACKAGES]
        for target in targets:
            if target is not None and target != source:
                graph.setdefault(source, {}).setdefault(target, imp.where())
    return graph


def _find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one() -> None:
    assert _find_cycle({"a": {"b": ""}, "b": {"c": ""}, "c": {"a": ""}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": ""}, "b": {}, "c": {"a": ""}}) is None


def test_no_import_cycle_between_subpackages() -> None:
    graph = _graph()
    cycle = _find_cycle(graph)
    if cycle:
        steps = [f"{a} -> {b} ({graph[a][b]})" for a, b in itertools.pairwise(cycle)]
        pytest.fail("import cycle between subpackages:\n" + "\n".join(steps))
    assert "cli" not in {t for targets in graph.values() for t in targets}, "only the CLI imports the CLI"


def _packages_run_first(target: str, importer: str, modules: set[str]) -> list[str]:
    """The nested packages (``colsplade.ingest.sources``) whose ``__init__`` runs when ``importer``
    imports ``target``: Python runs every package above a module before it, except those already
    running because they hold the importer."""
    parts = target.split(".")
    packages = (".".join(parts[:n]) for n in range(2, len(parts)))
    return [p for p in packages if p in modules and importer != p and not importer.startswith(p + ".")]


def _module_graph(subpackage: str) -> dict[str, dict[str, str]]:
    """Within one subpackage, nested packages included: module -> {module it imports at run time:
    where}, function-level imports included, and the ``__init__`` of a nested package counted as
    imported by each import of a module inside it from outside it; the subpackage's own ``__init__``
    (its public face) and ``if TYPE_CHECKING:`` imports left out."""
    package = f"colsplade.{subpackage}"
    modules = {_module_name(p) for p in (PACKAGE_DIR / subpackage).rglob("*.py")} - {package}
    graph: dict[str, dict[str, str]] = {}
    for imp in IMPORTS:
        if imp.type_only or imp.importer not in modules:
            continue
        targets = [imp.module, *(f"{imp.module}.{n}" for n in imp.names)]
        targets += _packages_run_first(imp.module, imp.importer, modules)
        for target in targets:
            if target in modules and target != imp.importer:
                graph.setdefault(imp.importer, {}).setdefault(target, imp.where())
    return graph


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_no_import_cycle_between_the_modules_of_a_subpackage(subpackage: str) -> None:
    # A cycle made of function-level imports works until someone moves one to the top of a file; it also
    # says two modules are one room. Split the shared part into a module both import instead.
    graph = _module_graph(subpackage)
    cycle = _find_cycle(graph)
    if cycle:
        steps = [f"{a} -> {b} ({graph[a][b]})" for a, b in itertools.pairwise(cycle)]
        pytest.fail(f"import cycle between the modules of colsplade.{subpackage}:\n" + "\n".join(steps))


def test_the_module_graph_sees_function_level_imports() -> None:
    graph = _module_graph("upgrade")
    # _run imports the report writer inside the function that writes the report, not at the top
    assert "colsplade.upgrade._report" in graph["colsplade.upgrade._run"]


def test_the_module_graph_walks_nested_packages() -> None:
    graph = _module_graph("ingest")
    # colsplade.ingest.sources is a package inside ingest: its modules are nodes of ingest's graph
    assert "colsplade.ingest.sources._offsets" in graph["colsplade.ingest.sources._kafka"]
    assert "colsplade.ingest.sources._kafka" in graph["colsplade.ingest.sources"]
    assert "colsplade.ingest.sources" in graph["colsplade.ingest._pipeline"]
    # importing a module of a nested package from outside it runs the package's __init__ first ...
    modules = {"colsplade.ingest.sources", "colsplade.ingest.sources._base", "colsplade.ingest._checkpoint"}
    assert _packages_run_first("colsplade.ingest.sources._base", "colsplade.ingest._checkpoint", modules) == [
        "colsplade.ingest.sources"
    ]
    # ... but not from inside it: that __init__ is the one running already
    assert (
        _packages_run_first("colsplade.ingest.sources._base", "colsplade.ingest.sources._kafka", modules)
        == []
    )
    assert _packages_run_first("colsplade.ingest.sources._base", "colsplade.ingest.sources", modules) == []


#: Packages inside a subpackage with a public face of their own (``colsplade.ingest.sources``).
NESTED_PACKAGES = sorted(
    _module_name(p) for p in PACKAGE_DIR.glob("*/*/__init__.py") if p.parent.parent.name in SUBPACKAGES
)


def test_the_nested_packages_are_found() -> None:
    assert "colsplade.ingest.sources" in NESTED_PACKAGES


@pytest.mark.parametrize("package", NESTED_PACKAGES)
def test_a_nested_package_has_an_all_whose_entries_resolve(package: str) -> None:
    if _unit(package) in NEEDS_TORCH:
        pytest.importorskip("torch")
    module = importlib.import_module(package)
    declared = list(getattr(module, "__all__", None) or [])
    assert declared, f"{package} has no __all__"
    assert len(declared) == len(set(declared)), f"{package}.__all__ repeats names"
    missing = [name for name in declared if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not define: {missing}"


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_each_subpackage_imports_alone(subpackage: str) -> None:
    if subpackage in NEEDS_TORCH:
        pytest.importorskip("torch")
    done = subprocess.run(
        [sys.executable, "-c", f"import colsplade.{subpackage}"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_client_side_never_loads_the_local_services() -> None:
    # colsplade.local (installers, JVM launchers, system changes) is for development machines; a backend
    # that only talks to a cluster must not load it, not even through the names kept in colsplade.engines.
    code = (
        "import sys, colsplade.engines, colsplade.ingest, colsplade.query, colsplade.streams\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('colsplade.local'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"imported {done.stdout.strip()}"


@pytest.mark.parametrize(
    ("package", "moved"),
    [
        (
            "engines",
            [
                "LocalNode",
                "start_node",
                "stop_node",
                "node_status",
                "LocalCluster",
                "start_cluster",
                "stop_cluster",
                "cluster_status",
                "cluster_heap",
                "install_distribution",
                "engines_home",
                "DEFAULT_VERSIONS",
                "PREVIOUS_VERSIONS",
                "SECURE_OPENSEARCH_VERSION",
                "TLSFiles",
                "make_certificates",
                "put_file_user",
                "put_file_role",
                "delete_file_user",
            ],
        ),
        (
            "streams",
            [
                "DEFAULT_KAFKA_VERSION",
                "KafkaBroker",
                "broker_status",
                "install_kafka",
                "start_broker",
                "stop_broker",
            ],
        ),
    ],
)
def test_names_moved_to_local_still_resolve_from_their_old_home(package: str, moved: list[str]) -> None:
    import colsplade.local

    old = importlib.import_module(f"colsplade.{package}")
    for name in moved:
        assert getattr(old, name) is getattr(colsplade.local, name), name
        assert name in old.__all__ and name in dir(old), name
    with pytest.raises(AttributeError):
        _ = old.no_such_name


def test_engines_keeps_the_engine_names_eagerly() -> None:
    code = "import sys, colsplade.engines as e; print(e.ENGINES, 'colsplade.local' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "('elasticsearch', 'opensearch') False"
