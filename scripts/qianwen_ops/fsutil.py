"""Writing files the user (or a cloned repository) may have prepared: the one place that decides how.

Rules every writer in the bundle follows:

* never follow a symbolic link, neither the file itself nor any folder created on the way;
* never open anything but a regular file for writing (a FIFO, device or socket is refused
  without blocking: ``O_NONBLOCK`` on open, then ``fstat``);
* replacing a file's content is atomic (private temp file, fsync, rename);
* the per-user cache and state folders come from one lookup (``user_dir``).

Refusals raise ``UnsafeTarget``, an ``OSError``, so a caller that treats a failed write
as "not saved" keeps working without a special case.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

APP_DIR = "qianwen-ops-auth"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class UnsafeTarget(OSError):
    """A write was refused: the target is a link, not a regular file, or lies behind a link."""


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("HOME") or os.path.expanduser("~"))


def user_dir(kind: str, env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/qianwen-ops-auth`` (``kind="cache"``) or ``$XDG_STATE_HOME/...`` (``"state"``)."""
    env = os.environ if env is None else env
    variable, default = {"cache": ("XDG_CACHE_HOME", ".cache"), "state": ("XDG_STATE_HOME", ".local/state")}[kind]
    base = env.get(variable) or str(home_dir(env) / default)
    return Path(base) / APP_DIR


def make_dirs(base: Path, *parts: str, mode: int = 0o700) -> Path:
    """``base/parts...``, creating each missing folder; refuses when any of ``parts`` is a link or a file.

    ``base`` itself is trusted (the user's project or home); the folders below it may have been
    planted by a repository, so each is checked with ``lstat`` as it is walked.
    """
    folder = Path(base)
    for part in parts:
        folder = folder / part
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            pass
        info = os.lstat(folder)
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafeTarget(errno.ENOTDIR, "not a plain folder (a link or a file)", str(folder))
    return folder


def _open_regular(path: Path, flags: int, mode: int) -> int:
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or os.path.islink(path):
            raise UnsafeTarget(errno.ELOOP, "is a symbolic link; refusing to write through it", str(path)) from None
        if exc.errno == errno.ENXIO:  # a FIFO with no reader, opened non-blocking for writing
            raise UnsafeTarget(errno.ENXIO, "is not a regular file", str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeTarget(errno.EINVAL, "is not a regular file", str(path))
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return fd


def check_writable_target(path: Path) -> None:
    """Refuse ``path`` when it exists as anything but a regular file (links included)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeTarget(errno.ELOOP, "is a symbolic link; refusing to write through it", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeTarget(errno.EINVAL, "is not a regular file", str(path))


def open_append(path: Path, mode: int = 0o600) -> int:
    """A descriptor that appends to a regular file (created with ``mode``), never through a link."""
    return _open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)


def append_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Append ``data`` to a regular file (created with ``mode`` when missing), never through a link."""
    fd = _open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    with os.fdopen(fd, "ab") as handle:
        handle.write(data)


def create_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a new file; fails when ``path`` exists in any form."""
    fd = _open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def replace_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``data`` (mode exactly ``mode``): temp file beside it, fsync, rename.

    A link or a non-regular file at ``path`` is refused, never replaced. On any failure (a full
    disk included) the temp file is removed and ``path`` keeps its old content.
    """
    check_writable_target(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask took away, before the file is visible
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_limited(path: Path, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of a regular file, or None when it is missing, special, or larger."""
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= limit else None


class FileLock:
    """An exclusive advisory lock on ``lock_path``, opened once and taken as often as needed.

    ``with lock:`` holds it for the block (a no-op where ``fcntl`` is missing); ``close()``
    releases the file. Keeping one open costs a batch two system calls per use instead of four.
    """

    def __init__(self, lock_path: Path):
        self._fd = _open_regular(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            import fcntl
        except ImportError:
            fcntl = None
        self._fcntl = fcntl

    def __enter__(self) -> "FileLock":
        if self._fcntl is not None:
            self._fcntl.flock(self._fd, self._fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if self._fcntl is not None:
            self._fcntl.flock(self._fd, self._fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the ``with`` block (a no-op where ``fcntl`` is missing)."""
    lock = FileLock(lock_path)
    try:
        with lock:
            yield
    finally:
        lock.close()
