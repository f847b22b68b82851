"""Public BEIR datasets by name: download, verify, unpack safely into a cache; resolve names to directories.

::

    from colsplade.evaluation import download_dataset, resolve_dataset
    path = download_dataset("scifact")     # ~/.cache/colsplade/datasets/scifact (corpus.jsonl, queries.jsonl, qrels/)
    resolve_dataset("scifact") == path     # a name already downloaded, or any existing BEIR directory

The cache root is ``$COLSPLADE_DATASETS_DIR``, else ``$COLSPLADE_CACHE/datasets``, else
``~/.cache/colsplade/datasets``; each dataset unpacks to ``<root>/<name>``. A known BEIR name is checked
against the md5 the BEIR project publishes; ``sha256=`` checks any archive (a mirror, your own ``url=``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from colsplade.exceptions import DatasetDownloadError, InvalidInputError

__all__ = [
    "BEIR_MD5",
    "BEIR_URL",
    "DatasetDownloadError",
    "datasets_dir",
    "download_dataset",
    "resolve_dataset",
]

logger = logging.getLogger(__name__)

#: Where the BEIR project serves its datasets (one zip per dataset, top folder ``<name>/``).
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"

#: md5 of each public BEIR zip, as the BEIR project publishes them (its README's dataset table).
BEIR_MD5: dict[str, str] = {
    "msmarco": "444067daf65d982533ea17ebd59501e4",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
    "quora": "18fb154900ba42a600f84b839c173167",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_MARKER = ".colsplade-dataset.json"
_CHUNK = 1 << 20
_TIMEOUT_S = 60


def datasets_dir() -> Path:
    """The cache root holding downloaded datasets (``<root>/<name>``)."""
    explicit = os.environ.get("COLSPLADE_DATASETS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("COLSPLADE_CACHE")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache" / "colsplade") / "datasets"


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise InvalidInputError(
            f"{name!r} is not a dataset name (letters, digits, '.', '_', '-'; e.g. scifact); "
            f"known BEIR datasets: {', '.join(sorted(BEIR_MD5))}"
        )
    return name


def _is_dataset(path: Path) -> bool:
    """A complete dataset directory: one we unpacked (marker), or a BEIR folder (corpus.jsonl)."""
    return path.is_dir() and ((path / _MARKER).is_file() or (path / "corpus.jsonl").is_file())


def _download(url: str, dest: Path, progress: bool) -> tuple[str, str]:
    """Stream ``url`` into ``dest``; -> (md5, sha256) of the bytes."""
    from tqdm.auto import tqdm

    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, dest.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name.split(".part")[0], disable=not progress
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    sha.update(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise InvalidInputError(
                f"no dataset at {url} (HTTP 404); check the name (known BEIR datasets: "
                f"{', '.join(sorted(BEIR_MD5))}) or pass the archive's URL"
            ) from exc
        raise DatasetDownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DatasetDownloadError(
            f"cannot download {url}: {reason}. Check the network (and proxy settings), or download the zip "
            "yourself and give its unpacked directory instead of a name"
        ) from exc
    return md5.hexdigest(), sha.hexdigest()


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``, refusing absolute paths, ``..``, links and special files."""
    root = dest.resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise InvalidInputError(f"{archive.name} is not a zip archive ({exc})") from exc
    with zf:
        members = zf.infolist()
        for info in members:
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip records no Unix mode
            if (
                name.startswith("/")
                or (len(name) > 1 and name[1] == ":")
                or ".." in parts
                or kind not in (0, stat.S_IFREG, stat.S_IFDIR)
            ):
                raise InvalidInputError(
                    f"refusing {archive.name}: member {info.filename!r} would be written outside the "
                    "dataset directory (or is a link)"
                )
            target = (root / name).resolve()
            if target != root and root not in target.parents:
                raise InvalidInputError(
                    f"refusing {archive.name}: member {info.filename!r} leaves the target"
                )
        for info in members:
            target = root / info.filename.replace("\\", "/")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)


def _dataset_root(unpacked: Path) -> Path:
    """The folder of an unpacked archive that holds the dataset: the top itself, or its single folder."""
    if (unpacked / "corpus.jsonl").is_file():
        return unpacked
    children = [p for p in unpacked.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    raise InvalidInputError(
        "the archive is not in BEIR format: no corpus.jsonl at its top or in a single top folder"
    )


def download_dataset(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Download the BEIR zip ``name``, verify it, unpack it into ``<cache root>/<name>``; -> that directory.

    ``cache_dir`` replaces the cache root (:func:`datasets_dir`); ``url`` another archive (a mirror, your
    own BEIR-format zip). The archive is checked against ``sha256`` when given, else against the md5 the
    BEIR project publishes for ``name`` (from its own URL); a mismatch is refused with
    :class:`~colsplade.exceptions.InvalidInputError` and nothing is kept. An archive with no known
    checksum is unpacked with a warning. Idempotent: a dataset already there is returned without any
    download. Members outside the target (absolute paths, ``..``, links) are refused. Network failures raise
    :class:`DatasetDownloadError` (a :class:`ColspladeError` and an :class:`OSError`), naming the URL.
    """
    _check_name(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else datasets_dir()
    target = root / name
    if _is_dataset(target):
        logger.info("dataset %s already in %s", name, target)
        return target
    if target.exists():
        raise InvalidInputError(f"{target} exists but holds no dataset; remove it and download again")
    source = url or BEIR_URL.format(name=name)
    expected_md5 = None if sha256 or (url and url != BEIR_URL.format(name=name)) else BEIR_MD5.get(name)
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise InvalidInputError(f"sha256 must be 64 hex digits, not {sha256!r}")
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        archive = work / f"{name}.zip.part"
        logger.info("downloading %s", source)
        got_md5, got_sha = _download(source, archive, progress)
        if sha256 is not None and got_sha != sha256.lower():
            raise InvalidInputError(
                f"checksum mismatch for {source}: sha256 {got_sha}, expected {sha256.lower()}; "
                "the archive was not unpacked (a truncated download, or another file than expected)"
            )
        if expected_md5 is not None and got_md5 != expected_md5:
            raise InvalidInputError(
                f"checksum mismatch for {source}: md5 {got_md5}, the published md5 of {name} is "
                f"{expected_md5}; the archive was not unpacked (a truncated download, or the file changed)"
            )
        if sha256 is None and expected_md5 is None:
            logger.warning("no checksum known for %s: unpacking it unverified (sha256 %s)", source, got_sha)
        unpacked = work / "unpacked"
        unpacked.mkdir()
        _safe_extract(archive, unpacked)
        archive.unlink()
        found = _dataset_root(unpacked)
        (found / _MARKER).write_text(
            json.dumps({"name": name, "url": source, "md5": got_md5, "sha256": got_sha}) + "\n",
            encoding="utf-8",
        )
        try:
            os.replace(found, target)
        except OSError:
            if _is_dataset(target):  # another process finished the same download first
                logger.info("dataset %s was unpacked concurrently in %s", name, target)
                return target
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("dataset %s unpacked in %s", name, target)
    return target


def resolve_dataset(
    name_or_path: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A BEIR directory for ``name_or_path``: an existing directory as is, else a downloaded dataset's name.

    Raises :class:`~colsplade.exceptions.InvalidInputError` saying how to get it
    (``colsplade datasets download NAME``) when it is neither.
    """
    given = os.fspath(name_or_path)
    path = Path(given).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise InvalidInputError(f"data directory {given} is a file; give a BEIR directory or a dataset name")
    root = Path(cache_dir).expanduser() if cache_dir is not None else datasets_dir()
    bare = _NAME.fullmatch(given) is not None and "/" not in given and os.sep not in given
    if bare:
        if _is_dataset(root / given):
            return root / given
        how = f"colsplade datasets download {given}"
        if given not in BEIR_MD5:
            how += f" --url URL (not a public BEIR name; those are: {', '.join(sorted(BEIR_MD5))})"
        raise InvalidInputError(
            f"data directory {given} does not exist, and no dataset {given!r} is downloaded in {root}; "
            f"get it with: {how}"
        )
    raise InvalidInputError(
        f"data directory {given} does not exist; give a BEIR directory (corpus.jsonl, queries.jsonl, qrels/) "
        "or a dataset name (colsplade datasets download NAME)"
    )
