"""Reading and writing files the user (or a cloned repository) may have prepared: the one place that decides how.

Rules every reader and writer in the bundle follows:

* a file is read only when it is a regular file, opened without blocking and checked with ``fstat``
  (``open_for_reading``; bounded: ``read_regular``, ``read_limited``), so a FIFO or device is never
  waited on;
* never follow a symbolic link when writing, neither the file itself nor any folder created on the way;
* never open anything but a regular file for writing (a FIFO, device or socket is refused
  without blocking: ``O_NONBLOCK`` on open, then ``fstat``);
* replacing a file's content is atomic (private temp file, fsync, rename);
* the per-user cache and state folders come from one lookup (``user_dir``);
* every ``os.open`` of a file passes ``O_BINARY`` (0 except on Windows, where an fd opened
  without it translates CRLF and stops reading at byte 0x1A), and nothing here needs a
  POSIX-only call: ``fchmod`` (Windows has it only from Python 3.13), ``pread`` (``read_at``)
  and locks (``fcntl.flock``, else ``msvcrt.locking`` on Windows) have fallbacks;
* a rename over a file another handle holds open fails on Windows (sharing violation, often
  an antivirus scanner for a moment): ``replace_file`` retries it briefly.

Refusals raise ``UnsafeTarget``, an ``OSError``, so a caller that treats a failed write
as "not saved" keeps working without a special case.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

APP_DIR = "qianwen-ops-auth"
HOME_VARIABLES = ("HOME", "USERPROFILE", "HOMEDRIVE", "HOMEPATH")   # where the environment names the home folder
# The open flags of the whole bundle (0 where the platform lacks one); skill_state.py keeps its own copies,
# as it must work in the sibling skill without this package.
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)   # never through a link
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)   # a FIFO or device is never waited on (then fstat says what it is)
O_BINARY = getattr(os, "O_BINARY", 0)       # every os.open of a file ORs this in (see the module docstring)
REPLACE_RETRY_SECONDS = 1.0             # how long a rename blocked by another handle is retried (Windows)
_SHARING_ERRORS = (5, 32, 33)           # winerror: access denied, sharing violation, lock violation


class UnsafeTarget(OSError):
    """A write was refused: the target is a link, not a regular file, or lies behind a link."""


def account_home() -> str | None:
    """The home folder the system's account database gives this user (POSIX ``pwd``); None where there is none."""
    try:
        import pwd  # deferred: only when the environment names no home folder
    except ImportError:
        return None
    try:
        return pwd.getpwuid(os.getuid()).pw_dir or None
    except KeyError:
        return None


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user's home folder: ``HOME`` in ``env`` (on Windows then ``USERPROFILE``, then ``HOMEDRIVE`` +
    ``HOMEPATH``, as ``ntpath.expanduser`` reads them), else the account's own (``account_home``).

    Give it ``Settings.env``, where ``provenance`` has judged these names: never ``os.path.expanduser``,
    which reads ``os.environ``, where ``load_dotenv()`` may have copied a repository's ``HOME``. When the
    environment held a home folder that was set aside and the system names none, ``QwenOpsError`` (CONFIG).
    """
    env = os.environ if env is None else env
    named = env.get("HOME")
    if not named and os.name == "nt":
        named = env.get("USERPROFILE") or (env.get("HOMEDRIVE", "") + env["HOMEPATH"] if env.get("HOMEPATH") else "")
    named = named or account_home()
    if named:
        return Path(named)
    if not any(os.environ.get(name) for name in HOME_VARIABLES):
        return Path(os.path.expanduser("~"))   # nothing names it anywhere: what Python makes of that
    from .errors import CONFIG, QwenOpsError

    raise QwenOpsError("cannot tell your home folder: the one in the environment was set aside (see the warning "
                       "above) and the system names none for your account; set HOME yourself", CONFIG)


def user_dir(kind: str, env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/qianwen-ops-auth`` (``kind="cache"``) or ``$XDG_STATE_HOME/...`` (``"state"``)."""
    env = os.environ if env is None else env
    variable, default = {"cache": ("XDG_CACHE_HOME", ".cache"), "state": ("XDG_STATE_HOME", ".local/state")}[kind]
    base = env.get(variable) or str(home_dir(env) / default)
    return Path(base) / APP_DIR


def is_within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies below it, compared as written (resolve both first where links matter)."""
    return path == folder or folder in path.parents


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
        fd = os.open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_BINARY, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or os.path.islink(path):
            raise UnsafeTarget(errno.ELOOP, "is a symbolic link; refusing to write through it", str(path)) from None
        if exc.errno == errno.ENXIO:  # a FIFO with no reader, opened non-blocking for writing
            raise UnsafeTarget(errno.ENXIO, "is not a regular file", str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeTarget(errno.EINVAL, "is not a regular file", str(path))
    if O_NONBLOCK:
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
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_BINARY, mode)
    try:
        _set_mode(fd, tmp, mode)  # exactly ``mode``, whatever the umask took away, before the file is visible
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        replace_retrying(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _set_mode(fd: int, path: Path, mode: int) -> None:
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:  # Windows before 3.13: only the read-only bit exists, and ``mode`` keeps the file writable
        os.chmod(path, mode)


def replace_retrying(src: Path, dst: Path, seconds: float = REPLACE_RETRY_SECONDS) -> None:
    """``os.replace``, retried for up to ``seconds`` while Windows reports the target in use by another
    handle (a reader, an indexer, an antivirus scan); any other error, or a longer hold, is raised."""
    deadline, pause = time.monotonic() + seconds, 0.005
    while True:
        try:
            os.replace(src, dst)
            return
        except PermissionError as exc:
            if getattr(exc, "winerror", None) not in _SHARING_ERRORS or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def read_at(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset``: ``os.pread`` where it exists, else seek and read (Windows)."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def open_for_reading(path: Path, follow_links: bool = True) -> int:
    """A read-only descriptor of the regular file ``path``, for a file a user or a cloned repository may have
    prepared (a ``.env``, a key or config file, the cache, a file to inline).

    Opened non-blocking, so a FIFO or device is never waited on, then checked with ``fstat``: anything
    but a regular file raises ``UnsafeTarget``; ``follow_links=False`` refuses a link too (``ELOOP``).
    Other failures raise as ``os.open`` does (``FileNotFoundError``, ``PermissionError``...).
    """
    fd = os.open(path, os.O_RDONLY | O_NONBLOCK | O_BINARY | (0 if follow_links else O_NOFOLLOW))
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        raise UnsafeTarget(errno.EINVAL, "is not a regular file", str(path))
    return fd


def read_regular(path: Path, limit: int) -> tuple[bytes, int] | None:
    """(up to ``limit + 1`` bytes, permission bits) of the regular file ``path``; None when it is missing or
    not a regular file (then nothing is read). Any other failure raises ``OSError``."""
    try:
        fd = open_for_reading(path)
    except (FileNotFoundError, UnsafeTarget):
        return None
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit + 1), mode
    finally:
        os.close(fd)


def read_limited(path: Path, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of a regular file, or None when it is missing, special, larger or unreadable."""
    try:
        found = read_regular(path, limit)
    except OSError:
        return None
    return found[0] if found is not None and len(found[0]) <= limit else None


def _lock_api():
    """``("fcntl", module)``, ``("msvcrt", module)`` (Windows) or ``(None, None)``: how files are locked here."""
    try:
        import fcntl  # POSIX only

        return "fcntl", fcntl
    except ImportError:
        pass
    try:
        import msvcrt  # Windows only

        return "msvcrt", msvcrt
    except ImportError:
        return None, None


def try_lock(fd: int, api=None) -> bool:
    """Take an exclusive lock on ``fd``'s file without waiting; False when another handle holds it.

    With ``fcntl`` a whole-file ``flock``; with ``msvcrt`` (Windows) a lock on the file's first
    byte, which every user of the same lock file takes, so the two mean the same. A platform with
    neither has no locking: True.
    """
    kind, module = api or _lock_api()
    if kind == "fcntl":
        try:
            module.flock(fd, module.LOCK_EX | module.LOCK_NB)
        except BlockingIOError:
            return False
    elif kind == "msvcrt":
        os.lseek(fd, 0, os.SEEK_SET)   # msvcrt locks from the current position
        try:
            module.locking(fd, module.LK_NBLCK, 1)
        except OSError:                # EACCES / EDEADLOCK: held by another handle
            return False
    return True


def unlock(fd: int, api=None) -> None:
    kind, module = api or _lock_api()
    if kind == "fcntl":
        module.flock(fd, module.LOCK_UN)
    elif kind == "msvcrt":
        os.lseek(fd, 0, os.SEEK_SET)
        module.locking(fd, module.LK_UNLCK, 1)


class FileLock:
    """An exclusive lock on ``lock_path``, opened once and taken as often as needed.

    ``with lock:`` holds it for the block (``flock``, or ``msvcrt.locking`` on Windows, polled);
    ``close()`` releases the file. Keeping one open costs a batch two system calls per use instead
    of four.
    """

    def __init__(self, lock_path: Path, api=None):
        self._fd = _open_regular(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._api = api or _lock_api()

    def __enter__(self) -> "FileLock":
        kind, module = self._api
        if kind == "fcntl":
            module.flock(self._fd, module.LOCK_EX)
            return self
        pause = 0.002
        while not try_lock(self._fd, self._api):  # msvcrt cannot wait for a lock without a 1 s step
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return self

    def __exit__(self, *exc) -> None:
        unlock(self._fd, self._api)

    def close(self) -> None:
        os.close(self._fd)


@contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive lock held for the ``with`` block (see ``FileLock``)."""
    lock = FileLock(lock_path)
    try:
        with lock:
            yield
    finally:
        lock.close()
