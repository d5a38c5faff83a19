"""Whether a file the scripts would read belongs to the user: the one place that decides.

The model is git's ``safe.directory``: a ``.git`` marker, a ``.env`` or a key file is used only when

* the folder holding it is owned by the current user and is not writable by others (``o+w``,
  e.g. ``/tmp``, sticky bit or not), and
* the entry itself is owned by the current user (for a link, the link and its target).

Anything else is skipped as if it were absent, with one line on stderr, once per process and path:
``warning: ignoring /tmp/.env: owned by another user``. Where the platform has no user ids
(Windows: ``posix_permissions()`` is False) every entry is trusted.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from .redaction import one_line

_warned: set = set()


def _warn(path: Path, why: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        print(one_line(f"warning: ignoring {path}: {why}"), file=sys.stderr)


def why_untrusted(path: Path) -> str | None:
    """Why ``path`` (a ``.env`` or a ``.git`` marker) must not be used, or None when it may.

    A missing ``path`` gives None: the caller decides what absence means.
    """
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if uid is None:
        return None
    try:
        folder = os.stat(path.parent)
    except OSError:
        return "its folder cannot be inspected"
    if folder.st_mode & stat.S_IWOTH:
        return f"its folder {path.parent} is writable by other users"
    if folder.st_uid != uid:
        return f"its folder {path.parent} is owned by another user"
    if info.st_uid != uid:
        return "owned by another user"
    if stat.S_ISLNK(info.st_mode):
        try:
            if os.stat(path).st_uid != uid:
                return "a link to a file owned by another user"
        except OSError:
            return None  # a dangling link: nothing to read
    return None


def trusted(path: Path) -> bool:
    """``path`` exists and may be used; an untrusted one is reported once on stderr."""
    if not os.path.lexists(path):
        return False
    why = why_untrusted(path)
    if why:
        _warn(path, why)
        return False
    return True


def posix_permissions() -> bool:
    """True where files have an owner uid and rwx mode bits that decide access (not on Windows,
    whose ``st_mode`` only mirrors the read-only attribute: ACLs decide there)."""
    return hasattr(os, "geteuid")
