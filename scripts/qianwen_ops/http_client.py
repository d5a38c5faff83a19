"""HTTP for the scripts' own requests: timeouts, proxies, TLS trust, retries, no redirects.

Built on ``http.client`` (custom OSS mode too, through ``oss_v4``; ``check_update.py`` speaks
through urllib and repeats the CA order) so that

* redirects are never followed (a key is never replayed to another host),
* request bodies can be streamed from disk with a known Content-Length,
* connections are reused per thread within a session (batches stay fast),
* proxies and CAs come from the process environment only (see ``network``): https goes
  through a CONNECT tunnel, so the proxy sees the host name but never the request headers;
  plain http through a proxy (absolute-form) refuses to carry an ``Authorization`` header,
* time is bounded: ``connect_timeout`` covers TCP, the CONNECT exchange and the TLS
  handshake; ``timeout`` bounds each wait for data; and the whole answer (status line,
  headers, body) must arrive within ``RESPONSE_DEADLINE_FACTOR`` x ``timeout`` of the request
  being sent, so a server trickling one byte at a time cannot hold a script.

Every error raised from here is a ``QwenOpsError`` whose message names the host
only: never a URL query, a header or a body.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping

from . import network, urls
from .errors import CONFIG, NETWORK, QwenOpsError
from .limits import MIN_UPLOAD_RATE, REQUEST_TIMEOUT, RETRY_DEADLINE_FACTOR, TLS_CHECK_TIMEOUT
from .named_tuple import NamedTuple
from .redaction import server_said, server_token

USER_AGENT = "qianwen-ops-auth"
# What a success body needs: a getPolicy answer, a one-token chat completion, doctor's tiny object (all a few KiB).
MAX_RESPONSE_BYTES = 1024 * 1024
# An error body is read for its code and message only: the rest is never read (16 uploads against a hostile
# host once held 484 MiB of error bodies).
MAX_ERROR_BODY = 64 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RESPONSE_DEADLINE_FACTOR = 2.0
MAX_PROXY_REPLY = 16 * 1024
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-oss-security-token"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})  # safe to send twice (RFC 9110)


class Response(NamedTuple):
    status: int
    headers: dict
    body: bytes

    def json(self) -> dict | None:
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    def header(self, name: str, default: str = "") -> str:
        """A header as the server sent it: untrusted text (pass it through ``redaction.safe_line``)."""
        return self.headers.get(name.lower(), default)


class _DeadlinePassed(socket.timeout):
    pass


class _Sock:
    """A connected socket whose reads honour the read timeout and the response deadline."""

    def __init__(self, sock, read_timeout: float):
        self.sock = sock
        self.read_timeout = read_timeout
        self.deadline: float | None = None
        self._readers = 0       # like socket.makefile: the socket closes when its last reader does
        self._closed = False

    def sendall(self, data) -> None:
        self.sock.settimeout(self.read_timeout)
        self.sock.sendall(data)

    def recv_into(self, buffer) -> int:
        timeout = self.read_timeout
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise _DeadlinePassed("response deadline passed")
            timeout = min(timeout, left)
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv_into(buffer)
        except socket.timeout:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise _DeadlinePassed("response deadline passed") from None
            raise

    def makefile(self, mode: str = "rb", *args, **kwargs):
        self._readers += 1
        return io.BufferedReader(_Reader(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self.sock.close()

    def close(self) -> None:
        """http.client closes the connection before the body of a "Connection: close" answer is read."""
        self._closed = True
        if self._readers <= 0:
            self.sock.close()

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


class _Reader(io.RawIOBase):
    def __init__(self, owner: _Sock):
        self.owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self.owner.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self.owner.reader_closed()
        super().close()


class _ProxyRefused(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class _Connection(http.client.HTTPConnection):
    """One connection to a target, direct or through an http proxy (CONNECT for https)."""

    def __init__(self, scheme: str, host: str, port: int, proxy, context, connect_timeout: float,
                 read_timeout: float, first_hop=None):
        super().__init__(host, port, timeout=connect_timeout)
        self.first_hop = first_hop  # a first_hop.FirstHop that may already hold the TCP connection
        self.default_port = urls.DEFAULT_PORTS[scheme]
        self.scheme = scheme
        self.proxy = proxy
        self.context = context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.stage = "connect"   # "proxy" while talking to the proxy, then "connect", then "request"

    def connect(self) -> None:
        deadline = time.monotonic() + self.connect_timeout
        self.stage = "proxy" if self.proxy else "connect"
        address = (self.proxy.host, self.proxy.port) if self.proxy else (self.host, self.port)
        sock = self.first_hop.take(address) if self.first_hop is not None else None
        if sock is None:
            sock = socket.create_connection(address, timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.proxy is not None and self.scheme == "https":
                self._open_tunnel(sock, deadline)
            self.stage = "connect"
            if self.scheme == "https":
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.stage = "request"
        self.sock = _Sock(sock, self.read_timeout)

    def _open_tunnel(self, sock, deadline: float) -> None:
        target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}", f"User-Agent: {USER_AGENT}"]
        if self.proxy.authorization:
            lines.append(f"Proxy-Authorization: {self.proxy.authorization}")
        reader = _Sock(sock, self.connect_timeout)
        reader.deadline = deadline
        reader.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        reply, one = bytearray(), bytearray(1)   # a bytearray grows in place: linear in the reply
        while not reply.endswith(b"\r\n\r\n"):
            if len(reply) > MAX_PROXY_REPLY or not reader.recv_into(one):
                raise http.client.RemoteDisconnected("proxy closed the connection")
            reply += one
        status_line = reply.split(b"\r\n", 1)[0].split()
        status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0
        if status != 200:
            raise _ProxyRefused(status)


def _with_set_aside(advice: str, env) -> str:
    """``network.certificate_advice``'s line, its fix replaced when a CA variable the user set was set aside
    (``provenance.certificate_note``): "set SSL_CERT_FILE" would be wrong advice then."""
    from .provenance import certificate_note  # only on a certificate failure

    note = certificate_note(env)
    return f"{advice.split('; ', 1)[0]}; {note}" if note else advice


def _network_error(exc: BaseException, where: str, timeout: float, stage: str = "request") -> QwenOpsError:
    if isinstance(exc, (socket.timeout, TimeoutError)) and stage != "request":
        text = f"timed out after {timeout:g}s connecting to {where}"   # TCP, CONNECT reply or TLS handshake
    elif isinstance(exc, _DeadlinePassed):
        text = (f"no complete answer from {where} within {RESPONSE_DEADLINE_FACTOR * timeout:g}s "
                "(the server is sending too slowly)")
    elif isinstance(exc, (socket.timeout, TimeoutError)):
        text = f"timed out after {timeout:g}s waiting for {where}"
    elif isinstance(exc, ConnectionRefusedError):
        text = f"connection refused by {where}"
    elif isinstance(exc, socket.gaierror):
        text = f"cannot resolve host {where}"
    elif isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected,
                          http.client.IncompleteRead, ConnectionAbortedError)):
        text = f"connection to {where} was dropped"
    elif exc.__class__.__module__ == "ssl":
        text = f"TLS error talking to {where} ({exc.__class__.__name__})"
    else:
        text = f"network error talking to {where} ({exc.__class__.__name__})"
    return QwenOpsError(text, NETWORK, retryable=True)


class HttpSession:
    """Reusable connections (one per host and thread), one TLS context, proxies from the environment.

    ``env`` is the process environment by default (never a ``.env`` file); ``timeout`` bounds
    each wait for data and ``connect_timeout`` (default: the same) the connection set-up.
    ``first_hop`` (``first_hop.open_first_hop``) is a TCP connection already being opened: the
    first connection to the same address uses it.
    """

    def __init__(self, timeout: float = REQUEST_TIMEOUT, connect_timeout: float | None = None,
                 env: Mapping[str, str] | None = None, first_hop=None):
        self.first_hop = first_hop
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        self.env = env
        self._local = threading.local()
        self._pools: list = []
        self._pools_lock = threading.Lock()
        self._routes: dict = {}
        self._context = None

    def _tls(self):
        if self._context is None:
            self._context = network.ssl_context(self.env)
        return self._context

    def route(self, scheme: str, host: str, port: int):
        """The proxy (or None) for this target; decided once per session."""
        key = (scheme, host, port)
        if key not in self._routes:
            self._routes[key] = network.proxy_for(scheme, host, port, self.env)
        return self._routes[key]

    def _connection(self, scheme: str, host: str, port: int, fresh: bool):
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
            with self._pools_lock:
                self._pools.append(pool)
        key = (scheme, host, port)
        conn = pool.get(key)
        if conn is not None and not fresh:
            return conn, True
        if conn is not None:
            conn.close()
        context = self._tls()[0] if scheme == "https" else None
        conn = _Connection(scheme, host, port, self.route(scheme, host, port), context,
                           self.connect_timeout, self.timeout, self.first_hop)
        pool[key] = conn
        return conn, False

    def _discard(self, key: tuple, conn) -> None:
        """A connection that failed is closed and forgotten: the next request opens a fresh one."""
        conn.close()
        pool = getattr(self._local, "pool", {})
        if pool.get(key) is conn:
            del pool[key]

    def close(self) -> None:
        """Close every thread's connections (a batch's workers are done by now)."""
        if self.first_hop is not None:
            self.first_hop.close()
        with self._pools_lock:
            pools = list(self._pools)
        for pool in pools:
            for conn in list(pool.values()):
                conn.close()
            pool.clear()

    def _failure(self, exc: BaseException, conn: _Connection, host: str) -> QwenOpsError:
        import ssl  # deferred: only a failure is sorted by its TLS kind; a plain-http run never loads ssl

        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = getattr(exc, "verify_message", "") or ""
            advice = network.certificate_advice(host, self._tls()[1], reason, conn.proxy, self.env)
            return QwenOpsError(_with_set_aside(advice, self.env), NETWORK)
        if isinstance(exc, _ProxyRefused):
            label = conn.proxy.label if conn.proxy else "the proxy"
            if exc.status == 407:
                return QwenOpsError(f"{label} refused the credentials (407 Proxy Authentication Required); "
                                    f"{network.credentials_hint(conn.proxy)}", CONFIG)
            shown = str(exc.status) if exc.status else "no valid HTTP"
            return QwenOpsError(f"{label} would not open a tunnel to {host} (answer {shown})", NETWORK,
                                retryable=exc.status in RETRY_STATUSES)
        if conn.proxy is not None and conn.stage == "proxy":
            return _network_error(exc, conn.proxy.label, conn.connect_timeout, "proxy")
        timeout = conn.connect_timeout if conn.stage != "request" else self.timeout
        return _network_error(exc, host, timeout, conn.stage)

    def request(self, method: str, url: str, headers: dict | None = None, body=None) -> Response:
        """Send one request; ``body`` is bytes or an object with ``length`` and ``chunks()``
        (an iterator of bytes that can be called again for a retry, e.g. temp_storage.MultipartFile)."""
        scheme, host, port, path = urls.split_url(url)
        key = (scheme, host, port)
        proxy = self.route(scheme, host, port)
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
        if proxy is not None and scheme == "http":
            if any(name.lower() in _CREDENTIAL_HEADERS for name in headers):
                raise network.plain_http_refusal(host, proxy)
            shown = f"[{host}]" if ":" in host else host
            path = f"http://{shown}:{port}{path}"   # absolute-form: the proxy forwards it
            if proxy.authorization:
                headers["Proxy-Authorization"] = proxy.authorization
        if body is not None:
            headers["Content-Length"] = str(len(body) if isinstance(body, bytes) else body.length)
        for attempt in (0, 1):
            conn, reused = self._connection(scheme, host, port, fresh=attempt > 0)
            try:
                conn.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
                for name, value in headers.items():
                    conn.putheader(name, value)
                # a small body goes out with the headers in one send: no Nagle / delayed-ACK stall
                conn.endheaders(body if isinstance(body, bytes) else None)
                if body is not None and not isinstance(body, bytes):
                    for chunk in body.chunks():
                        conn.send(chunk)
                sock = conn.sock  # http.client drops conn.sock once it knows the server will close
                sock.deadline = time.monotonic() + RESPONSE_DEADLINE_FACTOR * self.timeout
                raw = conn.getresponse()
                limit = MAX_RESPONSE_BYTES if 200 <= raw.status < 300 else MAX_ERROR_BODY
                data = raw.read(limit + 1)
                sock.deadline = None
                if len(data) > limit and limit != MAX_ERROR_BODY:
                    self._discard(key, conn)
                    raise QwenOpsError(f"response from {host} is larger than expected", NETWORK)
                response = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data[:limit])
                if raw.will_close or len(data) > limit:  # the rest of an error body is left unread: not reusable
                    self._discard(key, conn)
                return response
            except QwenOpsError:
                self._discard(key, conn)  # never leave a half-sent request
                raise
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                stage = conn.stage
                self._discard(key, conn)
                if reused and attempt == 0 and stage == "request" and method in IDEMPOTENT_METHODS:
                    continue  # a keep-alive connection the server had closed: one fresh try
                # Never silently for a POST: the server may have acted on it and lost only the answer; the
                # caller's retry (which counts its attempts: temp_storage's exactly-once rule) decides.
                raise self._failure(exc, conn, host) from None
            except (OSError, http.client.HTTPException, _ProxyRefused) as exc:
                self._discard(key, conn)
                raise self._failure(exc, conn, host) from None
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
        import random  # deferred: only a retry waits

        rand = random.random
    cap = min(policy.max_delay, policy.base_delay * 2 ** attempt)
    return cap / 2 + rand() * cap / 2


def retry_after_seconds(value: str, now: Callable[[], float] = time.time) -> float | None:
    """Seconds asked for by a Retry-After header (ASCII digits or an HTTP date), else None."""
    value = (value or "").strip()[:64]
    if value.isascii() and value.isdigit():
        return float(value[:9])
    if not value or not value.isascii():
        return None
    from email.utils import parsedate_to_datetime  # deferred: only a Retry-After given as an HTTP date

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def retry_deadline(timeout: float, body_bytes: int = 0, clock: Callable[[], float] = time.monotonic) -> float:
    """The ``clock()`` time by which one request's retries must be over (see ``call_with_retries``).

    ``RETRY_DEADLINE_FACTOR`` timeouts, plus the time to send ``body_bytes`` at ``MIN_UPLOAD_RATE``
    so that a large upload keeps a retry for a connection reset.
    """
    return clock() + RETRY_DEADLINE_FACTOR * timeout + body_bytes / MIN_UPLOAD_RATE


def call_with_retries(call: Callable[[], Response], policy: RetryPolicy = DEFAULT_RETRY,
                      sleep: Callable[[float], None] = time.sleep,
                      rand: Callable[[], float] | None = None, deadline: float | None = None,
                      clock: Callable[[], float] = time.monotonic) -> Response:
    """Run ``call``; retry 429/5xx responses and retryable errors with equal-jitter backoff.

    A ``Retry-After`` of whole seconds or an HTTP date lengthens the wait (never beyond
    ``policy.max_delay``); anything else in it is ignored. With a ``deadline`` (a ``clock()``
    time), a retry starts only when its wait plus the longest attempt so far still ends before
    it; otherwise the last answer (or error) stands. A trickling server therefore cannot stretch
    the sequence to ``attempts`` times its per-request bound.
    """
    longest = 0.0
    for attempt in range(policy.attempts):
        last = attempt == policy.attempts - 1
        started = clock()
        try:
            response = call()
        except QwenOpsError as exc:
            longest = max(longest, clock() - started)
            if not exc.retryable or last:
                raise
            delay = backoff_delay(policy, attempt, rand)
            if deadline is not None and clock() + delay + longest > deadline:
                raise
            sleep(delay)
            continue
        longest = max(longest, clock() - started)
        if response.status not in RETRY_STATUSES or last:
            return response
        delay = backoff_delay(policy, attempt, rand)
        retry_after = retry_after_seconds(response.header("retry-after"))
        if retry_after is not None:
            delay = min(policy.max_delay, max(delay, retry_after))
        if deadline is not None and clock() + delay + longest > deadline:
            return response
        sleep(delay)
    raise AssertionError("unreachable")


def error_fields(response: Response) -> tuple[str, str, str]:
    """(code, message, request_id) from a DashScope JSON or OSS XML error body: redacted, one line, and
    marked as the server's (``server said: "..."``; a code or id shaped unlike an identifier too)."""
    data = response.json()
    if data is not None:
        inner = data.get("error") if isinstance(data.get("error"), dict) else {}
        code = server_token(data.get("code") or inner.get("code"))
        message = server_said(data.get("message") or inner.get("message"))
        request_id = server_token(data.get("request_id") or data.get("id"))
        return code, message, request_id
    text = response.body[:65536].decode("utf-8", "replace")
    found = {tag: xml_field(text, tag) for tag in ("Code", "Message", "RequestId")}
    return server_token(found["Code"]), server_said(found["Message"]), server_token(found["RequestId"])


def xml_values(text: str, tag: str) -> list:
    """The text of every ``<tag>...</tag>`` in ``text``, in order (OSS's answers and errors).

    ``str.find`` from left to right, so linear in ``text`` (a lazy regex was quadratic: a 64 KiB body
    repeating ``<Code>`` without a closing tag once cost seconds of CPU per answer).
    """
    opening, closing = f"<{tag}>", f"</{tag}>"
    found, at = [], 0
    while True:
        start = text.find(opening, at)
        if start < 0:
            return found
        start += len(opening)
        end = text.find(closing, start)
        if end < 0:
            return found
        found.append(text[start:end])
        at = end + len(closing)



def xml_field(text: str, tag: str) -> str:
    """The first ``xml_values`` of ``tag``, stripped, or ""."""
    found = xml_values(text, tag)
    return found[0].strip() if found else ""


def tls_handshake(url: str, context, env: Mapping[str, str] | None = None,
                  timeout: float = TLS_CHECK_TIMEOUT) -> dict:
    """Open a TLS connection to ``url``'s host as a request would (the same proxy route, CONNECT
    tunnel included) but verified with ``context``, then close it: nothing is sent inside.

    Returns the peer certificate as ``getpeercert()`` gives it. A certificate ``context`` does
    not accept raises ``ssl.SSLCertVerificationError``; anything else a one-line ``QwenOpsError``.
    """
    import ssl  # deferred: doctor's TLS check only

    scheme, host, port, _ = urls.split_url(url)
    conn = _Connection(scheme, host, port, network.proxy_for(scheme, host, port, env), context, timeout, timeout)
    try:
        conn.connect()
        return conn.sock.getpeercert() or {}
    except ssl.SSLCertVerificationError:
        raise
    except _ProxyRefused as exc:
        raise QwenOpsError(f"the proxy would not open a tunnel to {host} (answer {exc.status or 'invalid'})",
                           NETWORK) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _network_error(exc, host, timeout, conn.stage) from None
    finally:
        conn.close()
