"""Reuse cache: the same unchanged file, model, account and backend -> the same URL.

Lives in ``$XDG_CACHE_HOME/qianwen-ops-auth/uploads.jsonl`` (default ``~/.cache``),
mode 0600: one JSON line per upload, appended as each upload finishes (so a batch
that is interrupted keeps what it did) and read once per batch. Entries are keyed
by a hash of (device, inode, size, mtime and ctime in nanoseconds, file name, model,
backend scope); the scope holds a salted account fingerprint, never a key. A hit
trusts that identity instead of re-reading the file (any write moves ctime, even
when mtime is restored), and a URL is reused only while it keeps a safe margin of
validity.

Cost per batch stays linear: appends are one line each without fsync; ``finish``
(once per batch) syncs the file once and compacts it (expired and superseded lines
dropped, atomic replace) only when it has grown well past twice its live size, from
the entries already in memory plus the lines other runs appended since they were
read. Appends and compaction hold one lock (``flock``; ``msvcrt.locking`` on Windows); the
batch's own append descriptor is closed before a compaction renames over the file (Windows
refuses to rename over an open file); every write goes through ``fsutil``
(never through a link; a FIFO or device in the cache's place is ignored, never
opened for a blocking read or write). Unreadable lines or a corrupt file are
ignored and rebuilt.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path

try:  # CPython's own BLAKE2, which is what hashlib.blake2b is, without hashlib's loading of OpenSSL (a rerun of
    # cached files hashes no file: see credentials._sha256_hex)
    from _blake2 import blake2b
except ImportError:  # an interpreter without it
    from hashlib import blake2b

from .fsutil import FileLock, make_dirs, open_append, open_for_reading, read_at, replace_file, user_dir
from .local_files import LocalFile

CACHE_VERSION = 2
MIN_MARGIN_SECONDS = 300
MARGIN_FRACTION = 0.1
COMPACT_MIN_BYTES = 256 * 1024   # never bother compacting a file smaller than this
COMPACT_FACTOR = 2.5             # compact when the file is this many times its live lines
MAX_CACHE_BYTES = 64 * 1024 * 1024


def cache_path(env: Mapping[str, str] | None = None) -> Path:
    return user_dir("cache", env) / "uploads.jsonl"


def entry_key(local: LocalFile, model: str, scope: str) -> str:
    """One hash (BLAKE2b, 256 bits) over the file's identity, the name its URL carries, the model and the scope.

    Device and inode already say which file it is, so no path is resolved (a ``realpath`` per input
    was most of the key's cost); the name is the one the object is uploaded under. No part holds a NUL.
    """
    text = (f"{local.device}\0{local.inode}\0{local.size}\0{local.mtime_ns}\0{local.ctime_ns}\0{local.name}\0"
            f"{model}\0{scope}")
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=32).hexdigest()


def still_valid(entry: dict, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    lifetime = max(0.0, entry["expires_at"] - entry["issued_at"])
    margin = max(MIN_MARGIN_SECONDS, MARGIN_FRACTION * lifetime)
    return entry["expires_at"] - now > margin


def _line(key: str, entry: dict) -> bytes:
    return (json.dumps({"v": CACHE_VERSION, "key": key, "entry": entry}) + "\n").encode("utf-8")


_PREFIX = _line("", {})[: _line("", {}).index(b'"key": "') + len(b'"key": "')]   # b'{"v": 2, "key": "'
_EXPIRES = re.compile(rb'"expires_at": (-?[0-9][0-9.eE+-]*)')


def _index(data: bytes, lines: dict) -> None:
    """Add each line of ``data`` to ``lines`` under its key (later lines win), without parsing its JSON.

    Only the key is read here; an entry is parsed when it is looked up, so reading a cache of
    thousands of entries costs a split, not thousands of ``json.loads``. Foreign lines are skipped.
    """
    start = len(_PREFIX)
    for line in data.splitlines():
        if line.startswith(_PREFIX):
            end = line.find(b'"', start)
            if end > start:
                lines[line[start:end].decode("ascii", "replace")] = line


_DECODE = json.JSONDecoder().raw_decode


def _entry(line: bytes | None) -> dict | None:
    if line is None:
        return None
    try:
        text = line.decode("utf-8")
        row, end = _DECODE(text)   # a str and no wrapper: half the cost of json.loads(bytes) per hit
    except ValueError:  # UnicodeDecodeError included
        return None  # a torn line is just a miss
    if end != len(text):
        return None
    entry = row.get("entry") if isinstance(row, dict) and row.get("v") == CACHE_VERSION else None
    return entry if isinstance(entry, dict) else None


def _alive(line: bytes, now: float) -> bool:
    found = _EXPIRES.search(line)
    try:
        return found is not None and float(found.group(1)) > now
    except ValueError:
        return False


def _open_read(path: Path) -> int | None:
    """A read-only descriptor of the cache file, or None when it is missing, a link or not a regular file."""
    try:
        return open_for_reading(path, follow_links=False)
    except OSError:
        return None


class UploadCache:
    """One batch's view of the cache: read once, appended per upload, finished once."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled
        self._lines: dict | None = None          # key -> its latest raw line
        self._read_mark: tuple | None = None     # (device, inode, size) of the file when it was read
        self._appended = False
        self._folder_ready = False
        self._mutex = threading.Lock()           # threads of one batch; other processes: the file lock
        self._file_lock: FileLock | None = None  # opened once per batch, closed by ``finish``
        self._fd: int | None = None              # the append descriptor, likewise

    # -- reading
    def _load(self) -> None:
        lines: dict = {}
        self._read_mark = None
        fd = _open_read(self.path)
        if fd is not None:
            try:
                info = os.fstat(fd)
                if info.st_size <= MAX_CACHE_BYTES:
                    _index(_read_all(fd, info.st_size), lines)
                    self._read_mark = (info.st_dev, info.st_ino, info.st_size)
            except OSError:
                lines = {}
            finally:
                os.close(fd)
        self._lines = lines

    def lookup(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        with self._mutex:
            if self._lines is None:
                self._load()
            entry = _entry(self._lines.get(key))
        try:
            return entry if entry is not None and still_valid(entry) else None
        except (KeyError, TypeError):
            return None

    # -- writing
    def _lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    def _folder(self) -> None:
        if not self._folder_ready:
            base = self.path.parent.parent
            base.mkdir(parents=True, exist_ok=True, mode=0o700)
            make_dirs(base, self.path.parent.name)
            self._folder_ready = True

    def _lock(self) -> FileLock:
        if self._file_lock is None:
            self._file_lock = FileLock(self._lock_path())
        return self._file_lock

    def _append_fd(self) -> int:
        """The batch's append descriptor (file lock held); reopened when another run replaced the file."""
        if self._fd is not None:
            try:
                now, held = os.stat(self.path, follow_symlinks=False), os.fstat(self._fd)
                replaced = (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)
            except OSError:
                replaced = True
            if replaced:  # another run compacted it: keep appending to the file in place, not the old one
                os.close(self._fd)
                self._fd = None
        if self._fd is None:
            torn = _torn(self.path)
            self._fd = open_append(self.path)
            if torn:
                _write_all(self._fd, b"\n")
        return self._fd

    def store(self, new_entries: Mapping[str, dict]) -> None:
        """Append entries, one line each (no fsync: ``finish`` syncs once per batch)."""
        if not self.enabled or not new_entries:
            return
        new_lines = {k: _line(k, e) for k, e in new_entries.items()}
        try:
            with self._mutex:
                self._folder()
                with self._lock():
                    _write_all(self._append_fd(), b"".join(new_lines.values()))
                self._appended = True
                if self._lines is not None:
                    self._lines.update((k, v.rstrip(b"\n")) for k, v in new_lines.items())
        except (OSError, ValueError):
            return  # a cache that cannot be written only costs a re-upload next time

    def finish(self) -> None:
        """End of a batch: one fsync, and a compaction only when the file is well past its live size."""
        if not self.enabled or not self._appended:
            self._close()
            return
        try:
            with self._mutex, self._lock():
                self._appended = False
                fd = _open_read(self.path)
                if fd is None:
                    return
                try:
                    info = os.fstat(fd)
                    if info.st_size <= COMPACT_MIN_BYTES:
                        os.fsync(fd)
                        return
                    lines = self._current(fd, info)
                    now = time.time()
                    live = [line for line in lines.values() if _alive(line, now)]
                    if info.st_size <= COMPACT_FACTOR * sum(len(line) + 1 for line in live):
                        os.fsync(fd)
                        return
                finally:
                    os.close(fd)
                self._close_append()  # Windows cannot rename over a file this process holds open
                replace_file(self.path, b"".join(line + b"\n" for line in live))
                self._read_mark = None
                self._lines = None
        except (OSError, ValueError):
            return
        finally:
            self._close()

    def _close_append(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _close(self) -> None:
        try:
            if self._fd is not None:
                os.close(self._fd)
            if self._file_lock is not None:
                self._file_lock.close()
        except OSError:
            pass
        self._fd = self._file_lock = None

    def _current(self, fd: int, info: os.stat_result) -> dict:
        """Every line in effect in the file now (lock held): those read at start plus the ones appended since."""
        mark = self._read_mark
        if self._lines is not None and mark is not None and mark[:2] == (info.st_dev, info.st_ino) \
                and info.st_size >= mark[2]:
            lines = dict(self._lines)
            tail = _read_all(fd, info.st_size - mark[2], offset=mark[2])
            start = tail.find(b"\n") + 1 if mark[2] and not _ends_line(fd, mark[2]) else 0
            _index(tail[start:], lines)
            return lines
        lines: dict = {}
        if info.st_size <= MAX_CACHE_BYTES:
            _index(_read_all(fd, info.st_size), lines)
        return lines


def _torn(path: Path) -> bool:
    """True when the file ends inside a line (a writer died mid-append): the next line must start fresh."""
    fd = _open_read(path)
    if fd is None:
        return False
    try:
        size = os.fstat(fd).st_size
        return size > 0 and not _ends_line(fd, size)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _ends_line(fd: int, size: int) -> bool:
    return read_at(fd, 1, size - 1) == b"\n"


def _read_all(fd: int, size: int, offset: int = 0) -> bytes:
    parts, left = [], size
    while left > 0:
        chunk = read_at(fd, min(left, 1 << 20), offset)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)
