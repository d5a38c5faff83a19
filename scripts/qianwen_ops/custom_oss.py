"""Production uploads to the user's own OSS bucket (``QWEN_TMP_OSS_*``), through oss2.

Objects go to ``{prefix}/{YYYY-MM-DD}/{uuid}_{filename}`` and stay; the returned
URL is a V4-presigned https GET that DashScope accepts without any extra header.
Large files go up as a parallel multipart upload whose checkpoints live in the
user cache dir, so an interrupted upload resumes. ``oss2`` is imported lazily:
nothing else in the bundle needs it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import errors
from .credentials import Secret
from .endpoints import check_file_sourced_host, is_loopback_host
from .errors import QwenOpsError
from .local_files import LocalFile, display, read_chunks, readable_name
from .settings import Settings

DEFAULT_PREFIX = "qianwen-uploads"
DEFAULT_EXPIRES = 86400
MAX_EXPIRES = 7 * 86400          # the longest a V4 presigned URL may live
MULTIPART_THRESHOLD = 32 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024
PART_THREADS = 4
_REGION = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class CustomOssConfig:
    bucket: str
    region: str
    endpoint: str            # scheme://host[:port]
    prefix: str
    url_expires: int
    credential_source: str   # which variables the pair came from (names only)
    access_key_id: Secret
    access_key_secret: Secret
    session_token: Secret | None
    from_process_env: bool   # True: hand oss2 its EnvironmentVariableCredentialsProvider

    @property
    def secrets(self) -> list:
        values = [self.access_key_secret.reveal(), self.access_key_id.reveal()]
        return values + ([self.session_token.reveal()] if self.session_token else [])


def _endpoint(raw: str, bucket: str, region: str) -> str:
    if not raw:
        return f"https://oss-{region}.aliyuncs.com"
    url = raw if "://" in raw else f"https://{raw}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise QwenOpsError("QWEN_TMP_OSS_ENDPOINT is not a valid host or URL", errors.CONFIG) from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        raise QwenOpsError("QWEN_TMP_OSS_ENDPOINT must be a host name or an https:// URL", errors.CONFIG)
    if parts.scheme == "http" and not is_loopback_host(host):
        raise QwenOpsError("QWEN_TMP_OSS_ENDPOINT uses plain http:// to a remote host; use https://",
                           errors.CONFIG)
    if host.startswith(bucket + "."):  # "my-bucket.oss-cn-beijing.aliyuncs.com" -> the region endpoint
        host = host[len(bucket) + 1:]
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _pair(settings: Settings, id_name: str, secret_name: str):
    ak, sk = settings.get(id_name), settings.get(secret_name)
    if bool(ak) != bool(sk):
        missing = secret_name if ak else id_name
        raise QwenOpsError(f"{id_name} and {secret_name} must be set together ({missing} is not set)",
                           errors.CONFIG)
    return (ak, sk) if ak else None


def load_config(settings: Settings) -> CustomOssConfig | None:
    """Custom-OSS settings, validated before any request; None when the mode is off."""
    bucket_found = settings.get("QWEN_TMP_OSS_BUCKET")
    if bucket_found is None:
        return None
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
        check_file_sourced_host("QWEN_TMP_OSS_ENDPOINT", urlsplit(endpoint).hostname or "", endpoint_found.source,
                                trusted_suffixes=(".aliyuncs.com",))
    own = _pair(settings, "QWEN_TMP_OSS_AK_ID", "QWEN_TMP_OSS_AK_SECRET")
    if own:
        source, pair, token = "QWEN_TMP_OSS_AK_ID/QWEN_TMP_OSS_AK_SECRET", own, None
    else:
        pair = _pair(settings, "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET")
        if pair is None:
            raise QwenOpsError("custom OSS mode needs credentials: set QWEN_TMP_OSS_AK_ID and "
                               "QWEN_TMP_OSS_AK_SECRET, or OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET",
                               errors.CONFIG)
        source, token = "OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET", settings.get("OSS_SESSION_TOKEN")
    from_env = all(found.source.startswith("env:") for found in pair)
    return CustomOssConfig(bucket, region, endpoint, prefix, int(raw_expires), source,
                           Secret(pair[0].value), Secret(pair[1].value),
                           Secret(token.value) if token else None,
                           from_env and source.startswith("OSS_"))


def import_oss2():
    try:
        import oss2
    except ImportError:
        raise QwenOpsError("custom OSS mode needs the oss2 package: python3 -m pip install oss2",
                           errors.MISSING_DEPENDENCY) from None
    logging.getLogger("oss2").setLevel(logging.ERROR)  # its debug lines carry strings-to-sign
    return oss2


_ADVICE = {
    "NoSuchBucket": ("bucket {bucket} does not exist at {host} (check QWEN_TMP_OSS_BUCKET and "
                     "QWEN_TMP_OSS_REGION)", errors.CONFIG),
    "AccessDenied": ("access denied to {bucket}/{prefix}/: the RAM user needs oss:PutObject and "
                     "oss:GetObject on acs:oss:*:*:{bucket}/{prefix}/* (see references/custom-oss.md)",
                     errors.AUTH_REJECTED),
    "SignatureDoesNotMatch": ("OSS rejected the signature: the AccessKey secret from {source} is wrong",
                              errors.AUTH_REJECTED),
    "InvalidAccessKeyId": ("OSS does not know the AccessKey ID from {source}", errors.AUTH_REJECTED),
    "InvalidSecurityToken": ("OSS rejected OSS_SESSION_TOKEN (expired or wrong)", errors.AUTH_REJECTED),
}


def map_error(exc: Exception, config: CustomOssConfig, what: str) -> QwenOpsError:
    """Turn an oss2 exception into plain advice; never its text (it may echo signatures)."""
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", "") or ""
    host = urlsplit(config.endpoint).hostname
    if status is not None and status < 0 or exc.__class__.__name__ == "RequestError":
        return QwenOpsError(f"{what}: cannot reach OSS at {host} (network error)", errors.NETWORK, retryable=True)
    if code in _ADVICE:
        text, exit_code = _ADVICE[code]
        return QwenOpsError(f"{what}: " + text.format(bucket=config.bucket, prefix=config.prefix, host=host,
                                                      source=config.credential_source),
                            exit_code, code=code, status=status)
    return QwenOpsError(f"{what}: OSS answered HTTP {status} {code or 'error'}",
                        errors.exit_code_for_status(status or 500), code=code, status=status)


class CustomOss:
    """Uploads to the configured bucket; one instance per batch."""

    backend = "custom-oss"
    needs_resolve_header = False

    def __init__(self, config: CustomOssConfig, checkpoint_dir: Path):
        self.config = config
        self._oss2 = import_oss2()
        self._checkpoint_dir = checkpoint_dir
        oss2 = self._oss2
        if config.from_process_env:
            provider = oss2.credentials.EnvironmentVariableCredentialsProvider()
        else:
            provider = oss2.credentials.StaticCredentialsProvider(
                config.access_key_id.reveal(), config.access_key_secret.reveal(),
                config.session_token.reveal() if config.session_token else None)
        # oss2's client-side CRC-64 is off: combining part CRCs made parallel multipart uploads ~3x
        # slower (bench/), and integrity is covered by TLS plus our sha256 of the unchanged source file.
        self.bucket = oss2.Bucket(oss2.ProviderAuthV4(provider), config.endpoint, config.bucket,
                                  region=config.region, connect_timeout=30, enable_crc=False)

    @property
    def cache_scope(self) -> str:
        fingerprint = hashlib.sha256(("oss\0" + self.config.access_key_id.reveal()).encode()).hexdigest()[:16]
        return f"oss:{self.config.endpoint}/{self.config.bucket}/{self.config.prefix}:{fingerprint}"

    def max_bytes(self, model: str) -> int | None:
        return None

    def object_key(self, local: LocalFile, stable_id: str) -> str:
        # A stable id (derived from the file identity) lets an interrupted multipart upload resume.
        prefix = f"{self.config.prefix}/{time.strftime('%Y-%m-%d', time.gmtime())}/{stable_id}_"
        return prefix + readable_name(local.name, 1023 - len(prefix.encode("utf-8")))

    def upload(self, local: LocalFile, model: str, progress=None,
               stable_id: str | None = None) -> tuple[str, float, str]:
        oss2 = self._oss2
        key = self.object_key(local, stable_id or uuid.uuid4().hex)
        callback = (lambda consumed, total: progress(consumed)) if progress else None
        digest: dict = {}
        hasher = threading.Thread(target=_hash_into, args=(local, digest), daemon=True)
        hasher.start()
        try:
            if local.size >= MULTIPART_THRESHOLD:
                store = oss2.ResumableStore(root=str(self._checkpoint_dir), dir="oss-checkpoints")
                oss2.resumable_upload(self.bucket, key, str(local.path), store=store,
                                      multipart_threshold=MULTIPART_THRESHOLD, part_size=PART_SIZE,
                                      num_threads=PART_THREADS, progress_callback=callback)
            else:
                with open(local.path, "rb") as handle:
                    self.bucket.put_object(key, handle, progress_callback=callback)
            url = self.bucket.sign_url("GET", key, self.config.url_expires, slash_safe=True)
        except oss2.exceptions.OssError as exc:
            raise map_error(exc, self.config, f"upload of {display(str(local.path))}") from None
        finally:
            hasher.join()
        if "error" in digest:
            raise digest["error"]
        after = os.stat(local.path)
        if (after.st_size, after.st_mtime_ns) != (local.size, local.mtime_ns):
            raise QwenOpsError(f"{display(str(local.path))}: file changed while it was being uploaded",
                               errors.INPUT_FILE)
        return url, time.time() + self.config.url_expires, digest["sha256"]


def _hash_into(local: LocalFile, out: dict) -> None:
    hasher = hashlib.sha256()
    try:
        for _ in read_chunks(local, hasher):
            pass
        out["sha256"] = hasher.hexdigest()
    except QwenOpsError as exc:
        out["error"] = exc


def round_trip(config: CustomOssConfig, checkpoint_dir: Path) -> list:
    """doctor --check-oss: put a tiny object, presign it, GET it back, delete it; one row per step."""
    from .http_client import HttpSession

    steps = []
    try:
        oss = CustomOss(config, checkpoint_dir)
    except QwenOpsError as exc:
        return [("connect", False, exc.message)]
    key = f"{config.prefix}/doctor-check-{uuid.uuid4().hex}.txt"
    payload = f"qianwen-ops-auth doctor {uuid.uuid4().hex}".encode()
    session = HttpSession(timeout=30)
    try:
        try:
            oss.bucket.put_object(key, payload)
            steps.append(("put", True, f"{len(payload)} bytes to {config.bucket}/{key}"))
            url = oss.bucket.sign_url("GET", key, 60, slash_safe=True)
            steps.append(("presign", True, "V4 presigned GET URL, 60 s"))
            got = session.request("GET", url)
            same = got.status == 200 and got.body == payload
            steps.append(("get", same, f"HTTP {got.status}, {'same bytes' if same else 'different bytes'}"))
            oss.bucket.delete_object(key)
            steps.append(("delete", True, "test object removed"))
        except oss._oss2.exceptions.OssError as exc:
            steps.append((("put", "presign", "get", "delete")[len(steps)], False,
                          map_error(exc, config, "OSS check").message))
        except QwenOpsError as exc:
            steps.append((("put", "presign", "get", "delete")[len(steps)], False, exc.message))
    finally:
        session.close()
    return steps
