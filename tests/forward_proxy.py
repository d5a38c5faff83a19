"""A small forward proxy for the tests: CONNECT tunnels, absolute-form http, Basic auth, TLS inspection.

It never resolves a name: each ``host:port`` a client asks for is looked up in ``routes``
(-> a loopback address), ``answers`` (-> the proxy answers inside the tunnel itself, like a
fake region host) or refused with 403. In ``inspect`` mode it re-signs TLS for the
requested host with its own CA (as a company proxy does) and talks TLS to the real
target, trusting ``upstream_ca``. ``seen`` records every request head the proxy received
outside a tunnel; ``inner`` the request heads it could read inside one (inspect/answers);
``errors`` every exception a connection ended with (a test shows them when it fails).
"""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import ssl
import threading
import traceback
from urllib.parse import urlsplit

HEAD_LIMIT = 64 * 1024
IO_TIMEOUT = 10


def read_head(sock) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096 if not isinstance(sock, ssl.SSLSocket) else 1)
        if not chunk:
            break
        data += chunk
        if len(data) > HEAD_LIMIT:
            break
    return data


def parse_head(head: bytes) -> tuple[str, dict]:
    text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = text.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def pipe(a, b) -> None:
    socks = [a, b]
    while True:
        ready = [s for s in socks if isinstance(s, ssl.SSLSocket) and s.pending()]
        if not ready:
            ready, _, _ = select.select(socks, [], [], IO_TIMEOUT)
            if not ready:
                return
        for s in ready:
            try:
                data = s.recv(65536)
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            (b if s is a else a).sendall(data)


def close_gently(sock) -> None:
    """FIN first, then read what the client still sends until it closes (at most 2 s), then close.

    Closing a socket that holds unread bytes makes the kernel send a reset, and a reset can
    discard an answer the client has received but not yet read.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        while sock.recv(65536):
            pass
    except (OSError, ValueError):
        pass
    finally:
        sock.close()


class ForwardProxy:
    def __init__(self, routes: dict | None = None, answers: dict | None = None, credentials: tuple | None = None,
                 inspect_ca=None, upstream_ca=None, allow_loopback: bool = False):
        self.routes = dict(routes or {})
        self.answers = dict(answers or {})
        self.credentials = credentials
        self.inspect_ca = inspect_ca
        self.allow_loopback = allow_loopback
        self.seen: list = []
        self.inner: list = []
        self.errors: list = []
        self.accepted = 0   # TCP connections accepted (a connection that sends nothing is not in ``seen``)
        self._contexts: dict = {}
        self._contexts_lock = threading.Lock()
        self.upstream_context = None
        if upstream_ca is not None:
            self.upstream_context = ssl.create_default_context()
            upstream_ca.configure_trust(self.upstream_context)
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy.accepted += 1
                self.request.settimeout(IO_TIMEOUT)
                try:
                    proxy.handle(self.request)
                except Exception:  # noqa: BLE001 - kept for the failing test's message, never swallowed unseen
                    proxy.errors.append(traceback.format_exc(limit=4))

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            request_queue_size = 64

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def url(self, user: str = "", password: str = "") -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def connects(self) -> list:
        return [line for line, _ in self.seen if line.startswith("CONNECT ")]

    # -- one client connection
    def _upstream(self, target: str):
        if target in self.routes:
            return self.routes[target]
        host, _, port = target.rpartition(":")
        if self.allow_loopback and host.strip("[]") in ("127.0.0.1", "::1"):
            return host.strip("[]"), int(port)
        return None

    def _server_context(self, host: str):
        with self._contexts_lock:
            if host not in self._contexts:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                self.inspect_ca.issue_cert(host).configure_cert(context)
                self._contexts[host] = context
            return self._contexts[host]

    def handle(self, client) -> None:
        head = read_head(client)
        if not head:
            return
        line, headers = parse_head(head)
        self.seen.append((line, headers))
        if self.credentials is not None:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            if headers.get("proxy-authorization") != f"Basic {token}":
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                               b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
                return
        method, target, _ = line.split(" ", 2)
        if method == "CONNECT":
            self._connect(client, target)
        else:
            self._forward(client, method, target, head)

    def _connect(self, client, target: str) -> None:
        host = target.rpartition(":")[0].strip("[]")
        upstream = self._upstream(target)
        if upstream is None and target not in self.answers:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if target in self.answers:
            client = self._server_context(host).wrap_socket(client, server_side=True)
            self._answer(client, self.answers[target])
            close_gently(client)
            return
        if self.inspect_ca is not None and self.upstream_context is not None:
            client = self._server_context(host).wrap_socket(client, server_side=True)
            with socket.create_connection(upstream, timeout=IO_TIMEOUT) as raw:
                server = self.upstream_context.wrap_socket(raw, server_hostname=host)
                head = read_head(client)
                self.inner.append(parse_head(head))
                server.sendall(head)
                pipe(client, server)
                server.close()
            close_gently(client)
            return
        with socket.create_connection(upstream, timeout=IO_TIMEOUT) as server:
            pipe(client, server)
        close_gently(client)

    def _answer(self, client, answer: tuple) -> None:
        status, body = answer
        head = read_head(client)
        line, headers = parse_head(head)
        self.inner.append((line, headers))
        length = int(headers.get("content-length") or 0) - len(head.split(b"\r\n\r\n", 1)[1])
        while length > 0:
            chunk = client.recv(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)
        client.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                       "Connection: close\r\n\r\n".encode() + body)

    def _forward(self, client, method: str, target: str, head: bytes) -> None:
        parts = urlsplit(target)
        netloc = parts.netloc if parts.port else f"{parts.netloc}:80"
        upstream = self._upstream(netloc)
        if upstream is None:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        rest = head.split(b"\r\n", 1)[1]
        rest = b"\r\n".join(x for x in rest.split(b"\r\n") if not x.lower().startswith(b"proxy-authorization:"))
        with socket.create_connection(upstream, timeout=IO_TIMEOUT) as server:
            server.sendall(f"{method} {path} HTTP/1.1\r\n".encode() + rest)
            pipe(client, server)
        close_gently(client)
