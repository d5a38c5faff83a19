"""DashScope temporary storage: getPolicy, then a streamed PostObject with ``file`` last.

One policy per (account, model) is shared by every upload until shortly before it
expires, so a batch costs one getPolicy per policy lifetime. Object keys are
``<upload_dir>/<random 12 hex>_<readable name>``: unique per upload. Uploads are
exactly-once: the policy forbids overwrites, so a 409 on the *retry* of a key whose
earlier attempt lost its answer means that attempt landed (success, no orphan); a
409 on a key's first attempt is a real collision and the file gets a new key. Every
send is counted here: ``HttpSession`` never re-sends a POST on its own (not even on a
kept-alive connection the server dropped), so no attempt goes unseen.
Every number a server sends (size limit, policy lifetime) is validated before use.
"""

from __future__ import annotations

import math
import mimetypes
import re
import threading
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import quote, urlsplit

from . import errors
from .credentials import Secret
from .endpoints import Endpoint
from .errors import QwenOpsError
from .http_client import (
    DEFAULT_RETRY,
    HttpSession,
    Response,
    RetryPolicy,
    call_with_retries,
    error_fields,
    retry_deadline,
)
from .local_files import HashedReader, LocalFile, display, readable_name
from .redaction import Concealed, server_said
from .urls import is_loopback_host, parse_url

MEDIA_TTL_SECONDS = 48 * 3600
POLICY_MARGIN_SECONDS = 30
MAX_KEY_BYTES = 1023
DEFAULT_MAX_FILE_MB = 100
DEFAULT_POLICY_TTL = 300


def server_number(data: dict, name: str, default: float, low: float, high: float) -> float:
    """A number from a server's answer, or ``default`` when absent; anything else is an error (never echoed)."""
    value = data.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and low <= number <= high):
        raise QwenOpsError(f"getPolicy answered with an unusable {name} (not a number in {low:g}-{high:g})",
                           errors.HTTP_ERROR)
    return number


MAX_UPLOAD_DIR = 512
MAX_FORM_FIELD = 64 * 1024
FORM_FIELDS = ("oss_access_key_id", "signature", "policy", "x_oss_object_acl", "x_oss_forbid_overwrite")
_BUCKET_PATH = re.compile(r"^(/[a-z0-9][a-z0-9-]{1,61}[a-z0-9])?/?$")


def _refuse(what: str) -> QwenOpsError:
    return QwenOpsError(f"getPolicy answered with {what}; refused, nothing was uploaded", errors.HTTP_ERROR)


def check_upload_host(raw, endpoint: Endpoint) -> str:
    """The upload address a policy names, when it may receive the user's files; else exit 7.

    Allowed: ``https://`` to a ``*.aliyuncs.com`` host (OSS), with no path or one bucket
    segment; a loopback ``http(s)://`` address only when the API endpoint is loopback itself
    (the sandbox, which only the process environment can choose).
    """
    if not isinstance(raw, str) or len(raw) > 2048:
        raise _refuse("an unusable upload_host")
    try:
        parts = urlsplit(raw.strip())
        host = (parts.hostname or "").lower()
    except ValueError:
        raise _refuse(f"an unusable upload_host ({server_said(raw, 120)})") from None
    oss = parts.scheme == "https" and host.endswith(".aliyuncs.com")
    if not oss and not (is_loopback_host(host) and is_loopback_host(endpoint.host)):
        raise _refuse(f"an upload host that is not Alibaba Cloud OSS over https ({server_said(host or raw, 120)})")
    try:  # the same shape rules as an endpoint: no user name, query, malformed label or bad port
        parse_url(raw, "upload_host", paths=("", "/", parts.path.rstrip("/")))
    except QwenOpsError:
        raise _refuse(f"an unusable upload_host ({server_said(raw, 120)})") from None
    if not _BUCKET_PATH.match(parts.path):
        raise _refuse(f"an upload_host with an unexpected path ({server_said(raw, 120)})")
    return raw.strip()


def check_policy(data: dict, endpoint: Endpoint) -> None:
    """Every policy field that reaches the form or the printed ``oss://`` URL, checked (exit 7, never echoed)."""
    check_upload_host(data.get("upload_host"), endpoint)
    upload_dir = data.get("upload_dir")
    if not (isinstance(upload_dir, str) and 0 < len(upload_dir) <= MAX_UPLOAD_DIR and upload_dir.isprintable()
            and not any(c.isspace() or c == "\\" for c in upload_dir) and not upload_dir.startswith("/")
            and ".." not in upload_dir.split("/")):
        raise _refuse("an unusable upload_dir (empty, too long, '..', spaces or control characters)")
    for name in FORM_FIELDS:
        value = data.get(name, "")
        if not (isinstance(value, str) and len(value) <= MAX_FORM_FIELD and value.isprintable()):
            raise _refuse(f"an unusable {name} (not one printable line)")


@dataclass(frozen=True)
class Policy:
    data: dict
    expires_at: float
    margin: float          # replaced this long before it expires (an upload must fit in the rest)
    max_bytes: int = DEFAULT_MAX_FILE_MB * 1024 * 1024

    def fresh(self) -> bool:
        return self.expires_at - time.time() > self.margin


def object_key(upload_dir: str, name: str) -> str:
    """The object's key: ``upload_dir``, a random part and the file's name in ASCII (``ascii_name``)."""
    prefix = f"{upload_dir}/{uuid.uuid4().hex[:12]}_"
    return prefix + readable_name(ascii_name(name), MAX_KEY_BYTES - len(prefix.encode("utf-8")))


def ascii_name(name: str) -> str:
    """``name`` with each character outside ASCII spelled ``u`` and its code point (``照片.png``:
    ``u7167u7247.png``). The oss:// URL is then ASCII: a console in a legacy code page shows it
    exactly (it would otherwise be escaped into a URL that names no object), and so does any log or
    agent that reads it. Temporary-storage objects are read by the model, not browsed."""
    return "".join(c if c.isascii() else f"u{ord(c):04x}" for c in unicodedata.normalize("NFC", name))


class MultipartFile:
    """A multipart/form-data body: fields first, then the file streamed from disk."""

    def __init__(self, fields: list, local: LocalFile, filename: str, content_type: str,
                 progress: Callable[[int], None] | None = None):
        self.boundary = f"----qianwen{uuid.uuid4().hex}"
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields)
        # The name as the user sees it, minus what would break the header; bytes that were not UTF-8
        # (surrogate escapes from the command line) become "?" instead of failing the whole batch.
        safe_filename = "".join("_" if c in '"\\' or not c.isprintable() else c for c in filename)
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{safe_filename}"\r\nContent-Type: {content_type}\r\n\r\n').encode("utf-8", "replace")
        self._head = head
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._local = local
        self._progress = progress
        self.length = len(head) + local.size + len(self._tail)
        self.sha256 = ""

    def chunks(self) -> Iterator[bytes]:
        """The body; the file is read once into reusable buffers and hashed alongside (``HashedReader``:
        each chunk is valid until the next is asked for, which is how an HTTP body is sent)."""
        reader = HashedReader(self._local)
        yield self._head
        sent = 0
        for chunk in reader:
            yield chunk
            sent += len(chunk)
            if self._progress is not None:
                self._progress(sent)
        yield self._tail
        self.sha256 = reader.hexdigest()


@dataclass
class TempStorage:
    """Uploads to DashScope temporary storage for one key and endpoint."""

    endpoint: Endpoint
    api_key: Secret
    session: HttpSession
    retry: RetryPolicy = DEFAULT_RETRY
    _policies: dict = field(default_factory=dict)
    _failures: dict = field(default_factory=dict)   # model -> error: a batch does not retry a failed policy
    _unreachable: bool = False                      # the upload host failed a whole retry sequence
    _lock: threading.Lock = field(default_factory=threading.Lock)

    backend = "temp-storage"
    needs_resolve_header = True

    def _deadline(self, body_bytes: int = 0) -> float | None:
        """When one request's retries must end: a few ``--timeout`` (plus the body's send time)."""
        timeout = getattr(self.session, "timeout", None)
        return None if timeout is None else retry_deadline(timeout, body_bytes)

    def _fetch_policy(self, model: str) -> Policy:
        url = f"{self.endpoint.native_base}/uploads?action=getPolicy&model={quote(model, safe='')}"
        headers = {"Authorization": Concealed(f"Bearer {self.api_key.reveal()}"), "Accept": "application/json"}
        response = call_with_retries(lambda: self.session.request("GET", url, headers), self.retry,
                                     deadline=self._deadline())
        if response.status != 200:
            raise _service_error("getPolicy", response)
        data = (response.json() or {}).get("data")
        if not isinstance(data, dict) or not all(k in data for k in ("policy", "signature", "upload_dir",
                                                                      "upload_host", "oss_access_key_id")):
            raise QwenOpsError("getPolicy answered without a usable upload policy", errors.HTTP_ERROR)
        check_policy(data, self.endpoint)
        ttl = server_number(data, "expire_in_seconds", DEFAULT_POLICY_TTL, 1, 7 * 86400)
        max_mb = server_number(data, "max_file_size_mb", DEFAULT_MAX_FILE_MB, 0.001, 1024 * 1024)
        return Policy(data, time.time() + ttl, margin=min(POLICY_MARGIN_SECONDS, ttl / 4),
                      max_bytes=int(max_mb * 1024 * 1024))

    def policy(self, model: str, stale: Policy | None = None) -> Policy:
        """The shared policy for ``model``; a new one when it is close to expiry or ``stale``."""
        with self._lock:
            if model in self._failures:
                raise self._failures[model]
            current = self._policies.get(model)
            if current is None or current is stale or not current.fresh():
                try:
                    current = self._fetch_policy(model)
                except QwenOpsError as exc:
                    self._failures[model] = exc
                    raise
                self._policies[model] = current
            return current

    def max_bytes(self, model: str) -> int:
        return self.policy(model).max_bytes

    def upload(self, local: LocalFile, model: str, progress: Callable[[int], None] | None = None,
               stable_id: str | None = None) -> tuple[str, float, str]:
        """Upload one checked file; returns (oss:// URL, expires_at, sha256).

        ``stable_id`` is ignored: every policy has a fresh upload dir, so keys are random here.
        """
        policy = self.policy(model)
        refreshed = renamed = False
        # Once one file has used up its retries on network errors, the rest of the batch tries each
        # file once (a dead upload host must not cost every input the full backoff).
        retry = self.retry._replace(attempts=1) if self._unreachable else self.retry
        content_type = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
        while True:
            key = object_key(policy.data["upload_dir"], local.name)
            form = MultipartFile(_form_fields(policy.data, key, content_type), local, local.name, content_type,
                                 progress)
            headers = {"Content-Type": f"multipart/form-data; boundary={form.boundary}"}
            attempts = []
            send = partial(self.session.request, "POST", policy.data["upload_host"], headers, form)

            def counted_send(send=send, attempts=attempts) -> Response:
                attempts.append(1)
                return send()

            try:  # 429, 5xx and network errors: retried with backoff by the HTTP layer
                response = call_with_retries(counted_send, retry, deadline=self._deadline(form.length))
            except QwenOpsError as exc:
                self._unreachable = self._unreachable or exc.exit_code == errors.NETWORK
                raise
            self._unreachable = False
            if response.status in (200, 201, 204):
                return f"oss://{key}", time.time() + MEDIA_TTL_SECONDS, form.sha256
            if response.status == 409 and len(attempts) > 1 and form.sha256:
                # This key is ours alone (random, overwrite forbidden): an earlier attempt whose answer
                # was lost stored exactly these bytes. Uploading again under a new name would orphan it.
                return f"oss://{key}", time.time() + MEDIA_TTL_SECONDS, form.sha256
            fields = error_fields(response)
            if response.status == 403 and "expired" in fields[1].lower() and not refreshed:
                refreshed = True
                policy = self.policy(model, stale=policy)
                continue
            if response.status == 409 and not renamed:
                renamed = True   # a real collision on the first attempt: one new name
                continue
            raise _service_error(f"upload of {display(str(local.path))}", response, fields)


def _form_fields(data: dict, key: str, content_type: str) -> list:
    return [
        ("OSSAccessKeyId", data["oss_access_key_id"]),
        ("Signature", data["signature"]),
        ("policy", data["policy"]),
        ("key", key),
        ("x-oss-object-acl", data.get("x_oss_object_acl", "private")),
        ("x-oss-forbid-overwrite", data.get("x_oss_forbid_overwrite", "true")),
        ("success_action_status", "200"),
        ("x-oss-content-type", content_type),
    ]


def _service_error(what: str, response: Response, fields: tuple | None = None) -> QwenOpsError:
    code, message, request_id = fields or error_fields(response)
    detail = f"{code}: {message}" if code else message or "no details"
    rid = f" (request_id {request_id})" if request_id else ""
    return QwenOpsError(f"{what} failed with HTTP {response.status} {detail}{rid}",
                        errors.exit_code_for_status(response.status), code=code, status=response.status)

