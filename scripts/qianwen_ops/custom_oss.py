"""Production uploads to the user's own OSS bucket, through oss2 (the settings: ``oss_settings``).

Objects go to ``{prefix}/{YYYY-MM-DD}/{id}_{filename}`` and stay; the returned URL is a
V4-presigned https GET that DashScope accepts without any extra header. Each file is read
once: the same bytes are hashed (sha256, for the cache) and sent. Large files go up as a
parallel multipart upload whose checkpoint lives in the user cache dir, so running the same
command again after an interruption lists the parts already there and sends only the rest.

Every request names the RAM action it needs (see references/custom-oss.md), so an
``AccessDenied`` says which permission the RAM user lacks. oss2 never follows a redirect
(it would carry the STS token to another host), its log never reaches the terminal,
``timeout`` bounds connect and read alike and each answer must arrive within a deadline, its body
capped (``oss_http``), and a plain-http endpoint is refused when a proxy would carry its
``Authorization`` header and STS token in clear text (``oss2_http_options``). ``oss2`` is
imported lazily: nothing else in the bundle needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from . import errors, network
from .errors import QwenOpsError
from .fsutil import UnsafeTarget, create_file, make_dirs, read_limited
from .limits import UPLOAD_TIMEOUT
from .local_files import LocalFile, display, read_chunks, readable_name
from .oss_settings import CustomOssConfig
from .redaction import one_line
from .skill_paths import python_command, skill_path

MULTIPART_THRESHOLD = 32 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
PART_THREADS = 4
# RAM actions, from the OSS documentation (cited in qianwen_sandbox/ram.py).
PUT, GET, LIST_PARTS, DELETE = "oss:PutObject", "oss:GetObject", "oss:ListParts", "oss:DeleteObject"


def import_oss2():
    try:
        import oss2  # the optional dependency: a missing one is one line, exit 11
    except ImportError:
        raise QwenOpsError(f"custom OSS mode needs the oss2 package: {python_command()} -m pip install oss2",
                           errors.MISSING_DEPENDENCY) from None
    import logging  # here, with oss2: a batch that never uploads to a bucket never pays for it

    # Its debug lines carry strings-to-sign and its error lines tracebacks: none reaches the terminal.
    logger = logging.getLogger("oss2")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.setLevel(logging.CRITICAL + 1)
    return oss2


def oss2_http_options(endpoint: str, env: Mapping[str, str] | None = None) -> dict:
    """The proxy and CA settings of the HTTP layer (``network``), in the form oss2's requests session takes.

    ``trust_env`` is off so requests reads no proxy or CA variable on its own: the bundle's one
    reading of the process environment decides for oss2 exactly as for every other request.
    """
    proxies = network.requests_proxies(endpoint, env)
    if urlsplit(endpoint).scheme == "http" and proxies["http"]:  # the Authorization header and STS token in clear
        raise network.plain_http_refusal(urlsplit(endpoint).hostname or "", network.proxy_for_url(endpoint, env))
    return {"proxies": proxies, "verify": network.requests_verify(env), "trust_env": False}


def build_bucket(oss2, config: CustomOssConfig, timeout: float, options: dict | None = None):
    """The oss2 Bucket for ``config``: V4 signing, no redirects, ``timeout`` for connect and read."""
    options = oss2_http_options(config.endpoint) if options is None else options
    from . import oss_http  # imports requests: only after import_oss2 has found oss2 (and so requests)

    session = oss_http.session(oss2, PART_THREADS * 2)  # http_client's bounds: answers within a deadline, capped
    inner = session.session
    inner.get_redirect_target = lambda response: None   # a 3xx is answered to us, never followed
    inner.max_redirects = 0
    if "verify" in options:
        inner.verify = options["verify"]
    if "trust_env" in options:
        inner.trust_env = options["trust_env"]
    provider = oss2.credentials.StaticCredentialsProvider(
        config.access_key_id.reveal(), config.access_key_secret.reveal(),
        config.session_token.reveal() if config.session_token else None)
    # oss2's client-side CRC-64 is off: combining part CRCs made parallel multipart uploads ~3x
    # slower (bench/), and integrity is covered by TLS plus our sha256 of the unchanged source file.
    return oss2.Bucket(oss2.ProviderAuthV4(provider), config.endpoint, config.bucket, region=config.region,
                       session=session, connect_timeout=timeout, enable_crc=False,
                       proxies=options.get("proxies"))


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
    """Turn an oss2 exception into plain advice; never its text (it may echo signatures)."""
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


class CustomOss:
    """Uploads to the configured bucket; one instance per batch."""

    backend = "custom-oss"
    needs_resolve_header = False

    def __init__(self, config: CustomOssConfig, checkpoint_dir: Path, timeout: float = UPLOAD_TIMEOUT,
                 multipart_threshold: int | None = None, part_size: int | None = None,
                 threads: int = PART_THREADS, announce: bool = True, env: Mapping[str, str] | None = None):
        """``multipart_threshold`` and ``part_size`` exist for tests and benchmarks (small parts);
        users get the module defaults, which no setting changes."""
        self.config = config
        self._oss2 = import_oss2()
        self._checkpoint_dir = checkpoint_dir
        self.multipart_threshold = multipart_threshold or MULTIPART_THRESHOLD
        self.part_size, self.threads = part_size or PART_SIZE, threads
        self.bucket = build_bucket(self._oss2, config, timeout, oss2_http_options(config.endpoint, env))
        if announce:
            print(one_line(config.notice), file=sys.stderr, flush=True)

    def max_bytes(self, model: str) -> int | None:
        return None

    def object_key(self, local: LocalFile, stable_id: str) -> str:
        # A stable id (derived from the file identity) lets an interrupted multipart upload resume.
        prefix = f"{self.config.prefix}/{time.strftime('%Y-%m-%d', time.gmtime())}/{stable_id}_"
        return prefix + readable_name(local.name, 1023 - len(prefix.encode("utf-8")))

    def _call(self, action: str, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self._oss2.exceptions.OssError as exc:
            raise map_error(exc, self.config, what, action) from None

    def upload(self, local: LocalFile, model: str, progress=None,
               stable_id: str | None = None) -> tuple[str, float, str]:
        key = self.object_key(local, stable_id or os.urandom(16).hex())
        what = f"upload of {display(str(local.path))}"
        if local.size >= self.multipart_threshold:
            sha = self._multipart(local, key, what, progress)
        else:
            hasher = hashlib.sha256()
            data = b"".join(read_chunks(local, hasher))
            callback = (lambda consumed, total: progress(consumed)) if progress else None
            self._call(PUT, what, self.bucket.put_object, key, data, progress_callback=callback)
            _check_unchanged(local)
            sha = hasher.hexdigest()
        url = self.bucket.sign_url("GET", key, self.config.url_expires, slash_safe=True)
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
        oss2 = self._oss2
        try:
            return {p.part_number: (p.etag, p.size) for p in oss2.PartIterator(self.bucket, key, upload_id)}
        except oss2.exceptions.NoSuchUpload:
            return None
        except oss2.exceptions.OssError as exc:
            raise map_error(exc, self.config, what + " (resuming)", LIST_PARTS) from None

    def _multipart(self, local: LocalFile, key: str, what: str, progress) -> str:
        oss2 = self._oss2
        checkpoint = self._checkpoint_path(key)
        identity = self._identity(local, key)
        upload_id = self._load_checkpoint(checkpoint, identity)
        done = self._parts_already_there(key, upload_id, what) if upload_id else None
        if done is None:
            upload_id = self._call(PUT, what, self.bucket.init_multipart_upload, key).upload_id
            done = {}
            self._save_checkpoint(checkpoint, identity, upload_id)
        hasher = hashlib.sha256()
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
            for number, data in enumerate(read_chunks(local, hasher, self.part_size), start=1):
                earlier = done.get(number)
                if earlier and earlier[1] == len(data) and earlier[0].strip('"').upper() == \
                        hashlib.md5(data, usedforsecurity=False).hexdigest().upper():
                    etags[number] = earlier[0]
                    sent += len(data)
                    continue
                while len(pending) > self.threads:           # bounded memory: threads + 1 parts in flight
                    collect(block=True)
                pending.add(pool.submit(self._upload_part, key, upload_id, number, data, what))
                collect(block=False)
            while pending:
                collect(block=True)
            _check_unchanged(local)
        except QwenOpsError as exc:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True)
            if exc.exit_code == errors.INPUT_FILE:   # the file changed: these parts can never be reused
                self._abort(key, upload_id, checkpoint)
            raise
        except BaseException:  # Ctrl-C: parts in flight are abandoned (the checkpoint lets a rerun resume)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        parts = [oss2.models.PartInfo(n, etags[n]) for n in sorted(etags)]
        self._call(PUT, what, self.bucket.complete_multipart_upload, key, upload_id, parts)
        try:
            checkpoint.unlink()
        except OSError:
            pass
        return hasher.hexdigest()

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes, what: str) -> tuple:
        result = self._call(PUT, what, self.bucket.upload_part, key, upload_id, number, data)
        return number, result.etag, len(data)

    def _abort(self, key: str, upload_id: str, checkpoint: Path) -> None:
        """Best effort: drop the parts of an upload that can never complete (needs oss:AbortMultipartUpload)."""
        try:
            self.bucket.abort_multipart_upload(key, upload_id)
        except self._oss2.exceptions.OssError:
            pass  # left for the bucket's lifecycle rule
        try:
            checkpoint.unlink()
        except OSError:
            pass


def _check_unchanged(local: LocalFile) -> None:
    """The file must still be there, the same file, unchanged, once every byte has been sent."""
    try:
        after = os.stat(local.path)
    except OSError:
        raise QwenOpsError(f"{display(str(local.path))}: file was deleted or moved while it was being uploaded",
                           errors.INPUT_FILE) from None
    if (after.st_size, after.st_mtime_ns, after.st_ino) != (local.size, local.mtime_ns, local.inode):
        raise QwenOpsError(f"{display(str(local.path))}: file changed while it was being uploaded",
                           errors.INPUT_FILE)
