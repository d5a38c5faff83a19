"""Two loopback HTTP servers (DashScope API and OSS) sharing one sandbox state."""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from . import dashscope_api, oss_api
from .form_parser import CHUNK, BadBody, BodyReader
from .state import ROUTES, Fault, SandboxConfig, SandboxState

MAX_JSON_BODY = 64 * 1024 * 1024  # chat bodies may carry several inline data: items of up to 10 MiB
DRAIN_LIMIT = 64 * 1024 * 1024
_QUERY = re.compile(r"\?\S*")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qianwen-sandbox"
    sys_version = ""
    timeout = 60
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall
    state: SandboxState
    quiet = False

    # -- emulated distance (--latency-ms): one round trip to open a connection, one per request
    def setup(self) -> None:
        super().setup()
        self._round_trip()

    def _round_trip(self) -> None:
        if self.state.config.latency_ms:
            time.sleep(self.state.config.latency_ms / 1000)

    # -- request helpers
    def setup_request(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        self.route_path = raw_path
        self.query = self.parse_query(raw_query)
        self.query_dict = dict(self.query)
        self.request_id = str(uuid.uuid4())
        self._body = None
        self.lose_answer = False

    @staticmethod
    def parse_query(raw: str) -> list:
        pairs = []
        for item in raw.split("&"):
            if item:
                name, _, value = item.partition("=")
                pairs.append((unquote(name), unquote(value)))
        return pairs

    def body(self) -> BodyReader:
        if self._body is None:
            self._body = BodyReader(self.rfile, self.headers.get("Content-Length"),
                                    self.headers.get("Transfer-Encoding"))
        return self._body

    def read_small_body(self) -> bytes:
        body, parts, size = self.body(), [], 0
        while True:
            chunk = body.read()
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > MAX_JSON_BODY:
                raise BadBody("request body too large")
            parts.append(chunk)

    def finish_body(self) -> None:
        """Drain what the client still sends, or close the connection after replying."""
        try:
            if not self.body().drain(DRAIN_LIMIT):
                self.close_connection = True
        except (BadBody, OSError, ValueError):
            self.close_connection = True

    # -- responses
    def send_bytes(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        if self.lose_answer:  # fault "lose_answer": the request took effect, the client never hears back
            self._reset()
            return
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-oss-request-id", self.request_id)
        self.send_header("x-request-id", self.request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj: dict) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json")

    def send_ds_error(self, status: int, code: str, message: str, compatible: bool = False,
                      retry_after: int | None = None) -> None:
        self.finish_body()
        body = {"code": code, "message": message, "request_id": self.request_id}
        if compatible:
            body["error"] = {"code": code, "message": message, "type": "invalid_request_error"}
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        self.send_bytes(status, json.dumps(body).encode(), "application/json", headers)

    def send_xml(self, status: int, xml: str, headers: dict | None = None) -> None:
        self.send_bytes(status, ('<?xml version="1.0" encoding="UTF-8"?>\n' + xml).encode("utf-8"),
                        "application/xml", headers)

    def send_xml_error(self, status: int, code: str, message: str) -> None:
        xml = (f"<Error><Code>{code}</Code><Message>{oss_api._esc(message)}</Message>"
               f"<RequestId>{self.request_id}</RequestId><HostId>{self.headers.get('Host', '')}</HostId></Error>")
        self.send_xml(status, xml)

    def send_file(self, path: Path, size: int, content_type: str, headers: dict, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        self.send_header("x-oss-request-id", self.request_id)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if head:
            return
        with open(path, "rb") as src:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                self.wfile.write(chunk)

    # -- faults
    def apply_fault(self, route: str, xml: bool = False) -> bool:
        """Apply the next queued fault for ``route``; True when it answered the request."""
        fault = self.state.take_fault(route)
        if fault is None:
            return False
        if fault.delay_s:
            time.sleep(fault.delay_s)
        if fault.action == "lose_answer":
            self.lose_answer = True
            return False
        if fault.action == "reset":
            try:
                self.body().read(32 * 1024)
            except (BadBody, OSError):
                pass
            self._reset()
            return True
        if fault.status:
            self.finish_body()
            code = {429: "Throttling.RateQuota", 403: "AccessDenied"}.get(fault.status, "InternalError")
            if xml:
                self.send_xml_error(fault.status, code, "Injected fault.")
            else:
                self.send_ds_error(fault.status, code, "Injected fault.")
            return True
        return False

    def _reset(self) -> None:
        """Drop the connection with a TCP reset."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    # -- logging without query strings or headers
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server API
        if not self.quiet:
            line = _QUERY.sub("?…", format % args)
            sys.stderr.write(f"sandbox: {line}\n")

    def log_request(self, code="-", size="-") -> None:
        self.log_message("%s %s %s", getattr(self, "command", "-"), getattr(self, "route_path", "-"), code)

    # -- dispatch
    def _dispatch(self) -> None:
        self._round_trip()
        self.setup_request()
        try:
            self.route()
        except BadBody as err:
            self.close_connection = True
            try:
                self.send_ds_error(400, "InvalidParameter", str(err))
            except OSError:
                pass
        except (ConnectionError, socket.timeout):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


class DashScopeHandler(Handler):
    def route(self) -> None:
        path, method = self.route_path.rstrip("/"), self.command
        if path == "/_sandbox/stats" and method == "GET":
            self.send_json(200, self.state.stats())
        elif path == "/_sandbox/faults" and method == "POST":
            self._faults()
        elif path == "/_sandbox/clock" and method == "POST":
            self._clock()
        elif path == "/_sandbox/purge" and method == "POST":
            self.finish_body()
            self.send_json(200, {"deleted": self.state.store.purge()})
        elif path == "/compatible-mode/v1/chat/completions" and method == "POST":
            dashscope_api.chat(self, self.state, native=False)
        elif path in ("/api/v1/services/aigc/multimodal-generation/generation",
                      "/api/v1/services/aigc/text-generation/generation") and method == "POST":
            dashscope_api.chat(self, self.state, native=True)
        elif path == "/api/v1/uploads" and method == "GET":
            dashscope_api.get_policy(self, self.state)
        else:
            self.send_ds_error(404, "NotFound", "No such API in the sandbox.")

    def _clock(self) -> None:
        """Move the sandbox clock forward (expiry tests without waiting)."""
        try:
            advance = float(json.loads(self.read_small_body() or b"{}").get("advance_s", 0))
            if not 0 <= advance <= 30 * 86400:
                raise ValueError(advance)
        except (ValueError, TypeError, AttributeError):
            self.send_ds_error(400, "InvalidParameter", "clock needs advance_s between 0 and 2592000")
            return
        with self.state.lock:
            self.state.clock_offset += advance
        self.send_json(200, {"clock_offset": self.state.clock_offset})

    def _faults(self) -> None:
        try:
            spec = json.loads(self.read_small_body() or b"{}")
            if spec.get("clear"):
                self.state.clear_faults()
                self.send_json(200, {"cleared": True})
                return
            route = spec["route"]
            if route not in ROUTES:
                raise ValueError(route)
            fault = Fault(status=int(spec.get("status", 0)), action=str(spec.get("action", "")),
                          delay_s=float(spec.get("delay_s", 0)), remaining=int(spec.get("count", 1)))
            if not (fault.status or fault.action in ("reset", "lose_answer") or fault.delay_s) \
                    or fault.remaining < 1:
                raise ValueError("empty fault")
            if fault.delay_s > 120:
                raise ValueError("delay too long")
        except (ValueError, KeyError, TypeError, AttributeError):
            self.send_ds_error(400, "InvalidParameter",
                               "fault needs route (chat|getPolicy|postObject|oss) and status, action or delay_s")
            return
        self.state.add_fault(route, fault)
        self.send_json(200, {"queued": route, "count": fault.remaining})


class OssHandler(Handler):
    def route(self) -> None:
        oss_api.handle(self, self.state)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128   # the listen backlog: socketserver's default 5 makes high concurrency look slow

    def handle_error(self, request, client_address) -> None:
        pass  # a client that went away is not news; never print tracebacks


@dataclass
class Sandbox:
    state: SandboxState
    servers: list
    threads: list
    own_data_dir: Path | None

    @property
    def info(self) -> dict:
        return self.state.info()

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)
        self.state.store.close()
        if self.own_data_dir is not None:
            shutil.rmtree(self.own_data_dir, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve_tls(config: SandboxConfig, servers) -> None:
    """HTTPS on both ports; the handshake runs in each connection's thread, not in accept()."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    for server in servers:
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)


def start(config: SandboxConfig | None = None, quiet: bool = False) -> Sandbox:
    """Start both servers in background threads; returns when they accept connections."""
    config = config or SandboxConfig()
    own = None
    data_dir = config.data_dir
    if data_dir is None:
        own = data_dir = Path(tempfile.mkdtemp(prefix="qianwen-sandbox-"))
    state = SandboxState.create(config, Path(data_dir))
    handlers = []
    for base in (DashScopeHandler, OssHandler):
        handlers.append(type(base.__name__, (base,), {"state": state, "quiet": quiet}))
    server_class = _Server
    if ":" in config.host:  # ::1
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    api = server_class((config.host, config.port), handlers[0])
    oss = server_class((config.host, config.oss_port), handlers[1])
    scheme = "http"
    if config.tls_cert is not None:
        _serve_tls(config, (api, oss))
        scheme = "https"
    host = config.host if ":" not in config.host else f"[{config.host}]"
    state.base_url = f"{scheme}://{host}:{api.server_address[1]}"
    state.oss_endpoint = f"{scheme}://{host}:{oss.server_address[1]}"
    threads = []
    for server in (api, oss):
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        threads.append(thread)
    return Sandbox(state, [api, oss], threads, own)
