"""The one place that speaks HTTP: timeouts, retries, redaction, no redirects.

Built on ``http.client`` so that

* redirects are never followed (a key is never replayed to another host),
* request bodies can be streamed from disk with a known Content-Length,
* connections are reused per thread within a session (batches stay fast).

Every error raised from here is a ``QwenOpsError`` whose message names the host
only: never a URL query, a header or a body.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from typing import Callable, NamedTuple
from urllib.parse import urlsplit

from .errors import NETWORK, QwenOpsError
from .redaction import untrusted

USER_AGENT = "qianwen-ops-auth"
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
STREAM_CHUNK = 256 * 1024

# A request body may also be any object with ``length`` (int) and ``chunks()`` (an iterator of
# bytes that can be called again for a retry): see temp_storage.MultipartFile.
BodySource = object


class Response(NamedTuple):
    status: int
    headers: dict
    body: bytes

    def json(self) -> dict | None:
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


def _network_error(exc: BaseException, host: str, timeout: float) -> QwenOpsError:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        text = f"timed out after {timeout:g}s waiting for {host}"
    elif isinstance(exc, ConnectionRefusedError):
        text = f"connection refused by {host}"
    elif isinstance(exc, socket.gaierror):
        text = f"cannot resolve host {host}"
    elif isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected,
                          http.client.IncompleteRead, ConnectionAbortedError)):
        text = f"connection to {host} was dropped"
    elif exc.__class__.__module__ == "ssl":
        text = f"TLS error talking to {host} ({exc.__class__.__name__})"
    else:
        text = f"network error talking to {host} ({exc.__class__.__name__})"
    return QwenOpsError(text, NETWORK, retryable=True)


class HttpSession:
    """Reusable connections (one per host and thread) with a fixed timeout."""

    def __init__(self, timeout: float = 15.0):
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self, scheme: str, host: str, port: int | None, fresh: bool):
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        key = (scheme, host, port)
        conn = pool.get(key)
        if conn is not None and not fresh:
            return conn, True
        if conn is not None:
            conn.close()
        if scheme == "https":
            import ssl

            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        pool[key] = conn
        return conn, False

    def _discard(self, scheme: str, host: str, port: int | None, conn) -> None:
        """A connection that failed is closed and forgotten: the next request opens a fresh one."""
        conn.close()
        pool = getattr(self._local, "pool", {})
        if pool.get((scheme, host, port)) is conn:
            del pool[(scheme, host, port)]

    def close(self) -> None:
        for conn in getattr(self._local, "pool", {}).values():
            conn.close()
        self._local.pool = {}

    def request(self, method: str, url: str, headers: dict | None = None,
                body: bytes | BodySource | None = None) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise QwenOpsError("refusing to send a request to a non-http(s) URL", NETWORK)
        host = parts.hostname
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
        if body is not None:
            headers["Content-Length"] = str(len(body) if isinstance(body, bytes) else body.length)
        for attempt in (0, 1):
            conn, reused = self._connection(parts.scheme, host, parts.port, fresh=attempt > 0)
            try:
                conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
                for name, value in headers.items():
                    conn.putheader(name, value)
                conn.endheaders()
                if isinstance(body, bytes):
                    conn.send(body)
                elif body is not None:
                    for chunk in body.chunks():
                        conn.send(chunk)
                raw = conn.getresponse()
                data = raw.read(MAX_RESPONSE_BYTES + 1)
                if len(data) > MAX_RESPONSE_BYTES:
                    self._discard(parts.scheme, host, parts.port, conn)
                    raise QwenOpsError(f"response from {host} is larger than expected", NETWORK)
                response = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
                if raw.will_close:
                    self._discard(parts.scheme, host, parts.port, conn)
                return response
            except QwenOpsError:
                self._discard(parts.scheme, host, parts.port, conn)  # never leave a half-sent request
                raise
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._discard(parts.scheme, host, parts.port, conn)
                if reused and attempt == 0:
                    continue  # a keep-alive connection the server had closed: one fresh try
                raise _network_error(exc, host, self.timeout) from None
            except (OSError, http.client.HTTPException) as exc:
                self._discard(parts.scheme, host, parts.port, conn)
                raise _network_error(exc, host, self.timeout) from None
        raise AssertionError("unreachable")


class RetryPolicy(NamedTuple):
    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 3.0


DEFAULT_RETRY = RetryPolicy()


def backoff_delay(policy: RetryPolicy, attempt: int, rand: Callable[[], float] | None = None) -> float:
    """Equal-jitter exponential backoff: uniform in [cap/2, cap], cap = min(max_delay, base * 2**attempt).

    With the defaults the waits add up to 1.5-3 s over five attempts: long enough to outlast a
    one-second rate-limit window (getPolicy's 100 QPS), short enough never to stall an agent.
    """
    if rand is None:
        import random

        rand = random.random
    cap = min(policy.max_delay, policy.base_delay * 2 ** attempt)
    return cap / 2 + rand() * cap / 2


def call_with_retries(call: Callable[[], Response], policy: RetryPolicy = DEFAULT_RETRY,
                      sleep: Callable[[float], None] = time.sleep,
                      rand: Callable[[], float] | None = None) -> Response:
    """Run ``call``; retry 429/5xx responses and retryable errors with full-jitter backoff."""
    for attempt in range(policy.attempts):
        last = attempt == policy.attempts - 1
        try:
            response = call()
        except QwenOpsError as exc:
            if not exc.retryable or last:
                raise
            sleep(backoff_delay(policy, attempt, rand))
            continue
        if response.status not in RETRY_STATUSES or last:
            return response
        delay = backoff_delay(policy, attempt, rand)
        retry_after = response.header("retry-after")
        if retry_after.isdigit():
            delay = min(policy.max_delay, max(delay, float(retry_after)))
        sleep(delay)
    raise AssertionError("unreachable")


def error_fields(response: Response) -> tuple[str, str, str]:
    """(code, message, request_id) from a DashScope JSON or OSS XML error body, redacted."""
    data = response.json()
    if data is not None:
        inner = data.get("error") if isinstance(data.get("error"), dict) else {}
        code = untrusted(data.get("code") or inner.get("code"), 80)
        message = untrusted(data.get("message") or inner.get("message"))
        request_id = untrusted(data.get("request_id") or data.get("id"), 80)
        return code, message, request_id
    text = response.body[:65536].decode("utf-8", "replace")
    found = {}
    for tag in ("Code", "Message", "RequestId"):
        m = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
        found[tag] = m.group(1).strip() if m else ""
    return untrusted(found["Code"], 80), untrusted(found["Message"]), untrusted(found["RequestId"], 80)
