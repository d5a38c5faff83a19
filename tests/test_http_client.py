"""http_client and cli without subprocesses: retries (injected sleep), Retry-After, size cap, cli.run paths."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qianwen_ops import cli, errors, http_client
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.http_client import Response, RetryPolicy, backoff_delay, call_with_retries, retry_after_seconds


def answers(*items):
    """A ``call`` that returns (or raises) each item in turn, counting calls."""
    queue = list(items)
    calls = []

    def call():
        calls.append(1)
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    call.calls = calls
    return call


def response(status: int, retry_after: str | None = None) -> Response:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return Response(status, headers, b"")


def test_retries_5xx_then_succeeds_with_equal_jitter_waits():
    waits = []
    call = answers(response(503), response(502), response(200))
    got = call_with_retries(call, RetryPolicy(attempts=5, base_delay=0.2, max_delay=3.0), sleep=waits.append,
                            rand=lambda: 0.0)
    assert got.status == 200 and len(call.calls) == 3
    assert waits == [0.1, 0.2]  # cap/2 with rand 0: equal jitter never waits less than half the cap


def test_gives_up_after_the_last_attempt_and_returns_the_answer():
    waits = []
    got = call_with_retries(answers(*[response(500)] * 3), RetryPolicy(attempts=3), sleep=waits.append,
                            rand=lambda: 1.0)
    assert got.status == 500 and len(waits) == 2


def test_non_retryable_errors_are_raised_at_once():
    waits = []
    call = answers(QwenOpsError("the TLS certificate of h is not trusted", errors.NETWORK))
    with pytest.raises(QwenOpsError):
        call_with_retries(call, sleep=waits.append)
    assert waits == [] and len(call.calls) == 1


def test_retryable_errors_are_retried():
    waits = []
    call = answers(QwenOpsError("dropped", errors.NETWORK, retryable=True), response(200))
    assert call_with_retries(call, sleep=waits.append, rand=lambda: 0.5).status == 200 and len(waits) == 1


@pytest.mark.parametrize("value,expected", [
    ("2", 2.0), (" 1 ", 1.0), ("0", 0.0), ("²", None), ("-1", None), ("1.5", None), ("soon", None), ("", None),
    ("9" * 400, 999999999.0), ("\u0663", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ("Sun, 06 Nov 1994 08:49:37", None), ("Mon, 99 Foo 2015 99:99:99 GMT", None),
])
def test_retry_after_values(value, expected):
    assert retry_after_seconds(value, now=lambda: 2.0e9) == expected


@pytest.mark.parametrize("value", ["2", "²", "1e309", "999999999999", "Wed, 21 Oct 2099 07:28:00 GMT", "\x00"])
def test_retry_after_never_breaks_and_never_waits_past_the_cap(value):
    waits = []
    policy = RetryPolicy(attempts=2, base_delay=0.2, max_delay=3.0)
    call_with_retries(answers(response(429, value), response(200)), policy, sleep=waits.append, rand=lambda: 0.0)
    assert len(waits) == 1 and 0.1 <= waits[0] <= 3.0


def test_backoff_caps():
    policy = RetryPolicy(attempts=10, base_delay=0.2, max_delay=3.0)
    assert backoff_delay(policy, 9, rand=lambda: 1.0) == 3.0 and backoff_delay(policy, 0, rand=lambda: 0.0) == 0.1


class _Big(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        body = b"x" * 5000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Closing(_Big):
    protocol_version = "HTTP/1.0"  # "Connection: close": http.client drops the connection before the body


def test_a_closing_answer_still_gives_its_body():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Closing)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    session = http_client.HttpSession(timeout=5, env={})
    try:
        got = session.request("GET", f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        session.close()
        server.shutdown()
        server.server_close()
    assert got.status == 200 and got.body == b"x" * 5000


def test_oversized_response_is_a_clean_error(monkeypatch):
    monkeypatch.setattr(http_client, "MAX_RESPONSE_BYTES", 1000)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Big)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    session = http_client.HttpSession(timeout=5, env={})
    try:
        with pytest.raises(QwenOpsError) as info:
            session.request("GET", f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        session.close()
        server.shutdown()
        server.server_close()
    assert info.value.exit_code == errors.NETWORK and "larger than expected" in info.value.message


@pytest.mark.parametrize("raised,code,stderr", [
    (QwenOpsError("bad Bearer sk-abcdef123456 thing", errors.CONFIG), 9, "error: bad Bearer <redacted> thing\n"),
    (KeyboardInterrupt(), 130, "error: interrupted\n"),
    (BrokenPipeError(), 0, ""),
    (ValueError("sk-abcdef123456 in a bug"), 1, "error: internal error (ValueError); please report it\n"),
])
def test_cli_run_paths(capsys, monkeypatch, raised, code, stderr):
    def main():
        raise raised

    hard_exits = []

    def hard_exit(status):  # os._exit would end the test process itself
        hard_exits.append(status)
        raise SystemExit(status)

    monkeypatch.setattr(cli.os, "_exit", hard_exit)
    with pytest.raises(SystemExit) as info:
        cli.run(main)
    assert info.value.code == code
    assert capsys.readouterr().err == stderr
    # Ctrl-C leaves at once (threads still on the network are not waited for); the rest exit normally
    assert hard_exits == ([130] if isinstance(raised, KeyboardInterrupt) else [])


def test_cli_run_returns_main_code(capsys):
    with pytest.raises(SystemExit) as info:
        cli.run(lambda: 7)
    assert info.value.code == 7 and capsys.readouterr().err == ""


# -- the first hop opened early (probe.py: the TCP round trip overlaps loading the HTTP stack)

class _CountingServer:
    """Accepts connections on loopback, counts them, answers each request with 200 and closes."""

    def __init__(self):
        import socket

        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.heads: list = []
        self.handled = threading.Semaphore(0)  # released once per connection handled
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.heads.append(data.split(b"\r\n", 1)[0])
                if data:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            self.handled.release()

    def close(self):
        self.listener.close()


def test_the_early_connection_is_the_one_the_request_uses():
    from qianwen_ops.first_hop import open_first_hop

    server = _CountingServer()
    url = f"http://127.0.0.1:{server.port}/x"
    try:
        early = open_first_hop(url, 5, env={})
        session = http_client.HttpSession(timeout=5, env={}, first_hop=early)
        assert session.request("GET", url).status == 200
        assert session.request("GET", url).status == 200   # the next connection is a new one, opened as usual
        session.close()
    finally:
        server.close()
    assert server.accepted == 2 and server.heads == [b"GET /x HTTP/1.1"] * 2


def test_an_early_connection_goes_to_the_proxy_the_environment_names():
    from qianwen_ops.first_hop import first_hop_address

    env = {"HTTPS_PROXY": "http://127.0.0.1:3128", "HTTP_PROXY": "http://127.0.0.1:3129"}
    assert first_hop_address("https://example.test/x", env) == ("127.0.0.1", 3128)
    assert first_hop_address("https://example.test/x", dict(env, NO_PROXY="example.test")) == ("example.test", 443)
    assert first_hop_address("https://[::1]/v1", {}) == ("::1", 443)
    # credentials never go over plain http through a proxy: that request is refused, so nothing opens
    assert first_hop_address("http://example.test/x", env) is None
    assert first_hop_address("http://example.test/x", dict(env, NO_PROXY="*")) == ("example.test", 80)


def test_an_early_connection_that_fails_says_what_the_usual_one_says():
    import socket

    from qianwen_ops.first_hop import open_first_hop

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound, never listening: refused
        port = held.getsockname()[1]
        for env, where in (({}, "127.0.0.1"), ({"HTTP_PROXY": f"http://127.0.0.1:{port}"}, f"127.0.0.1:{port}")):
            url = f"http://127.0.0.1:{port}/x" if not env else "http://example.test/x"
            messages = []
            for early in (open_first_hop(url, 5, env=env), None):
                session = http_client.HttpSession(timeout=5, env=env, first_hop=early)
                with pytest.raises(QwenOpsError) as info:
                    session.request("GET", url)
                session.close()
                messages.append((info.value.exit_code, info.value.message))
            assert messages[0] == messages[1] and "refused" in messages[0][1] and where in messages[0][1]


def test_an_unused_early_connection_is_closed_without_a_byte():
    from qianwen_ops.first_hop import first_hop_address, open_first_hop

    server = _CountingServer()
    try:
        early = open_first_hop(f"http://127.0.0.1:{server.port}/x", 5, env={})
        http_client.HttpSession(timeout=5, env={}, first_hop=early).close()  # up or not yet: closed either way
        assert server.handled.acquire(timeout=5)  # the server saw the connection end
    finally:
        server.close()
    assert server.accepted == 1 and server.heads == [b""]
    for url, env in (("ftp://example.test/x", {}), ("http://bad host/x", {}),
                     ("http://example.test/x", {"HTTP_PROXY": "socks5://127.0.0.1:1"})):
        assert first_hop_address(url, env) is None  # the request itself will report the problem


def test_an_early_connection_interrupted_while_waiting_is_closed():
    from qianwen_ops.first_hop import FirstHop

    server = _CountingServer()
    try:
        early = FirstHop(("127.0.0.1", server.port), 5)
        real_join = early._thread.join

        def interrupted_join(*args):  # Ctrl-C while take() waits for the connection to come up
            real_join()
            raise KeyboardInterrupt

        early._thread.join = interrupted_join
        with pytest.raises(KeyboardInterrupt):
            early.take(("127.0.0.1", server.port))
        early.close()
        assert server.handled.acquire(timeout=5)  # the server saw the connection end, without a byte
    finally:
        server.close()
    assert server.accepted == 1 and server.heads == [b""]
