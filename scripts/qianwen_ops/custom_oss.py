"""Production uploads to the user's own OSS bucket, spoken by ``oss_v4`` (the settings: ``oss_settings``).

Objects go to ``{prefix}/{YYYY-MM-DD}/{id}_{filename}`` and stay; the returned URL is a
V4-presigned https GET that DashScope accepts without any extra header. A small file is read
once while it is sent, its sha256 (for the cache) computed on the way. Large files go up as a
parallel multipart upload: each part reads its own slice of the file as it is sent (a small
buffer per part in flight, never the part), while one more reader computes the sha256 in
order; every reader opens the file checked (``local_files.open_regular`` compares its identity), and
the file must be unchanged (device, inode, size, mtime, ctime) once every part is there. The
checkpoint lives in the user cache dir, so running the same command again after an
interruption lists the parts already there (each checked against its MD5) and sends only the rest.

Every request names the RAM action it needs (see references/custom-oss.md), so an
``AccessDenied`` says which permission the RAM user lacks. Requests go through ``http_client``
(``oss_v4``): never a redirect followed (it would carry the STS token to another host), no
credential over plain http through a proxy, ``timeout`` for connect and read and a deadline for
each answer, answers capped. No SDK is needed: oss2 stays the test suite's judge of the signatures.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from . import errors
from .errors import QwenOpsError
from .fsutil import UnsafeTarget, create_file, make_dirs, read_limited
from .http_client import HttpSession, xml_values
from .limits import UPLOAD_TIMEOUT
from .local_files import (
    FileSlice,
    HashedReader,
    LocalFile,
    display,
    identity_of,
    open_regular,
    readable_name,
    sha256_of,
)
from .named_tuple import NamedTuple
from .oss_settings import CustomOssConfig
from .oss_v4 import OssV4, xml_escape
from .redaction import one_line
from .skill_paths import skill_path

MULTIPART_THRESHOLD = 32 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
PART_THREADS = 4
# RAM actions, from the OSS documentation (cited in qianwen_sandbox/ram.py).
PUT, GET, LIST_PARTS, ABORT, DELETE = ("oss:PutObject", "oss:GetObject", "oss:ListParts",
                                       "oss:AbortMultipartUpload", "oss:DeleteObject")


_ADVICE = {
    "NoSuchBucket": ("bucket {bucket} does not exist at {host} (check QWEN_TMP_OSS_BUCKET and "
                     "QWEN_TMP_OSS_REGION)", errors.CONFIG),
    "AccessDenied": ("access denied: the RAM user needs {action} on acs:oss:*:*:{bucket}/{prefix}/* "
                     "(see the policy in {guide})", errors.AUTH_REJECTED),
    "SignatureDoesNotMatch": ("OSS rejected the signature: the AccessKey secret from {source} is wrong",
                              errors.AUTH_REJECTED),
    "InvalidAccessKeyId": ("OSS does not know the AccessKey ID from {source}", errors.AUTH_REJECTED),
    "InvalidSecurityToken": ("OSS rejected OSS_SESSION_TOKEN (expired or wrong)", errors.AUTH_REJECTED),
}


def map_error(exc: Exception, config: CustomOssConfig, what: str, action: str = PUT) -> QwenOpsError:
    """Turn a failed request (its ``status``: -1 for no answer, and OSS's error ``code``) into plain
    advice; never the answer's text (it may echo signatures)."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", "") or ""
    host = urlsplit(config.endpoint).hostname
    if status is not None and status < 0 or exc.__class__.__name__ == "RequestError":
        why = getattr(exc, "why", "") or "network error or timeout"  # the HTTP layer's own line: the cause
        return QwenOpsError(f"{what}: cannot reach OSS at {host}: {why}", errors.NETWORK, retryable=True)
    if status is not None and 300 <= status < 400:
        return QwenOpsError(f"{what}: OSS at {host} answered with a redirect (HTTP {status}), which is never "
                            "followed; check QWEN_TMP_OSS_ENDPOINT and QWEN_TMP_OSS_REGION",
                            errors.HTTP_ERROR, status=status)
    if code in _ADVICE:
        text, exit_code = _ADVICE[code]
        return QwenOpsError(f"{what}: " + text.format(bucket=config.bucket, prefix=config.prefix, host=host,
                                                      source=config.credential_source, action=action,
                                                      guide=skill_path("references", "custom-oss.md")),
                            exit_code, code=code, status=status)
    shown = code if re.fullmatch(r"[A-Za-z.]{1,64}", code) else "error"
    return QwenOpsError(f"{what}: OSS answered HTTP {status} {shown}",
                        errors.exit_code_for_status(status or 500), code=code, status=status)


class _Failure(NamedTuple):
    """What ``map_error`` reads of a failed request: the HTTP status (-1: no answer) and OSS's error code;
    ``why``: for no answer, the HTTP layer's one secret-free line (cannot resolve, refused, timed out, TLS)."""

    status: int
    code: str = ""
    why: str = ""


class CustomOss:
    """Uploads to the configured bucket; one instance per batch."""

    backend = "custom-oss"
    needs_resolve_header = False

    def __init__(self, config: CustomOssConfig, checkpoint_dir: Path, timeout: float = UPLOAD_TIMEOUT,
                 multipart_threshold: int | None = None, part_size: int | None = None,
                 threads: int = PART_THREADS, announce: bool = True, env: Mapping[str, str] | None = None,
                 session=None):
        """``multipart_threshold`` and ``part_size`` exist for tests and benchmarks (small parts);
        users get the module defaults, which no setting changes. ``session``: the batch's
        ``http_client.HttpSession`` (else one of its own, with ``timeout`` and ``env``)."""
        self.config = config
        self._checkpoint_dir = checkpoint_dir
        self.multipart_threshold = multipart_threshold or MULTIPART_THRESHOLD
        self.part_size, self.threads = part_size or PART_SIZE, threads
        self.session = session if session is not None else HttpSession(timeout=timeout, env=env)
        self.oss = OssV4(config.endpoint, config.bucket, config.region, config.access_key_id,
                         config.access_key_secret, config.session_token, self.session)
        if announce:
            print(one_line(config.notice), file=sys.stderr, flush=True)

    def max_bytes(self, model: str) -> int | None:
        return None

    def object_key(self, local: LocalFile, stable_id: str) -> str:
        # A stable id (derived from the file identity) lets an interrupted multipart upload resume.
        prefix = f"{self.config.prefix}/{time.strftime('%Y-%m-%d', time.gmtime())}/{stable_id}_"
        return prefix + readable_name(local.name, 1023 - len(prefix.encode("utf-8")))

    def _send(self, action: str, what: str, method: str, key: str, query: dict | None = None,
              headers: dict | None = None, body=None):
        """One signed request; an answer other than 2xx (or no answer) becomes ``map_error``'s advice."""
        try:
            response = self.oss.request(method, key, query, headers, body)
        except QwenOpsError as exc:
            if exc.exit_code != errors.NETWORK:
                raise
            raise map_error(_Failure(-1, why=exc.message), self.config, what, action) from None
        if not 200 <= response.status < 300:
            codes = xml_values(response.body[:65536].decode("utf-8", "replace"), "Code")
            raise map_error(_Failure(response.status, codes[0] if codes else ""), self.config, what, action)
        return response

    def put_bytes(self, key: str, data: bytes, what: str) -> None:
        self._send(PUT, what, "PUT", key, headers={"Content-Type": _content_type(key)}, body=data)

    def presigned_get(self, key: str, expires: int) -> str:
        return self.oss.presign(key, expires)

    def delete(self, key: str, what: str) -> None:
        self._send(DELETE, what, "DELETE", key)

    def upload(self, local: LocalFile, model: str, progress=None,
               stable_id: str | None = None) -> tuple[str, float, str]:
        key = self.object_key(local, stable_id or os.urandom(16).hex())
        what = f"upload of {display(str(local.path))}"
        if local.size >= self.multipart_threshold:
            sha = self._multipart(local, key, what, progress)
        else:
            body = _WholeFile(local)   # read once while it is sent, hashed on the way: never held whole
            self._send(PUT, what, "PUT", key, headers={"Content-Type": _content_type(key)}, body=body)
            _check_unchanged(local)
            sha = body.hexdigest()
            if progress:
                progress(local.size)
        url = self.oss.presign(key, self.config.url_expires)
        return url, time.time() + self.config.url_expires, sha

    # -- multipart, resumable
    def _checkpoint_path(self, key: str) -> Path:
        name = hashlib.sha256(f"{self.config.endpoint}\0{self.config.bucket}\0{key}".encode()).hexdigest()[:32]
        return self._checkpoint_dir / "oss-checkpoints" / f"{name}.json"

    def _identity(self, local: LocalFile, key: str) -> dict:
        return {"bucket": self.config.bucket, "key": key, "size": local.size, "mtime_ns": local.mtime_ns,
                "inode": local.inode, "part_size": self.part_size}

    def _load_checkpoint(self, path: Path, identity: dict) -> str | None:
        raw = read_limited(path, 64 * 1024)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            return None
        if not isinstance(data, dict) or {k: data.get(k) for k in identity} != identity:
            return None
        upload_id = data.get("upload_id")
        return upload_id if isinstance(upload_id, str) and upload_id else None

    def _save_checkpoint(self, path: Path, identity: dict, upload_id: str) -> None:
        try:
            self._checkpoint_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            make_dirs(self._checkpoint_dir.parent, self._checkpoint_dir.name, "oss-checkpoints")
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            # No fsync: a lost or torn checkpoint only means starting over, while an fsync here can
            # wait for the whole file system journal (seconds right after a large file was written).
            create_file(path, json.dumps(dict(identity, upload_id=upload_id)).encode())
        except (OSError, UnsafeTarget):
            pass  # resuming is a convenience: without a checkpoint the next run starts over

    def _parts_already_there(self, key: str, upload_id: str, what: str) -> dict | None:
        """{part number: (etag, size)} of an earlier run, or None when that upload is gone."""
        found: dict = {}
        query = {"uploadId": upload_id}
        while True:
            try:
                text = self._send(LIST_PARTS, what + " (resuming)", "GET", key, query).body.decode("utf-8", "replace")
            except QwenOpsError as exc:
                if exc.code == "NoSuchUpload":
                    return None
                raise
            for part in xml_values(text, "Part"):
                number, etag, size = (xml_values(part, tag) for tag in ("PartNumber", "ETag", "Size"))
                if number and number[0].isdigit() and etag and size and size[0].isdigit():
                    found[int(number[0])] = (etag[0].replace("&quot;", '"'), int(size[0]))
            marker = xml_values(text, "NextPartNumberMarker")
            if xml_values(text, "IsTruncated")[:1] != ["true"] or not marker or marker[0] == query.get(
                    "part-number-marker"):
                return found
            query["part-number-marker"] = marker[0]

    def _multipart(self, local: LocalFile, key: str, what: str, progress) -> str:
        checkpoint = self._checkpoint_path(key)
        identity = self._identity(local, key)
        shared = open_regular(local)   # one descriptor for every reader: the file checked is the file read
        try:
            upload_id = self._load_checkpoint(checkpoint, identity)
            done = self._parts_already_there(key, upload_id, what) if upload_id else None
            if done is None:
                answer = self._send(PUT, what, "POST", key, {"uploads": ""}, {"Content-Type": _content_type(key)})
                ids = xml_values(answer.body.decode("utf-8", "replace"), "UploadId")
                if not ids or not ids[0] or not ids[0].isprintable() or len(ids[0]) > 256:
                    raise QwenOpsError(f"{what}: OSS answered the multipart initiation without an upload id",
                                       errors.HTTP_ERROR)
                upload_id = ids[0]
                done = {}
                self._save_checkpoint(checkpoint, identity, upload_id)
        except BaseException:
            os.close(shared)
            raise
        # The parts are read by the uploads themselves (each its own slice, through one small buffer), and the
        # sha256 by one more reader in order beside them: memory holds a few buffers whatever the file size.
        stop = threading.Event()
        digest: list = []
        hashing = threading.Thread(target=lambda: digest.append(_sha256_or_error(local, stop, shared)),
                                   name="sha256", daemon=True)
        hashing.start()
        etags: dict = {}
        sent = 0
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait  # deferred: multipart only

        pool = ThreadPoolExecutor(max_workers=self.threads)
        pending: set = set()

        def collect(block: bool) -> None:
            nonlocal sent
            finished, _ = wait(pending, return_when=FIRST_COMPLETED) if block else (
                {f for f in pending if f.done()}, None)
            for future in finished:
                pending.discard(future)
                number, etag, size = future.result()   # re-raises the part's mapped error
                etags[number] = etag
                sent += size
                if progress:
                    progress(sent)

        try:
            for number, offset in enumerate(range(0, local.size, self.part_size), start=1):
                part = FileSlice(local, offset, min(self.part_size, local.size - offset), fd=shared)
                earlier = done.get(number)
                if earlier and earlier[1] == len(part) and earlier[0].strip('"').upper() == part.md5().upper():
                    etags[number] = earlier[0]
                    sent += len(part)
                    continue
                while len(pending) >= self.threads:           # parts are submitted as uploads free up
                    collect(block=True)
                pending.add(pool.submit(self._upload_part, key, upload_id, number, part, what))
                collect(block=False)
            while pending:
                collect(block=True)
            hashing.join()
            if isinstance(digest[0], QwenOpsError):
                raise digest[0]
            _check_unchanged(local)   # the descriptor every part was read through was the file checked, and still is
        except QwenOpsError as exc:
            stop.set()
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True)
            os.close(shared)
            if exc.exit_code == errors.INPUT_FILE:   # the file changed: these parts can never be reused
                self._abort(key, upload_id, checkpoint)
            raise
        except BaseException:  # Ctrl-C: parts in flight are abandoned (the checkpoint lets a rerun resume)
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise   # the descriptor goes with the process (a part in flight may still be reading it)
        pool.shutdown(wait=True)
        os.close(shared)
        listing = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{xml_escape(etags[n])}</ETag></Part>"
                          for n in sorted(etags))
        self._send(PUT, what, "POST", key, {"uploadId": upload_id},
                   body=f"<CompleteMultipartUpload>{listing}</CompleteMultipartUpload>".encode("utf-8"))
        try:
            checkpoint.unlink()
        except OSError:
            pass
        return digest[0]

    def _upload_part(self, key: str, upload_id: str, number: int, data: FileSlice, what: str) -> tuple:
        answer = self._send(PUT, what, "PUT", key, {"partNumber": str(number), "uploadId": upload_id}, body=data)
        etag = answer.header("etag")
        if not etag or len(etag) > 128 or not etag.isprintable():
            raise QwenOpsError(f"{what}: OSS answered part {number} without a usable ETag", errors.HTTP_ERROR)
        return number, etag, len(data)

    def _abort(self, key: str, upload_id: str, checkpoint: Path) -> None:
        """Best effort: drop the parts of an upload that can never complete (needs oss:AbortMultipartUpload)."""
        try:
            self._send(ABORT, "abort", "DELETE", key, {"uploadId": upload_id})
        except QwenOpsError:
            pass  # left for the bucket's lifecycle rule
        try:
            checkpoint.unlink()
        except OSError:
            pass


def _content_type(key: str) -> str:
    import mimetypes  # deferred: it reads the system's type tables

    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class _WholeFile:
    """A small file as one request body: read once while it is sent (``HashedReader``), never held whole."""

    def __init__(self, local: LocalFile):
        self._local = local
        self._reader: HashedReader | None = None

    @property
    def length(self) -> int:
        return self._local.size

    def chunks(self):
        """The file's bytes, each chunk valid until the next is asked for (how ``http_client`` sends a body)."""
        self._reader = HashedReader(self._local)
        return iter(self._reader)

    def hexdigest(self) -> str:
        if self._reader is None:
            raise RuntimeError("the body was never sent")
        return self._reader.hexdigest()


def _sha256_or_error(local: LocalFile, stop, fd: int):
    try:
        return sha256_of(local, stop, fd)
    except QwenOpsError as exc:
        return exc


def _check_unchanged(local: LocalFile) -> None:
    """The file must still be there, the same file, unchanged, once every byte has been sent.

    ctime too: a multipart upload reads the file twice (the parts, and the sha256 beside
    them), and any write moves ctime even when the writer puts mtime back, so the sha256 returned is
    always that of the bytes the parts carried."""
    try:
        after = os.stat(local.path)
    except OSError:
        raise QwenOpsError(f"{display(str(local.path))}: file was deleted or moved while it was being uploaded",
                           errors.INPUT_FILE) from None
    if identity_of(after) != local.identity:
        raise QwenOpsError(f"{display(str(local.path))}: file changed while it was being uploaded",
                           errors.INPUT_FILE)
