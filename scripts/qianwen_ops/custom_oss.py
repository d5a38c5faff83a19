"""Production uploads to the user's own OSS bucket (``QWEN_TMP_OSS_*``), through oss2.

Objects go to ``{prefix}/{YYYY-MM-DD}/{id}_{filename}`` and stay; the returned URL is a
V4-presigned https GET that DashScope accepts without any extra header. Each file is read
once: the same bytes are hashed (sha256, for the cache) and sent. Large files go up as a
parallel multipart upload whose checkpoint lives in the user cache dir, so running the same
command again after an interruption lists the parts already there and sends only the rest.

Every request names the RAM action it needs (see references/custom-oss.md), so an
``AccessDenied`` says which permission the RAM user lacks. oss2 never follows a redirect
(it would carry the STS token to another host), its log never reaches the terminal, and
``timeout`` bounds connect and read alike. ``oss2`` is imported lazily: nothing else in the
bundle needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from . import errors
from .credentials import _PLACEHOLDER_WORDS, Secret
from .endpoints import check_file_sourced_host, check_not_tracked, parse_url
from .errors import QwenOpsError
from .fsutil import UnsafeTarget, create_file, make_dirs, read_limited
from .local_files import LocalFile, display, read_chunks, readable_name
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


def import_oss2():
    try:
        import oss2
    except ImportError:
        raise QwenOpsError("custom OSS mode needs the oss2 package: python3 -m pip install oss2",
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
    from . import network

    return {"proxies": network.requests_proxies(endpoint, env), "verify": network.requests_verify(env),
            "trust_env": False}


def build_bucket(oss2, config: CustomOssConfig, timeout: float, options: dict | None = None):
    """The oss2 Bucket for ``config``: V4 signing, no redirects, ``timeout`` for connect and read."""
    options = oss2_http_options(config.endpoint) if options is None else options
    session = oss2.Session(pool_size=PART_THREADS * 2)
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

    def __init__(self, config: CustomOssConfig, checkpoint_dir: Path, timeout: float = DEFAULT_TIMEOUT,
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
            print(config.notice, file=sys.stderr, flush=True)

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


def round_trip(config: CustomOssConfig, checkpoint_dir: Path, timeout: float = DEFAULT_TIMEOUT,
               env: Mapping[str, str] | None = None) -> list:
    """doctor --check-oss: put a tiny object, presign it, GET it back, delete it.

    One ``(step, ok, detail, exit_code)`` row per step; ``exit_code`` is ``errors.OK`` when it passed.
    """
    from .http_client import HttpSession

    steps: list = []
    try:
        oss = CustomOss(config, checkpoint_dir, timeout=timeout, announce=False, env=env)
    except QwenOpsError as exc:
        return [("connect", False, exc.message, exc.exit_code)]
    key = f"{config.prefix}/doctor-check-{os.urandom(16).hex()}.txt"
    payload = f"qianwen-ops-auth doctor {os.urandom(16).hex()}".encode()
    session = HttpSession(timeout=timeout, env=env)
    step = "put"
    try:
        oss._call(PUT, "OSS check", oss.bucket.put_object, key, payload)
        steps.append(("put", True, f"{len(payload)} bytes to {config.bucket}/{key}", errors.OK))
        step = "presign"
        url = oss.bucket.sign_url("GET", key, 60, slash_safe=True)
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
        oss._call(DELETE, "OSS check", oss.bucket.delete_object, key)
        steps.append(("delete", True, "test object removed", errors.OK))
    except QwenOpsError as exc:
        steps.append((step, False, exc.message, exc.exit_code))
    finally:
        session.close()
    return steps
