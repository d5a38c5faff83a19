"""Reuse cache: the same unchanged file, model, account and backend -> the same URL.

Lives in ``$XDG_CACHE_HOME/qianwen-ops-auth/uploads.jsonl`` (default ``~/.cache``),
mode 0600: one JSON line per upload, appended as each upload finishes (so a batch
that is interrupted keeps what it did), read once per batch, and compacted (expired
and superseded lines dropped) when it grows. Entries are keyed by a hash of (real
path, size, mtime, inode, model, backend scope); the scope holds a salted account
fingerprint, never a key. A hit also re-checks the file's sha256, and a URL is
reused only while it keeps a safe margin of validity. Appends and compaction take
an exclusive lock; unreadable lines or a corrupt file are ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

from .fsutil import replace_file
from .local_files import LocalFile

CACHE_VERSION = 1
MIN_MARGIN_SECONDS = 300
MARGIN_FRACTION = 0.1
COMPACT_BYTES = 512 * 1024
MAX_CACHE_BYTES = 64 * 1024 * 1024


def cache_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "qianwen-ops-auth" / "uploads.jsonl"


def entry_key(local: LocalFile, model: str, scope: str) -> str:
    parts = [str(local.path.resolve()), local.size, local.mtime_ns, local.inode, model, scope]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def still_valid(entry: dict, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    lifetime = max(0.0, entry["expires_at"] - entry["issued_at"])
    margin = max(MIN_MARGIN_SECONDS, MARGIN_FRACTION * lifetime)
    return entry["expires_at"] - now > margin


def _lines(entries: Mapping[str, dict]) -> str:
    return "".join(json.dumps({"v": CACHE_VERSION, "key": k, "entry": e}) + "\n" for k, e in entries.items())


def _parse(data: bytes) -> dict:
    entries: dict = {}
    for line in data.splitlines():
        try:
            row = json.loads(line)
            if row.get("v") == CACHE_VERSION and isinstance(row.get("entry"), dict):
                entries[row["key"]] = row["entry"]
        except (ValueError, AttributeError, KeyError, TypeError):
            continue  # a torn or foreign line is just a miss
    return entries


class UploadCache:
    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled
        self._entries: dict | None = None

    def _read_file(self) -> dict:
        try:
            if self.path.stat().st_size > MAX_CACHE_BYTES:
                return {}
            return _parse(self.path.read_bytes())
        except OSError:
            return {}

    def lookup(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        if self._entries is None:
            self._entries = self._read_file()
        entry = self._entries.get(key)
        try:
            return entry if isinstance(entry, dict) and still_valid(entry) else None
        except (KeyError, TypeError):
            return None

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl

                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            except ImportError:  # not on POSIX: appends are still whole lines
                pass
            yield
        finally:
            os.close(lock_fd)

    def store(self, new_entries: Mapping[str, dict]) -> None:
        """Append entries (one line each); compact the file when it has grown large."""
        if not self.enabled or not new_entries:
            return
        lines = _lines(new_entries)
        try:
            with self._locked():
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a+b") as handle:
                    size = handle.seek(0, os.SEEK_END)
                    torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
                    handle.write((b"\n" if torn else b"") + lines.encode("utf-8"))
                if self.path.stat().st_size > COMPACT_BYTES:
                    self._compact()
        except OSError:
            return  # a cache that cannot be written only costs a re-upload next time
        if self._entries is not None:
            self._entries.update(new_entries)

    def _compact(self) -> None:
        """Rewrite without expired or superseded lines (lock held)."""
        now = time.time()
        live = {k: e for k, e in self._read_file().items()
                if isinstance(e.get("expires_at"), (int, float)) and e["expires_at"] > now}
        replace_file(self.path, _lines(live).encode("utf-8"))
