"""Objects on disk, written in chunks and published atomically (no partial objects)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path


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
    """A temporary file that hashes what is written to it."""

    def __init__(self, folder: Path):
        fd, name = tempfile.mkstemp(dir=folder, prefix="upload-")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._md5 = hashlib.md5(usedforsecurity=False)  # OSS ETags are MD5
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._md5.update(data)
        self._sha.update(data)
        self.size += len(data)

    def finish(self) -> tuple[str, str]:
        self._file.close()
        return self._md5.hexdigest(), self._sha.hexdigest()

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
    """Objects under ``root/objects``; their index in ``root/index.json`` survives a restart."""

    def __init__(self, root: Path):
        self.root = root
        self._tmp = root / "tmp"
        self._data = root / "objects"
        self._index = root / "index.json"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._data.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._objects: dict = {}
        self._uploads: dict = {}
        self._load()

    def _load(self) -> None:
        try:
            rows = json.loads(self._index.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        for row in rows:
            meta = ObjectMeta(**{**row, "path": Path(row["path"])})
            if meta.path.exists():
                self._objects[(meta.bucket, meta.key)] = meta

    def _save(self) -> None:
        """Called with the lock held: write the index atomically."""
        rows = [{**m.__dict__, "path": str(m.path)} for m in self._objects.values()]
        tmp = self._index.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows), encoding="utf-8")
        os.replace(tmp, self._index)

    def writer(self) -> Writer:
        return Writer(self._tmp)

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
            self._save()
        if old is not None:
            old.path.unlink(missing_ok=True)
        return meta

    def get(self, bucket: str, key: str) -> ObjectMeta | None:
        with self._lock:
            return self._objects.get((bucket, key))

    def delete(self, bucket: str, key: str) -> None:
        with self._lock:
            meta = self._objects.pop((bucket, key), None)
            self._save()
        if meta is not None:
            meta.path.unlink(missing_ok=True)

    def listing(self) -> list:
        with self._lock:
            return [{"bucket": m.bucket, "key": m.key, "size": m.size, "sha256": m.sha256,
                     "parts": m.multipart_parts}
                    for m in self._objects.values()]

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
        """Join the listed parts (number, etag) in order into the final object."""
        writer = self.writer()
        md5s = hashlib.md5(usedforsecurity=False)
        try:
            for number, etag in wanted:
                part = up.parts.get(number)
                if part is None or part[2].strip('"').upper() != etag.strip('"').upper():
                    raise KeyError(number)
                md5s.update(bytes.fromhex(part[2].strip('"')))
                with open(part[0], "rb") as src:
                    while True:
                        chunk = src.read(1024 * 1024)
                        if not chunk:
                            break
                        writer.write(chunk)
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
