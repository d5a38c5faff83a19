"""Objects on disk, written in chunks and published atomically (no partial objects)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

O_BINARY = getattr(os, "O_BINARY", 0)  # as qianwen_ops.fsutil.O_BINARY (no text-mode fd on Windows)


class AlreadyExists(Exception):
    pass


@dataclass
class ObjectMeta:
    bucket: str
    key: str
    size: int
    etag: str
    sha256: str
    content_type: str
    created: float
    path: Path
    multipart_parts: int = 0
    extra: dict = field(default_factory=dict)   # account, model, expires_at for temp storage


class Writer:
    """A temporary file that hashes what is written to it (sha256 only when asked: parts skip it)."""

    def __init__(self, folder: Path, sha256: bool = True):
        self.path = folder / f"upload-{uuid.uuid4().hex}"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_BINARY, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5(usedforsecurity=False)  # OSS ETags are MD5
        self._sha = hashlib.sha256() if sha256 else None
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._md5.update(data)
        if self._sha is not None:
            self._sha.update(data)
        self.size += len(data)

    def append_file(self, path: Path, size: int) -> None:
        """Append another file's bytes without hashing them (the caller knows their digest)."""
        self._file.flush()
        with open(path, "rb") as src:
            if not hasattr(os, "sendfile"):  # Windows: copy through memory
                left = size
                while left > 0:
                    chunk = src.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    self._file.write(chunk)
                    left -= len(chunk)
                self.size += size
                return
            copied = 0
            while copied < size:
                sent = os.sendfile(self._file.fileno(), src.fileno(), copied, size - copied)
                if sent == 0:
                    break
                copied += sent
        self.size += size

    def finish(self) -> tuple[str, str]:
        self._file.close()
        return self._md5.hexdigest(), self._sha.hexdigest() if self._sha is not None else ""

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


@dataclass
class MultipartUpload:
    bucket: str
    key: str
    upload_id: str
    content_type: str
    parts: dict = field(default_factory=dict)    # number -> (path, size, etag, created)


class ObjectStore:
    """Objects under ``root/objects``; their index (an append-only ``root/index.jsonl``) survives a restart."""

    def __init__(self, root: Path):
        self.root = root
        self._tmp = root / "tmp"
        self._data = root / "objects"
        self._index = root / "index.jsonl"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._data.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._objects: dict = {}
        self._uploads: dict = {}
        self._load()

    def _load(self) -> None:
        """Replay the journal: later lines win; objects whose file is gone are dropped."""
        try:
            lines = self._index.read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        for line in lines:
            try:
                row = json.loads(line)
                if row["op"] == "put":
                    meta = ObjectMeta(**{**row["meta"], "path": Path(row["meta"]["path"])})
                    self._objects[(meta.bucket, meta.key)] = meta
                else:
                    self._objects.pop((row["bucket"], row["key"]), None)
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash
        self._objects = {k: m for k, m in self._objects.items() if m.path.exists()}

    def _journal(self, row: dict) -> None:
        """Called with the lock held: one appended line per change (O(1), crash-safe enough for a sandbox)."""
        with open(self._index, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def writer(self, sha256: bool = True) -> Writer:
        return Writer(self._tmp, sha256)

    def sha256(self, meta: ObjectMeta) -> str:
        """The object's sha256, computed on first use for objects joined from parts."""
        if not meta.sha256:
            digest = hashlib.sha256()
            with open(meta.path, "rb") as src:
                for chunk in iter(lambda: src.read(1024 * 1024), b""):
                    digest.update(chunk)
            meta.sha256 = digest.hexdigest()
        return meta.sha256

    def _object_path(self, bucket: str, key: str) -> Path:
        digest = hashlib.sha256(f"{bucket}\0{key}".encode("utf-8")).hexdigest()
        return self._data / f"{digest}-{uuid.uuid4().hex[:8]}"

    def commit(self, bucket: str, key: str, writer: Writer, content_type: str,
               forbid_overwrite: bool = False, parts: int = 0, etag: str = "", **extra) -> ObjectMeta:
        md5, sha = writer.finish()
        with self._lock:
            old = self._objects.get((bucket, key))
            if old is not None and forbid_overwrite:
                writer.discard()
                raise AlreadyExists(key)
            target = self._object_path(bucket, key)
            os.replace(writer.path, target)
            meta = ObjectMeta(bucket, key, writer.size, etag or f'"{md5.upper()}"', sha, content_type,
                              time.time(), target, parts, dict(extra))
            self._objects[(bucket, key)] = meta
            self._journal({"op": "put", "meta": {**meta.__dict__, "path": str(meta.path)}})
        if old is not None:
            old.path.unlink(missing_ok=True)
        return meta

    def get(self, bucket: str, key: str) -> ObjectMeta | None:
        with self._lock:
            return self._objects.get((bucket, key))

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            meta = self._objects.pop((bucket, key), None)
            self._journal({"op": "del", "bucket": bucket, "key": key})
        if meta is not None:
            meta.path.unlink(missing_ok=True)

    def purge(self) -> int:
        """Delete every object (benchmarks reuse one sandbox without filling the disk)."""
        with self._lock:
            gone = list(self._objects.values())
            self._objects.clear()
            self._index.write_text("", encoding="utf-8")
        for meta in gone:
            meta.path.unlink(missing_ok=True)
        return len(gone)

    def listing(self) -> list:
        with self._lock:
            objects = list(self._objects.values())
        return [{"bucket": m.bucket, "key": m.key, "size": m.size, "sha256": self.sha256(m),
                 "parts": m.multipart_parts} for m in objects]

    # -- multipart
    def initiate(self, bucket: str, key: str, content_type: str) -> str:
        upload_id = uuid.uuid4().hex.upper()
        with self._lock:
            self._uploads[upload_id] = MultipartUpload(bucket, key, upload_id, content_type)
        return upload_id

    def upload(self, upload_id: str, bucket: str, key: str) -> MultipartUpload | None:
        with self._lock:
            up = self._uploads.get(upload_id)
        return up if up is not None and (up.bucket, up.key) == (bucket, key) else None

    def put_part(self, up: MultipartUpload, number: int, writer: Writer) -> str:
        md5, _ = writer.finish()
        etag = f'"{md5.upper()}"'
        with self._lock:
            old = up.parts.get(number)
            up.parts[number] = (writer.path, writer.size, etag, time.time())
        if old is not None:
            old[0].unlink(missing_ok=True)
        return etag

    def complete(self, up: MultipartUpload, wanted: list) -> ObjectMeta:
        """Join the listed parts (number, etag) in order into the final object (a kernel-side copy)."""
        writer = self.writer(sha256=False)
        md5s = hashlib.md5(usedforsecurity=False)
        try:
            for number, etag in wanted:
                part = up.parts.get(number)
                if part is None or part[2].strip('"').upper() != etag.strip('"').upper():
                    raise KeyError(number)
                md5s.update(bytes.fromhex(part[2].strip('"')))
                writer.append_file(part[0], part[1])
        except BaseException:
            writer.discard()
            raise
        etag = f'"{md5s.hexdigest().upper()}-{len(wanted)}"'
        meta = self.commit(up.bucket, up.key, writer, up.content_type, parts=len(wanted), etag=etag)
        self.abort(up.upload_id)
        return meta

    def abort(self, upload_id: str) -> None:
        with self._lock:
            up = self._uploads.pop(upload_id, None)
        if up is not None:
            for path, *_ in up.parts.values():
                path.unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
