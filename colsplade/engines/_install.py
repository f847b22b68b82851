"""The distribution installer of the local engines: Maven Central through ``mvn``, the unzip, the modules
and plugins an integ-test zip lacks, a Java new enough, and the system user the JVM runs as when colsplade
runs as root. :mod:`colsplade.engines._local` runs nodes from what this installs; the secured node and the
cluster build on both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from colsplade._process import find_java, mvn_copy_with_deps
from colsplade._types import ENGINE_NAMES, EngineName
from colsplade.exceptions import EngineStartError, InvalidInputError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_VERSIONS",
    "ENGINES",
    "PREVIOUS_VERSIONS",
    "SECURE_OPENSEARCH_VERSION",
    "engines_home",
    "find_java",
    "install_distribution",
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
_RUN_USER = "colsplade"
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")


def engines_home() -> Path:
    """Where distributions, node data, logs and state files live.

    ``COLSPLADE_ENGINES_DIR`` wins; otherwise ``~/.cache/colsplade/engines``, except for root, whose home is
    not readable by the unprivileged user the JVM must run as: ``/var/cache/colsplade/engines``.
    """
    if env := os.environ.get("COLSPLADE_ENGINES_DIR"):
        return Path(env).expanduser()
    if _is_root():
        return Path("/var/cache/colsplade/engines")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "colsplade" / "engines"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _check_engine(engine: str, version: str | None) -> str:
    if engine not in ENGINES:
        raise InvalidInputError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    version = version or DEFAULT_VERSIONS[engine]
    if not _VERSION_RE.match(version):
        raise InvalidInputError(
            f"invalid {engine} version {version!r}; expected MAJOR.MINOR.PATCH, e.g. 8.19.21"
        )
    return version


def _required_java(engine: str, version: str) -> int:
    major = int(version.split(".")[0])
    if engine == "elasticsearch":
        return 21 if major >= 9 else 17
    return 21 if major >= 3 else 11


# ---------------------------------------------------------------------------------------------- fetch


def _mvn_copy(artifact: str, dest: Path) -> Path:
    """Fetch one artifact (``group:artifact:version[:type]``) with Maven into ``dest``; returns the file."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EngineStartError(
            "Maven (mvn) is needed to fetch the engine distributions from Maven Central; "
            "install it (apt-get install maven) or start your own node and pass --url"
        )
    dest.mkdir(parents=True, exist_ok=True)
    logger.info("fetching %s with mvn", artifact)
    proc = subprocess.run(
        [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={dest}"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise EngineStartError(f"Maven could not fetch {artifact}: {tail}")
    _group, name, version, *rest = artifact.split(":")
    ext = rest[0] if rest else "jar"
    path = dest / f"{name}-{version}.{ext}"
    if not path.is_file():
        raise EngineStartError(f"Maven reported success for {artifact} but {path} is missing")
    return path


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


def install_distribution(engine: EngineName, version: str | None = None) -> Path:
    """Fetch and unpack a distribution (once; later calls reuse it). Returns its home directory.

    For OpenSearch, also assembles the ``lang-painless``, ``mapper-extras`` and ``analysis-common``
    modules and installs the
    k-NN plugin of the same version when Maven Central serves it (a warning otherwise).
    """
    version = _check_engine(engine, version)
    root = engines_home()
    home = root / "dist" / f"{engine}-{version}"
    marker = home / ".colsplade-installed"
    if marker.is_file() and _install_complete(engine, marker):
        return home
    java_home = find_java(_required_java(engine, version))
    root.mkdir(parents=True, exist_ok=True)
    downloads = root / "downloads"
    archive = _mvn_copy(f"{_MAVEN[engine]}:{version}:zip", downloads)
    staging = Path(tempfile.mkdtemp(prefix=f"{engine}-{version}-", dir=root))
    try:
        unpacked = _unzip(archive, staging)
        notes: dict[str, object] = {"engine": engine, "version": version, "modules_added": [], "plugins": []}
        if engine == "opensearch":
            for module, coordinate, exclude, policy, extends in (
                (
                    "lang-painless",
                    f"org.opensearch.plugin:lang-painless:{version}",
                    True,
                    _PAINLESS_POLICY,
                    "",
                ),
                ("mapper-extras", f"org.opensearch.plugin:mapper-extras-client:{version}", False, None, ""),
                # the language analysers (english, ...) and the stemmers a team's index uses
                (
                    "analysis-common",
                    f"org.opensearch.plugin:analysis-common:{version}",
                    False,
                    None,
                    "lang-painless",
                ),
            ):
                if exclude:
                    jars = mvn_copy_with_deps(
                        [coordinate], staging / f"_jars_{module}", ["org.opensearch", "org.apache.lucene"]
                    )
                else:
                    jars = [_mvn_copy(coordinate, staging / f"_jars_{module}")]
                _add_opensearch_module(unpacked, version, module, jars, policy, extends)
                notes["modules_added"].append(module)  # type: ignore[union-attr]
            try:
                knn_zip = _mvn_copy(f"{_KNN_PLUGIN}:{version}.0:zip", downloads)
            except EngineStartError as exc:
                logger.warning("k-NN plugin %s.0 not available, OpenSearch runs without it: %s", version, exc)
            else:
                env = dict(os.environ, OPENSEARCH_JAVA_HOME=str(java_home))
                proc = subprocess.run(
                    [str(unpacked / "bin" / "opensearch-plugin"), "install", "--batch", knn_zip.as_uri()],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if proc.returncode != 0:
                    raise EngineStartError(f"installing the k-NN plugin failed: {proc.stdout}{proc.stderr}")
                notes["plugins"].append(f"opensearch-knn {version}.0")  # type: ignore[union-attr]
        home.parent.mkdir(parents=True, exist_ok=True)
        if home.exists():
            shutil.rmtree(home)
        unpacked.rename(home)
        (home / ".colsplade-installed").write_text(json.dumps(notes, indent=2))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _hand_over(home)
    return home


# ---------------------------------------------------------------------------------------------- run


def _ensure_run_user() -> tuple[int, int] | None:
    """(uid, gid) to run the JVM as, or None when colsplade is not root."""
    if not _is_root():
        return None
    import pwd

    try:
        entry = pwd.getpwnam(_RUN_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        proc = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _RUN_USER],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise EngineStartError(
                f"Elasticsearch/OpenSearch refuse to run as root and creating the user {_RUN_USER!r} failed: "
                f"{proc.stderr.strip()}; run colsplade as a normal user"
            ) from None
        entry = pwd.getpwnam(_RUN_USER)
    return entry.pw_uid, entry.pw_gid


def _hand_over(path: Path) -> None:
    ids = _ensure_run_user()
    if ids is None:
        return
    uid, gid = ids
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for name in dirnames + filenames:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(dirpath, name), uid, gid)
    # Every parent must be traversable by the run user.
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)
