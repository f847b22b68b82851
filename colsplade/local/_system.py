"""Every change colsplade makes to the machine outside its own files, in one place.

Elasticsearch and OpenSearch refuse to run as root. So, and only when colsplade itself runs as root
(``euid == 0``: a container, a CI runner), starting a local engine node changes the system:

* :func:`ensure_run_user` creates the system user ``colsplade`` (``useradd --system --no-create-home
  --shell /usr/sbin/nologin``) the first time a node starts; the JVM runs as that user.
* :func:`hand_over` gives that user a distribution or node directory (``chown -R``) once it is installed or
  made, and adds the others' execute bit (``o+x``) to each parent directory up to ``/`` that lacks it, so
  the user can reach it (the cache is ``/var/cache/colsplade/engines`` then, outside root's home).
* :func:`keep_for_root` gives a file back to root (a secured node's passwords, which the JVM never reads).
* :func:`own_like_directory` makes a file the node reads (its users and roles) owned like the directory
  it lies in.

As a normal user none of these change anything (the files are the user's already). The Kafka broker runs
as whoever runs colsplade (it does not refuse root) and changes nothing here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from colsplade.exceptions import EngineStartError

logger = logging.getLogger(__name__)

__all__ = ["RUN_USER", "ensure_run_user", "hand_over", "is_root", "keep_for_root", "own_like_directory"]

#: The system user the engines' JVMs run as when colsplade runs as root.
RUN_USER = "colsplade"


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_run_user() -> tuple[int, int] | None:
    """(uid, gid) to run the JVM as, or None when colsplade is not root; creates :data:`RUN_USER` once."""
    if not is_root():
        return None
    import pwd

    try:
        entry = pwd.getpwnam(RUN_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        logger.info("running as root: creating the system user %r for the engines' JVMs", RUN_USER)
        proc = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_USER],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise EngineStartError(
                f"Elasticsearch/OpenSearch refuse to run as root and creating the user {RUN_USER!r} failed: "
                f"{proc.stderr.strip()}; run colsplade as a normal user"
            ) from None
        entry = pwd.getpwnam(RUN_USER)
    return entry.pw_uid, entry.pw_gid


def hand_over(path: Path) -> None:
    """Give ``path`` (recursively) to the run user and make its parents traversable; a no-op unless root."""
    ids = ensure_run_user()
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


def keep_for_root(path: str | os.PathLike[str]) -> None:
    """Give ``path`` back to root after :func:`hand_over` gave its directory away; a no-op unless root."""
    if is_root():
        os.chown(path, 0, 0)


def own_like_directory(path: Path) -> None:
    """Make ``path`` owned like its directory (the JVM's user after :func:`hand_over`); a no-op unless
    root, whose new files would otherwise be root's and unreadable by the node."""
    if is_root():
        owner = path.parent.stat()
        os.chown(path, owner.st_uid, owner.st_gid)
