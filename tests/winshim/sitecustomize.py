"""Windows semantics for the test suite, on Linux (and macOS): what CPython on Windows lacks is
removed and what it has instead is provided, so the real scripts can run as a Windows user's would.

Python imports this file at start-up (``site`` imports ``sitecustomize``) when this folder is on
``PYTHONPATH``; ``QWEN_WINSHIM_LOG`` names a file that receives one JSON line per event, and the
layer only acts when it is set. In the process:

* gone, as on Windows (Python 3.9-3.12): ``os.fchmod``, ``os.geteuid``/``getuid``/``getgid``...,
  ``os.pread``/``pwrite``, ``os.sendfile``, ``os.mkfifo``, ``os.set_blocking`` (before 3.12),
  ``os.O_NOFOLLOW``, ``os.O_NONBLOCK``; ``import fcntl``, ``pwd``, ``grp``, ``resource`` fail;
* added: ``os.O_BINARY`` (0x8000, Windows' value; stripped before the real ``os.open``) and a
  ``msvcrt`` module whose ``locking`` keeps Windows' rules (a byte range from the current
  position, per handle; ``LK_NBLCK`` on a held range and ``LK_UNLCK`` of a range not held raise
  ``PermissionError``), built on ``flock`` so two handles conflict even in one process;
* checked: every ``os.open`` that yields a regular file without ``O_BINARY`` is logged as
  ``text-mode-open`` with its caller (on Windows that fd would translate CRLF and stop at 0x1A);
* Windows' sharing rules: ``os.replace``/``os.rename``/``os.unlink`` of a file this process holds
  open raise ``PermissionError`` with ``winerror`` 5/32 (CPython opens files without
  ``FILE_SHARE_DELETE``), ``os.rename`` over an existing file raises ``FileExistsError``.

``subprocess`` is imported first: it takes an importable ``msvcrt`` as the sign of Windows.
Not simulated: path syntax (drive letters, ``\\``; see tests/test_windows_paths.py), the console,
signals, ACLs and ``st_mode``, other processes' handles.
"""

import errno
import json
import os
import stat
import sys
import types

O_BINARY = 0x8000
REMOVED = ("fchmod", "lchmod", "fchown", "chown", "lchown", "geteuid", "getuid", "getegid", "getgid",
           "getgroups", "pread", "pwrite", "sendfile", "mkfifo", "mknod", "getloadavg", "O_NOFOLLOW", "O_NONBLOCK")
BLOCKED_MODULES = ("fcntl", "pwd", "grp", "resource")


def _log(event: str, **fields) -> None:
    path = os.environ.get("QWEN_WINSHIM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\n")


def _caller(depth: int = 2) -> str:
    frame = sys._getframe(depth)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class Msvcrt(types.ModuleType):
    """``msvcrt.locking`` with Windows' rules, on ``fcntl.flock`` (whole file: callers lock one byte)."""

    LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4

    def __init__(self, fcntl_module, log=lambda event, **fields: None):
        super().__init__("msvcrt")
        self._fcntl = fcntl_module
        self._held: dict = {}   # fd -> (position, nbytes)
        self._log = log

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        position = os.lseek(fd, 0, os.SEEK_CUR)
        self._log("msvcrt.locking", mode=mode, position=position, nbytes=nbytes)
        if mode == self.LK_UNLCK:
            if self._held.get(fd) != (position, nbytes):
                raise PermissionError(errno.EACCES, "Permission denied (no lock on this range)")
            self._fcntl.flock(fd, self._fcntl.LOCK_UN)
            del self._held[fd]
            return
        if fd in self._held:
            raise PermissionError(errno.EACCES, "Permission denied (range already locked by this handle)")
        tries = 1 if mode in (self.LK_NBLCK, self.LK_NBRLCK) else 10   # LK_LOCK: 10 tries, 1 s apart
        for attempt in range(tries):
            try:
                self._fcntl.flock(fd, self._fcntl.LOCK_EX | self._fcntl.LOCK_NB)
                self._held[fd] = (position, nbytes)
                return
            except BlockingIOError:
                if attempt + 1 < tries:
                    import time

                    time.sleep(1)
        if tries == 1:
            raise PermissionError(errno.EACCES, "Permission denied")
        raise OSError(errno.EDEADLK, "Resource deadlock avoided")


def _held_open(path) -> bool:
    """True when a descriptor of this process refers to ``path`` (not following a final link)."""
    try:
        target = os.lstat(path)
    except (OSError, ValueError):
        return False
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for name in names:
        try:
            info = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


def _sharing_violation(winerror: int, *paths) -> PermissionError:
    text = "Access is denied" if winerror == 5 else ("The process cannot access the file because it is being "
                                                     "used by another process")
    first, second = os.fsdecode(paths[0]), (os.fsdecode(paths[1]) if len(paths) > 1 else None)
    exc = PermissionError(errno.EACCES, f"[WinError {winerror}] {text}", first, None, second)
    exc.winerror = winerror   # CPython on Windows sets it; code that retries a sharing violation reads it
    return exc


def install() -> None:
    import fcntl as real_fcntl
    import subprocess  # noqa: F401 - decides "not Windows" before a msvcrt module exists

    for name in REMOVED:
        if hasattr(os, name):
            delattr(os, name)
    if sys.version_info < (3, 12) and hasattr(os, "set_blocking"):
        del os.set_blocking
    for name in BLOCKED_MODULES:
        sys.modules[name] = None
    sys.modules["msvcrt"] = Msvcrt(real_fcntl, _log)
    os.O_BINARY = O_BINARY

    real_open, real_replace, real_rename, real_unlink = os.open, os.replace, os.rename, os.unlink

    def open_(path, flags, mode=0o777, *, dir_fd=None):
        fd = real_open(path, flags & ~O_BINARY, mode, dir_fd=dir_fd)
        if not flags & O_BINARY:
            try:
                regular = stat.S_ISREG(os.fstat(fd).st_mode)
            except OSError:
                regular = False
            if regular:
                _log("text-mode-open", path=os.fsdecode(path), caller=_caller())
        return fd

    def replace(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        if _held_open(src) or _held_open(dst):
            _log("replace-refused", src=os.fsdecode(src), dst=os.fsdecode(dst), caller=_caller())
            raise _sharing_violation(5, src, dst)
        return real_replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    def rename(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "[WinError 183] Cannot create a file when that file already exists",
                                  str(src), None, str(dst))
        if _held_open(src):
            raise _sharing_violation(32, src, dst)
        return real_rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    def unlink(path, *, dir_fd=None):
        if _held_open(path):
            _log("unlink-refused", path=os.fsdecode(path), caller=_caller())
            raise _sharing_violation(32, path)
        return real_unlink(path, dir_fd=dir_fd)

    os.open, os.replace, os.rename = open_, replace, rename
    os.unlink = os.remove = unlink
    _log("loaded", python=sys.version.split()[0])


if __name__ == "sitecustomize" and os.environ.get("QWEN_WINSHIM_LOG"):
    install()
