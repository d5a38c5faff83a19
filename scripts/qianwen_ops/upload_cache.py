"""Reuse cache: the same unchanged file, model, account and backend -> the same URL.

Lives in ``$XDG_CACHE_HOME/qianwen-ops-auth/uploads.json`` (default ``~/.cache``),
mode 0600. Entries are keyed by a hash of (real path, size, mtime, inode, model,
backend scope); the scope holds a salted account fingerprint, never a key. A hit
also re-checks the file's sha256. A URL is reused only while it keeps a safe
margin of validity. Writers take an exclusive lock and replace the file
atomically; a corrupt file is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .local_files import LocalFile

CACHE_VERSION = 1
MIN_MARGIN_SECONDS = 300
MARGIN_FRACTION = 0.1


def cache_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "qianwen-ops-auth" / "uploads.json"


def entry_key(local: LocalFile, model: str, scope: str) -> str:
    parts = [str(local.path.resolve()), local.size, local.mtime_ns, local.inode, model, scope]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def still_valid(entry: dict, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    lifetime = max(0.0, entry["expires_at"] - entry["issued_at"])
    margin = max(MIN_MARGIN_SECONDS, MARGIN_FRACTION * lifetime)
    return entry["expires_at"] - now > margin


@dataclass
class UploadCache:
    path: Path
    enabled: bool = True

    def _read(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            entries = data.get("entries") if isinstance(data, dict) else None
            if isinstance(entries, dict) and data.get("version") == CACHE_VERSION:
                return entries
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        return {}

    def lookup(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            if not still_valid(entry):
                return None
        except (KeyError, TypeError):
            return None
        return entry

    @contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl

                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            except ImportError:  # not on POSIX: the atomic replace still keeps the file whole
                pass
            yield
        finally:
            os.close(lock_fd)

    def store(self, new_entries: Mapping[str, dict]) -> None:
        """Merge entries into the file under the lock; drop expired ones."""
        if not self.enabled or not new_entries:
            return
        try:
            with self._locked():
                entries = {k: v for k, v in self._read().items()
                           if isinstance(v, dict) and isinstance(v.get("expires_at"), (int, float))
                           and v["expires_at"] > time.time()}
                entries.update(new_entries)
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump({"version": CACHE_VERSION, "entries": entries}, handle)
                os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs a re-upload next time
