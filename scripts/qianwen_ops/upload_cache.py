"""Reuse cache: the same unchanged file, model, account and backend -> the same URL.

Lives in ``$XDG_CACHE_HOME/qianwen-ops-auth/uploads.jsonl`` (default ``~/.cache``),
mode 0600: one JSON line per upload, appended as each upload finishes (so a batch
that is interrupted keeps what it did) and read once per batch. Entries are keyed
by a hash of (real path, device, inode, size, mtime and ctime in nanoseconds, model,
backend scope); the scope holds a salted account fingerprint, never a key. A hit
trusts that identity instead of re-reading the file (any write moves ctime, even
when mtime is restored), and a URL is reused only while it keeps a safe margin of
validity.

Cost per batch stays linear: appends are one line each without fsync; ``finish``
(once per batch) syncs the file once and compacts it (expired and superseded lines
dropped, atomic replace) only when it has grown well past twice its live size, from
the entries already in memory plus the lines other runs appended since they were
read. Appends and compaction hold one lock; every write goes through ``fsutil``
(never through a link; a FIFO or device in the cache's place is ignored, never
opened for a blocking read or write). Unreadable lines or a corrupt file are
ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Mapping

from .fsutil import append_file, locked, make_dirs, replace_file, user_dir
from .local_files import LocalFile

CACHE_VERSION = 2
MIN_MARGIN_SECONDS = 300
MARGIN_FRACTION = 0.1
COMPACT_MIN_BYTES = 256 * 1024   # never bother compacting a file smaller than this
COMPACT_FACTOR = 2.5             # compact when the file is this many times its live lines
MAX_CACHE_BYTES = 64 * 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def cache_path(env: Mapping[str, str] | None = None) -> Path:
    return user_dir("cache", env) / "uploads.jsonl"


def entry_key(local: LocalFile, model: str, scope: str) -> str:
    parts = [str(local.path.resolve()), *local.identity, model, scope]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def still_valid(entry: dict, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    lifetime = max(0.0, entry["expires_at"] - entry["issued_at"])
    margin = max(MIN_MARGIN_SECONDS, MARGIN_FRACTION * lifetime)
    return entry["expires_at"] - now > margin


def _line(key: str, entry: dict) -> bytes:
    return (json.dumps({"v": CACHE_VERSION, "key": key, "entry": entry}) + "\n").encode("utf-8")


def _parse(data: bytes, entries: dict, sizes: dict) -> None:
    """Add the valid lines of ``data`` to ``entries`` (later lines win); ``sizes`` gets each line's bytes."""
    for line in data.splitlines():
        try:
            row = json.loads(line)
            if row.get("v") == CACHE_VERSION and isinstance(row.get("entry"), dict) and isinstance(row["key"], str):
                entries[row["key"]] = row["entry"]
                sizes[row["key"]] = len(line) + 1
        except (ValueError, AttributeError, KeyError, TypeError):
            continue  # a torn or foreign line is just a miss


def _open_read(path: Path) -> int | None:
    """A read-only descriptor of the cache file, or None when it is missing, a link or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _alive(entry: dict, now: float) -> bool:
    expires = entry.get("expires_at")
    return isinstance(expires, (int, float)) and expires > now


class UploadCache:
    """One batch's view of the cache: read once, appended per upload, finished once."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled
        self._entries: dict | None = None
        self._sizes: dict = {}                   # key -> bytes of its latest line
        self._read_mark: tuple | None = None     # (device, inode, size) of the file when it was read
        self._appended = False
        self._mutex = threading.Lock()           # threads of one batch; other processes: the file lock

    # -- reading
    def _load(self) -> None:
        entries: dict = {}
        self._sizes = {}
        self._read_mark = None
        fd = _open_read(self.path)
        if fd is not None:
            try:
                info = os.fstat(fd)
                if info.st_size <= MAX_CACHE_BYTES:
                    _parse(_read_all(fd, info.st_size), entries, self._sizes)
                    self._read_mark = (info.st_dev, info.st_ino, info.st_size)
            except OSError:
                entries = {}
            finally:
                os.close(fd)
        self._entries = entries

    def lookup(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        with self._mutex:
            if self._entries is None:
                self._load()
            entry = self._entries.get(key)
        try:
            return entry if isinstance(entry, dict) and still_valid(entry) else None
        except (KeyError, TypeError):
            return None

    # -- writing
    def _lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    def _folder(self) -> None:
        base = self.path.parent.parent
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        make_dirs(base, self.path.parent.name)

    def store(self, new_entries: Mapping[str, dict]) -> None:
        """Append entries, one line each (no fsync: ``finish`` syncs once per batch)."""
        if not self.enabled or not new_entries:
            return
        data = b"".join(_line(k, e) for k, e in new_entries.items())
        try:
            with self._mutex:
                self._folder()
                with locked(self._lock_path()):
                    append_file(self.path, (b"\n" if _torn(self.path) else b"") + data)
                self._appended = True
                if self._entries is not None:
                    self._entries.update(new_entries)
        except (OSError, ValueError):
            return  # a cache that cannot be written only costs a re-upload next time

    def finish(self) -> None:
        """End of a batch: one fsync, and a compaction only when the file is well past its live size."""
        if not self.enabled or not self._appended:
            return
        try:
            with self._mutex, locked(self._lock_path()):
                self._appended = False
                fd = _open_read(self.path)
                if fd is None:
                    return
                try:
                    info = os.fstat(fd)
                    if info.st_size <= COMPACT_MIN_BYTES:
                        os.fsync(fd)
                        return
                    entries, sizes = self._current(fd, info)
                finally:
                    os.close(fd)
                now = time.time()
                live = {k: e for k, e in entries.items() if _alive(e, now)}
                live_bytes = sum(sizes.get(k, 0) for k in live)
                if info.st_size > COMPACT_FACTOR * live_bytes:
                    replace_file(self.path, b"".join(_line(k, e) for k, e in live.items()))
                    self._entries, self._sizes = dict(live), {k: sizes[k] for k in live if k in sizes}
                    self._read_mark = None
                else:
                    fd = _open_read(self.path)
                    if fd is not None:
                        try:
                            os.fsync(fd)
                        finally:
                            os.close(fd)
        except (OSError, ValueError):
            return

    def _current(self, fd: int, info: os.stat_result) -> tuple:
        """Every entry in the file now (lock held): the ones read at start plus the lines appended since."""
        mark = self._read_mark
        if self._entries is not None and mark is not None and mark[:2] == (info.st_dev, info.st_ino) \
                and info.st_size >= mark[2]:
            entries, sizes = dict(self._entries), dict(self._sizes)
            tail = _read_all(fd, info.st_size - mark[2], offset=mark[2])
            start = tail.find(b"\n") + 1 if mark[2] and not _ends_line(fd, mark[2]) else 0
            _parse(tail[start:], entries, sizes)
            return entries, sizes
        entries, sizes = {}, {}
        if info.st_size <= MAX_CACHE_BYTES:
            _parse(_read_all(fd, info.st_size), entries, sizes)
        return entries, sizes


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


def _ends_line(fd: int, size: int) -> bool:
    return os.pread(fd, 1, size - 1) == b"\n"


def _read_all(fd: int, size: int, offset: int = 0) -> bytes:
    parts, left = [], size
    while left > 0:
        chunk = os.pread(fd, min(left, 1 << 20), offset)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)
