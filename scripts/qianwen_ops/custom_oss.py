"""Production uploads to the user's own OSS bucket (``QWEN_TMP_OSS_*``), spoken by ``oss_v4``.

Objects go to ``{prefix}/{YYYY-MM-DD}/{id}_{filename}`` and stay; the returned URL is a
V4-presigned https GET that DashScope accepts without any extra header. A small file is read
once while it is sent, its sha256 (for the cache) computed on the way. Large files go up as a
parallel multipart upload: each part reads its own slice of the file as it is sent (a small
buffer per part in flight, never the part), while one more reader computes the sha256 in
order; the file must be unchanged (size, mtime, inode, ctime) once every part is there. The
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
from .credentials import _PLACEHOLDER_WORDS, Secret
from .endpoints import check_file_sourced_host, check_not_tracked, parse_url
from .errors import QwenOpsError
from .fsutil import UnsafeTarget, create_file, make_dirs, read_limited
from .local_files import FileSlice, HashedReader, LocalFile, display, open_regular, readable_name, sha256_of
from .named_tuple import NamedTuple
from .project import skill_path
from .settings import Found, Settings

DEFAULT_PREFIX = "qianwen-uploads"
DEFAULT_EXPIRES = 86400
MAX_EXPIRES = 7 * 86400          # the longest a V4 presigned URL may live
MULTIPART_THRESHOLD = 32 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
PART_THREADS = 4
DEFAULT_TIMEOUT = 30.0
_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
# Every QWEN_TMP_OSS_* value decides where files go or with whose keys: none may come from a
# .env that git tracks (a cloned repository's).
REDIRECTING = ("QWEN_TMP_OSS_BUCKET", "QWEN_TMP_OSS_REGION", "QWEN_TMP_OSS_ENDPOINT", "QWEN_TMP_OSS_PREFIX",
               "QWEN_TMP_OSS_AK_ID", "QWEN_TMP_OSS_AK_SECRET", "QWEN_TMP_OSS_URL_EXPIRES")
# RAM actions, from the OSS documentation (cited in qianwen_sandbox/ram.py).
PUT, GET, LIST_PARTS, ABORT, DELETE = ("oss:PutObject", "oss:GetObject", "oss:ListParts",
                                       "oss:AbortMultipartUpload", "oss:DeleteObject")


class CustomOssConfig(NamedTuple):
    bucket: str
    region: str
    endpoint: str            # scheme://host[:port]
    prefix: str
    url_expires: int
    credential_source: str   # which variables the pair came from (names only)
    access_key_id: Secret
    access_key_secret: Secret
    session_token: Secret | None
    bucket_source: str = ""  # "env" or the .env path QWEN_TMP_OSS_BUCKET came from

    @property
    def notice(self) -> str:
        """The one stderr line every custom-OSS upload prints: where the files go, and who said so."""
        return f"note: uploading to your bucket {self.bucket} (QWEN_TMP_OSS_BUCKET from {self.bucket_source})"


def _endpoint(raw: str, bucket: str, region: str) -> str:
    if not raw:
        return f"https://oss-{region}.aliyuncs.com"
    root, _ = parse_url(raw, "QWEN_TMP_OSS_ENDPOINT", default_scheme="https")
    parts = urlsplit(root)
    host = parts.hostname or ""
    if host.startswith(bucket + "."):  # "my-bucket.oss-cn-beijing.aliyuncs.com" -> the region endpoint
        return root.replace(f"://{bucket}.", "://", 1)
    return root


def _check_credential(found: Found, name: str, token: bool = False) -> str:
    """A credential value that cannot be real is a configuration error, found before any request.

    Real AccessKey IDs and secrets are letters and digits (STS IDs add a dot), so a placeholder
    word counts only next to other punctuation: ``your-accesskey-id`` is caught, while a random
    secret that happens to contain "your" is not.
    """
    value, where = found.value, found.source
    lowered = value.lower()
    if token:   # base64: any letters may occur, so only unmistakable template marks count
        placeholder = lowered.startswith("your") or "-here" in lowered or any(c in value for c in "<>{}")
    else:
        placeholder = lowered.startswith("your") or (any(word in lowered for word in _PLACEHOLDER_WORDS)
                                                      and not (value.replace(".", "").isalnum() and value.isascii()))
    if placeholder:
        raise QwenOpsError(f"{name} (from {where}) is still a placeholder; put the RAM user's AccessKey there "
                           f"(see {skill_path('references', 'custom-oss.md')})", errors.CONFIG)
    if value != value.strip() or any(ch.isspace() for ch in value):
        raise QwenOpsError(f"{name} (from {where}) contains whitespace; paste the value without spaces or "
                           "line breaks", errors.CONFIG)
    if not value.isascii() or not value.isprintable():
        raise QwenOpsError(f"{name} (from {where}) has non-ASCII or control characters", errors.CONFIG)
    return value


def _pair(settings: Settings, id_name: str, secret_name: str):
    ak, sk = settings.get(id_name), settings.get(secret_name)
    if bool(ak) != bool(sk):
        missing = secret_name if ak else id_name
        raise QwenOpsError(f"{id_name} and {secret_name} must be set together ({missing} is not set)",
                           errors.CONFIG)
    if not ak:
        return None
    return _check_credential(ak, id_name), _check_credential(sk, secret_name)


def load_config(settings: Settings) -> CustomOssConfig | None:
    """Custom-OSS settings, validated before any request; None when the mode is off."""
    bucket_found = settings.get("QWEN_TMP_OSS_BUCKET")
    if bucket_found is None:
        return None
    for name in REDIRECTING:
        found = settings.get(name)
        if found is not None and not found.source.startswith("env:"):
            check_not_tracked(name, found.source)
    bucket = bucket_found.value.strip()
    if not _BUCKET.match(bucket):
        raise QwenOpsError("QWEN_TMP_OSS_BUCKET is not a valid bucket name (3-63 of a-z, 0-9, -)", errors.CONFIG)
    region = settings.value("QWEN_TMP_OSS_REGION").strip()
    if region.startswith("oss-"):
        region = region[4:]
    if not region:
        raise QwenOpsError("QWEN_TMP_OSS_REGION is required when QWEN_TMP_OSS_BUCKET is set (e.g. cn-beijing)",
                           errors.CONFIG)
    if not _REGION.match(region):
        raise QwenOpsError("QWEN_TMP_OSS_REGION is not a region id like cn-beijing", errors.CONFIG)
    raw_expires = settings.value("QWEN_TMP_OSS_URL_EXPIRES", str(DEFAULT_EXPIRES)).strip()
    if not raw_expires.isdigit() or not 60 <= int(raw_expires) <= MAX_EXPIRES:
        raise QwenOpsError(f"QWEN_TMP_OSS_URL_EXPIRES must be whole seconds from 60 to {MAX_EXPIRES}",
                           errors.CONFIG)
    prefix = settings.value("QWEN_TMP_OSS_PREFIX", DEFAULT_PREFIX).strip().strip("/")
    if not prefix or len(prefix.encode()) > 200 or any(ord(c) < 32 for c in prefix) or "\\" in prefix:
        raise QwenOpsError("QWEN_TMP_OSS_PREFIX must be 1-200 bytes of printable characters", errors.CONFIG)
    endpoint_found = settings.get("QWEN_TMP_OSS_ENDPOINT")
    endpoint = _endpoint(endpoint_found.value.strip() if endpoint_found else "", bucket, region)
    if endpoint_found is not None:
        check_file_sourced_host("QWEN_TMP_OSS_ENDPOINT", endpoint, endpoint_found.source,
                                trusted_suffixes=(".aliyuncs.com",))
    token = None
    pair = _pair(settings, "QWEN_TMP_OSS_AK_ID", "QWEN_TMP_OSS_AK_SECRET")
    if pair:
        source = "QWEN_TMP_OSS_AK_ID/QWEN_TMP_OSS_AK_SECRET"
    else:
        pair = _pair(settings, "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET")
        if pair is None:
            raise QwenOpsError("custom OSS mode needs credentials: set QWEN_TMP_OSS_AK_ID and "
                               "QWEN_TMP_OSS_AK_SECRET, or OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET",
                               errors.CONFIG)
        source = "OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET"
        token_found = settings.get("OSS_SESSION_TOKEN")
        token = _check_credential(token_found, "OSS_SESSION_TOKEN", token=True) if token_found else None
    bucket_source = "env" if bucket_found.source.startswith("env:") else bucket_found.source
    return CustomOssConfig(bucket, region, endpoint, prefix, int(raw_expires), source,
                           Secret(pair[0]), Secret(pair[1]), Secret(token) if token else None, bucket_source)


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
        return QwenOpsError(f"{what}: cannot reach OSS at {host} (network error or timeout)", errors.NETWORK,
                            retryable=True)
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
    """What ``map_error`` reads of a failed request: the HTTP status (-1: no answer) and OSS's error code."""

    status: int
    code: str = ""


class CustomOss:
    """Uploads to the configured bucket; one instance per batch."""

    backend = "custom-oss"
    needs_resolve_header = False

    def __init__(self, config: CustomOssConfig, checkpoint_dir: Path, timeout: float = DEFAULT_TIMEOUT,
                 multipart_threshold: int | None = None, part_size: int | None = None,
                 threads: int = PART_THREADS, announce: bool = True, env: Mapping[str, str] | None = None,
                 session=None):
        """``multipart_threshold`` and ``part_size`` exist for tests and benchmarks (small parts);
        users get the module defaults, which no setting changes. ``session``: the batch's
        ``http_client.HttpSession`` (else one of its own, with ``timeout`` and ``env``)."""
        from .http_client import HttpSession
        from .oss_v4 import OssV4

        self.config = config
        self._checkpoint_dir = checkpoint_dir
        self.multipart_threshold = multipart_threshold or MULTIPART_THRESHOLD
        self.part_size, self.threads = part_size or PART_SIZE, threads
        self.session = session if session is not None else HttpSession(timeout=timeout, env=env)
        self.oss = OssV4(config.endpoint, config.bucket, config.region, config.access_key_id,
                         config.access_key_secret, config.session_token, self.session)
        if announce:
            from .redaction import one_line

            print(one_line(config.notice), file=sys.stderr, flush=True)

    @property
    def cache_scope(self) -> str:
        from .upload_cache import custom_oss_scope

        return custom_oss_scope(self.config)

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
            raise map_error(_Failure(-1), self.config, what, action) from None
        if not 200 <= response.status < 300:
            from .oss_v4 import xml_values

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
        from .oss_v4 import xml_values

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
        from .oss_v4 import xml_escape, xml_values

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
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

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
            _check_unchanged(local)
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
    import mimetypes

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

    ctime too (when known): a multipart upload reads the file twice (the parts, and the sha256 beside
    them), and any write moves ctime even when the writer puts mtime back, so the sha256 returned is
    always that of the bytes the parts carried."""
    try:
        after = os.stat(local.path)
    except OSError:
        raise QwenOpsError(f"{display(str(local.path))}: file was deleted or moved while it was being uploaded",
                           errors.INPUT_FILE) from None
    if (after.st_size, after.st_mtime_ns, after.st_ino) != (local.size, local.mtime_ns, local.inode) or \
            (local.ctime_ns and after.st_ctime_ns != local.ctime_ns):
        raise QwenOpsError(f"{display(str(local.path))}: file changed while it was being uploaded",
                           errors.INPUT_FILE)


def round_trip(config: CustomOssConfig, checkpoint_dir: Path, timeout: float = DEFAULT_TIMEOUT,
               env: Mapping[str, str] | None = None) -> list:
    """doctor --check-oss: put a tiny object, presign it, GET it back, delete it.

    One ``(step, ok, detail, exit_code)`` row per step; ``exit_code`` is ``errors.OK`` when it passed.
    """
    from .http_client import HttpSession

    steps: list = []
    session = HttpSession(timeout=timeout, env=env)
    try:
        oss = CustomOss(config, checkpoint_dir, timeout=timeout, announce=False, env=env, session=session)
    except QwenOpsError as exc:
        session.close()
        return [("connect", False, exc.message, exc.exit_code)]
    key = f"{config.prefix}/doctor-check-{os.urandom(16).hex()}.txt"
    payload = f"qianwen-ops-auth doctor {os.urandom(16).hex()}".encode()
    step = "put"
    try:
        oss.put_bytes(key, payload, "OSS check")
        steps.append(("put", True, f"{len(payload)} bytes to {config.bucket}/{key}", errors.OK))
        step = "presign"
        url = oss.presigned_get(key, 60)
        steps.append(("presign", True, "V4 presigned GET URL, 60 s", errors.OK))
        step = "get"
        got = session.request("GET", url)
        if got.status in (401, 403):
            steps.append(("get", False, f"HTTP {got.status}: the presigned URL was refused; the RAM user needs "
                          f"{GET} on acs:oss:*:*:{config.bucket}/{config.prefix}/*", errors.AUTH_REJECTED))
        elif got.status != 200:
            steps.append(("get", False, f"HTTP {got.status}", errors.exit_code_for_status(got.status)))
        else:
            same = got.body == payload
            steps.append(("get", same, f"HTTP 200, {'same bytes' if same else 'different bytes'}",
                          errors.OK if same else errors.HTTP_ERROR))
        step = "delete"
        oss.delete(key, "OSS check")
        steps.append(("delete", True, "test object removed", errors.OK))
    except QwenOpsError as exc:
        steps.append((step, False, exc.message, exc.exit_code))
    finally:
        session.close()
    return steps
