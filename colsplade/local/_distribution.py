"""The installer of the local services: distributions and jars from Maven Central through ``mvn`` (the one
Maven fetch), the unzip, the modules and plugins an integ-test zip lacks, and a Java new enough (the one
Java finder). :mod:`colsplade.local._node` runs engine nodes from what this installs, and the Kafka broker
its jars; what installing changes on the machine when colsplade runs as root is in
:mod:`colsplade.local._system`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from colsplade._types import ENGINE_NAMES, EngineName
from colsplade.exceptions import EngineStartError, InvalidInputError
from colsplade.local._system import hand_over, is_root

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_VERSIONS",
    "ENGINES",
    "PREVIOUS_VERSIONS",
    "SECURE_OPENSEARCH_VERSION",
    "check_engine",
    "engines_home",
    "find_java",
    "has_native_knn",
    "install_distribution",
    "install_plugin",
    "mvn_fetch",
    "mvn_fetch_with_deps",
    "required_java",
]

ENGINES: tuple[EngineName, ...] = ENGINE_NAMES

#: The newest version of each current major that Maven Central serves as an integ-test zip and that
#: starts here (tried 2026-12-05: Elasticsearch 9.2.8, while 9.2.9, 9.3.0, 9.3.1 and 9.4.0 were refused;
#: OpenSearch 3.5.0, the newest 3.x with its k-NN plugin, 3.5.0.0, served). Both need Java 21+, which
#: :func:`find_java` picks. The previous majors stay one ``--version`` away (see :data:`PREVIOUS_VERSIONS`).
DEFAULT_VERSIONS: dict[EngineName, str] = {"elasticsearch": "9.2.8", "opensearch": "3.5.0"}

#: The previous majors, tested too: Elasticsearch 8.19.21 and OpenSearch 2.19.1.
PREVIOUS_VERSIONS: dict[EngineName, str] = {"elasticsearch": "8.19.21", "opensearch": "2.19.1"}

#: The secured OpenSearch node's version: its security plugin must match the engine's version exactly,
#: and Maven Central serves ``opensearch-security`` for 2.19.1 but no 3.x one (3.3.0.0 and 3.5.0.0 tried).
SECURE_OPENSEARCH_VERSION = "2.19.1"

_MAVEN = {
    "elasticsearch": "org.elasticsearch.distribution.integ-test-zip:elasticsearch",
    "opensearch": "org.opensearch.distribution.integ-test-zip:opensearch",
}
_KNN_PLUGIN = "org.opensearch.plugin:opensearch-knn"
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")


def engines_home() -> Path:
    """Where distributions, node data, logs and state files live.

    ``COLSPLADE_ENGINES_DIR`` wins; otherwise ``~/.cache/colsplade/engines``, except for root, whose home is
    not readable by the unprivileged user the JVM must run as: ``/var/cache/colsplade/engines``.
    """
    if env := os.environ.get("COLSPLADE_ENGINES_DIR"):
        return Path(env).expanduser()
    if is_root():
        return Path("/var/cache/colsplade/engines")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "colsplade" / "engines"


def check_engine(engine: str, version: str | None) -> str:
    """``version`` (the default one when None) of a known ``engine``, checked: MAJOR.MINOR.PATCH."""
    if engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    version = version or DEFAULT_VERSIONS[engine]
    if not _VERSION_RE.match(version):
        raise InvalidInputError(
            f"invalid {engine} version {version!r}; expected MAJOR.MINOR.PATCH, e.g. 8.19.21"
        )
    return version


def required_java(engine: str, version: str) -> int:
    """The lowest Java major the engine's ``version`` runs on."""
    major = int(version.split(".")[0])
    if engine == "elasticsearch":
        return 21 if major >= 9 else 17
    return 21 if major >= 3 else 11


# ---------------------------------------------------------------------------------------------- Java


def _java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    if release.is_file():
        match = re.search(r'JAVA_VERSION="(\d+)(?:\.(\d+))?', release.read_text(errors="replace"))
        if match:
            major = int(match.group(1))
            return int(match.group(2)) if major == 1 and match.group(2) else major
    java = java_home / "bin" / "java"
    if not java.exists():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def _java_candidates() -> list[Path]:
    homes: list[Path] = []
    for env in ("COLSPLADE_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(env):
            homes.append(Path(os.environ[env]))
    jvm_dir = Path("/usr/lib/jvm")
    if jvm_dir.is_dir():
        homes.extend(sorted(p for p in jvm_dir.iterdir() if p.is_dir() and not p.is_symlink()))
    if java := shutil.which("java"):
        homes.append(Path(os.path.realpath(java)).parent.parent)
    seen: set[Path] = set()
    unique = []
    for home in homes:
        resolved = home.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(resolved)
    return unique


def find_java(min_major: int) -> Path:
    """The JDK home with the lowest major version >= ``min_major`` (the most tested one for old engines)."""
    found: list[tuple[int, Path]] = []
    for home in _java_candidates():
        major = _java_major(home)
        if major is not None:
            found.append((major, home))
    suitable = sorted((m, h) for m, h in found if m >= min_major)
    if suitable:
        return suitable[0][1]
    seen = ", ".join(f"{h} (Java {m})" for m, h in found) or "none"
    raise EngineStartError(
        f"Java {min_major}+ is needed and was not found (seen: {seen}); install a JDK "
        f"(e.g. apt-get install openjdk-{max(min_major, 17)}-jdk-headless) or set COLSPLADE_JAVA_HOME"
    )


# ---------------------------------------------------------------------------------------------- fetch


def _run_mvn(goal_args: list[str], cwd: str | os.PathLike[str], what: str) -> None:
    """Run one ``mvn -q -B`` goal; a missing ``mvn`` or a failed fetch is an :class:`EngineStartError`."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EngineStartError(
            f"Maven (mvn) is needed to fetch {what} from Maven Central; install it (apt-get install maven), "
            "or start your own service and pass its URL"
        )
    logger.info("fetching %s with mvn", what)
    proc = subprocess.run([mvn, "-q", "-B", *goal_args], capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise EngineStartError(f"Maven could not fetch {what}: {tail}")


def mvn_fetch(artifact: str, dest: Path) -> Path:
    """Fetch one artifact (``group:artifact:version[:type]``) into ``dest``; returns the file."""
    dest.mkdir(parents=True, exist_ok=True)
    _run_mvn(
        ["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={dest}"],
        tempfile.gettempdir(),
        artifact,
    )
    _group, name, version, *rest = artifact.split(":")
    ext = rest[0] if rest else "jar"
    path = dest / f"{name}-{version}.{ext}"
    if not path.is_file():
        raise EngineStartError(f"Maven reported success for {artifact} but {path} is missing")
    return path


def mvn_fetch_with_deps(
    coordinates: Sequence[str], dest: Path, exclude_groups: Sequence[str] = ()
) -> list[Path]:
    """Fetch ``group:artifact:version`` coordinates and their runtime dependencies (minus
    ``exclude_groups``) into ``dest``, through a throw-away ``pom.xml``; returns the jars there."""
    dest.mkdir(parents=True, exist_ok=True)
    exclusions = "".join(
        f"<exclusion><groupId>{g}</groupId><artifactId>*</artifactId></exclusion>" for g in exclude_groups
    )
    deps = ""
    for coordinate in coordinates:
        group, name, version = coordinate.split(":")
        deps += (
            f"<dependency><groupId>{group}</groupId><artifactId>{name}</artifactId><version>{version}</version>"
            f"<exclusions>{exclusions}</exclusions></dependency>"
        )
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>colsplade.local</groupId><artifactId>local-services</artifactId><version>0</version>"
        f"<dependencies>{deps}</dependencies></project>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pom.xml").write_text(pom)
        _run_mvn(
            ["dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={dest}"],
            tmp,
            ", ".join(coordinates),
        )
    return sorted(dest.glob("*.jar"))


def _unzip(archive: Path, dest: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        roots = {name.split("/", 1)[0] for name in zf.namelist()}
        zf.extractall(dest)
        # zipfile drops the permission bits; restore them so bin/ scripts stay executable.
        for info in zf.infolist():
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(dest / info.filename, mode)
    if len(roots) != 1:
        raise EngineStartError(f"unexpected layout of {archive}: top-level entries {sorted(roots)}")
    return dest / roots.pop()


#: The plugin class of each assembled module (renamed across versions: PainlessPlugin ->
#: PainlessModulePlugin), matched against the jar's entries.
_MODULE_CLASSES = {
    "lang-painless": r"org/opensearch/painless/Painless(Module)?Plugin\.class",
    "mapper-extras": r"org/opensearch/index/mapper/MapperExtras(Module)?Plugin\.class",
    "analysis-common": r"org/opensearch/analysis/common/CommonAnalysis(Module)?Plugin\.class",
}


def _add_opensearch_module(
    home: Path, version: str, name: str, jars: list[Path], policy: str | None, extends: str = ""
) -> None:
    """Assemble ``modules/<name>`` from published jars, with a descriptor naming the plugin class.

    ``extends`` names the modules it extends (analysis-common registers painless extensions, so the
    engine must load it after lang-painless, in that module's class loader's child).
    """
    module_dir = home / "modules" / name
    module_dir.mkdir(parents=True, exist_ok=True)
    classname = None
    for jar in jars:
        shutil.copy2(jar, module_dir / jar.name)
        with zipfile.ZipFile(jar) as zf:
            for entry in zf.namelist():
                if re.fullmatch(_MODULE_CLASSES[name], entry):
                    classname = entry[: -len(".class")].replace("/", ".")
    if classname is None:
        raise EngineStartError(f"no plugin class found in the jars of OpenSearch module {name}")
    (module_dir / "plugin-descriptor.properties").write_text(
        f"description=OpenSearch module {name} (assembled by colsplade from Maven Central)\n"
        f"version={version}\nname={name}\nclassname={classname}\njava.version=11\n"
        f"opensearch.version={version}\nextended.plugins={extends}\nhas.native.controller=false\n"
    )
    if policy:
        (module_dir / "plugin-security.policy").write_text(policy)


_PAINLESS_POLICY = (
    "grant {\n"
    '  permission java.lang.RuntimePermission "createClassLoader";\n'
    '  permission java.lang.RuntimePermission "getClassLoader";\n'
    "};\n"
)


#: The modules every local OpenSearch node has; an installation from an older colsplade without one of
#: them (analysis-common came later) is rebuilt.
_OPENSEARCH_MODULES = ("lang-painless", "mapper-extras", "analysis-common")


def _install_complete(engine: str, marker: Path) -> bool:
    if engine != "opensearch":
        return True
    try:
        added = json.loads(marker.read_text()).get("modules_added") or []
    except (OSError, ValueError):
        return False
    missing = [m for m in _OPENSEARCH_MODULES if m not in added]
    if missing:
        logger.info("local OpenSearch at %s lacks %s: reinstalling it", marker.parent, ", ".join(missing))
    return not missing


#: The modules assembled into a local OpenSearch: (name, Maven coordinate without version, fetched with its
#: dependencies (minus OpenSearch and Lucene, which the engine has), security policy, modules it extends).
_OPENSEARCH_MODULE_SOURCES: tuple[tuple[str, str, bool, str | None, str], ...] = (
    ("lang-painless", "org.opensearch.plugin:lang-painless", True, _PAINLESS_POLICY, ""),
    ("mapper-extras", "org.opensearch.plugin:mapper-extras-client", False, None, ""),
    # the language analysers (english, ...) and the stemmers a team's index uses
    ("analysis-common", "org.opensearch.plugin:analysis-common", False, None, "lang-painless"),
)


def install_plugin(home: Path, plugin_zip: Path, java_home: Path, what: str) -> None:
    """Install a plugin zip into an OpenSearch home with its own ``bin/opensearch-plugin``."""
    proc = subprocess.run(
        [str(home / "bin" / "opensearch-plugin"), "install", "--batch", plugin_zip.as_uri()],
        capture_output=True,
        text=True,
        env=dict(os.environ, OPENSEARCH_JAVA_HOME=str(java_home)),
    )
    if proc.returncode != 0:
        raise EngineStartError(f"installing the {what} failed: {proc.stdout}{proc.stderr}")


def _complete_opensearch(
    unpacked: Path, version: str, staging: Path, downloads: Path, java_home: Path
) -> dict[str, list[str]]:
    """Assemble the modules the integ-test zip lacks and install the k-NN plugin when Maven Central serves
    it (a warning otherwise); returns what was added, for the install marker."""
    added: dict[str, list[str]] = {"modules_added": [], "plugins": []}
    for module, coordinate, with_deps, policy, extends in _OPENSEARCH_MODULE_SOURCES:
        jars_dir = staging / f"_jars_{module}"
        if with_deps:
            jars = mvn_fetch_with_deps(
                [f"{coordinate}:{version}"], jars_dir, ["org.opensearch", "org.apache.lucene"]
            )
        else:
            jars = [mvn_fetch(f"{coordinate}:{version}", jars_dir)]
        _add_opensearch_module(unpacked, version, module, jars, policy, extends)
        added["modules_added"].append(module)
    try:
        knn_zip = mvn_fetch(f"{_KNN_PLUGIN}:{version}.0:zip", downloads)
    except EngineStartError as exc:
        logger.warning("k-NN plugin %s.0 not available, OpenSearch runs without it: %s", version, exc)
    else:
        install_plugin(unpacked, knn_zip, java_home, "k-NN plugin")
        added["plugins"].append(f"opensearch-knn {version}.0")
    return added


def install_distribution(engine: EngineName, version: str | None = None) -> Path:
    """Fetch and unpack a distribution (once; later calls reuse it). Returns its home directory.

    For OpenSearch, also assembles the ``lang-painless``, ``mapper-extras`` and ``analysis-common``
    modules and installs the k-NN plugin of the same version when Maven Central serves it (a warning
    otherwise). When colsplade runs as root the home is handed to the run user (:mod:`._system`).
    """
    version = check_engine(engine, version)
    root = engines_home()
    home = root / "dist" / f"{engine}-{version}"
    marker = home / ".colsplade-installed"
    if marker.is_file() and _install_complete(engine, marker):
        return home
    java_home = find_java(required_java(engine, version))
    root.mkdir(parents=True, exist_ok=True)
    downloads = root / "downloads"
    archive = mvn_fetch(f"{_MAVEN[engine]}:{version}:zip", downloads)
    staging = Path(tempfile.mkdtemp(prefix=f"{engine}-{version}-", dir=root))
    try:
        unpacked = _unzip(archive, staging)
        notes: dict[str, object] = {"engine": engine, "version": version, "modules_added": [], "plugins": []}
        if engine == "opensearch":
            notes.update(_complete_opensearch(unpacked, version, staging, downloads, java_home))
        home.parent.mkdir(parents=True, exist_ok=True)
        if home.exists():
            shutil.rmtree(home)
        unpacked.rename(home)
        (home / ".colsplade-installed").write_text(json.dumps(notes, indent=2))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    hand_over(home)
    return home


def has_native_knn(home: str | os.PathLike[str]) -> bool:
    """Whether the k-NN plugin of the OpenSearch at ``home`` ships its native (faiss / nmslib) libraries.

    The Maven Central plugin zip does not (k-NN#2643); creating a faiss field on such a node makes the
    JVM fail with UnsatisfiedLinkError and takes the node down. A node started from such a home says so
    through a node attribute (``colsplade._types.KNN_NATIVE_ATTRIBUTE``), which the engine client reads.
    """
    lib = Path(home) / "plugins" / "opensearch-knn" / "lib"
    return lib.is_dir() and any(lib.glob("*.so"))
