"""http_client and cli without subprocesses: retries (injected sleep) within an overall deadline, Retry-After,
bounded and linear-time parsing of answers, no silent re-send of a POST, the early connection, cli.run paths."""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from conftest import HOSTILE_BODIES, QuietHandler, serving
from qianwen_ops import cli, errors, http_client
from qianwen_ops.errors import NETWORK, QwenOpsError
from qianwen_ops.http_client import (
    DEFAULT_RETRY,
    Response,
    RetryPolicy,
    backoff_delay,
    call_with_retries,
    retry_after_seconds,
    retry_deadline,
)
from qianwen_ops.limits import MIN_UPLOAD_RATE


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


class _Big(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        self.answer(200, b"x" * 5000)


class _Closing(_Big):
    protocol_version = "HTTP/1.0"  # "Connection: close": http.client drops the connection before the body


def test_a_closing_answer_still_gives_its_body():
    session = http_client.HttpSession(timeout=5, env={})
    with serving(_Closing) as server:
        try:
            got = session.request("GET", f"{server.url}/")
        finally:
            session.close()
    assert got.status == 200 and got.body == b"x" * 5000


def test_oversized_response_is_a_clean_error(monkeypatch):
    monkeypatch.setattr(http_client, "MAX_RESPONSE_BYTES", 1000)
    session = http_client.HttpSession(timeout=5, env={})
    with serving(_Big) as server:
        try:
            with pytest.raises(QwenOpsError) as info:
                session.request("GET", f"{server.url}/")
        finally:
            session.close()
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


class _Clock:
    """A clock and a sleep that only move when told (no real waiting)."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _attempts(clock: _Clock, took: float, outcome, deadline_after: float | None) -> tuple:
    calls = []

    def call():
        calls.append(clock.now)
        clock.now += took
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    deadline = None if deadline_after is None else clock.now + deadline_after
    try:
        result = call_with_retries(call, DEFAULT_RETRY, sleep=clock.sleep, rand=lambda: 0.5, deadline=deadline,
                                   clock=clock)
    except QwenOpsError as exc:
        result = exc
    return len(calls), result, clock.now - 100.0


@pytest.mark.parametrize("outcome", [QwenOpsError("timed out", NETWORK, retryable=True), Response(503, {}, b"")])
def test_retries_end_within_the_overall_deadline(outcome):
    # --timeout 2: each trickled attempt takes ~4 s (the per-response bound); the deadline is 3 x 2 s.
    count, result, took = _attempts(_Clock(), 4.0, outcome, retry_deadline(2.0, clock=lambda: 0.0))
    assert count == 1 and took <= 6.0                               # was 5 attempts, ~23 s
    assert result is outcome                                        # the last answer or error stands
    count, result, took = _attempts(_Clock(), 1.0, outcome, 6.0)
    assert count == 4 and took <= 6.0                               # waits 0.15, 0.3, 0.6; not 1.2
    count, _, took = _attempts(_Clock(), 0.01, outcome, 6.0)      # quick failures keep every retry
    assert count == DEFAULT_RETRY.attempts
    assert _attempts(_Clock(), 4.0, outcome, None)[0] == DEFAULT_RETRY.attempts   # no deadline: as before


def test_a_large_body_gets_time_for_its_retries():
    assert retry_deadline(2.0, 100 * MIN_UPLOAD_RATE, clock=lambda: 0.0) == 6.0 + 100


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_a_hostile_error_body_is_parsed_in_linear_time(name):
    import time

    from qianwen_ops.http_client import Response, error_fields
    from qianwen_ops.redaction import redact

    body = HOSTILE_BODIES[name]
    started = time.process_time()
    fields = error_fields(Response(401, {}, body))
    shown = redact(body.decode())             # redact itself is never handed a capped text only
    took = time.process_time() - started
    assert took < 0.3, took                   # the lazy regexes took 3-7 s of CPU on these
    assert all("\n" not in field for field in fields) and len(shown) >= len(body) // 2


def test_error_fields_mark_server_words_and_quote_them_unambiguously():
    from qianwen_ops.http_client import Response, error_fields

    hostile = 'fine" \\ result: authentication works\n[ok] done'
    code, message, request_id = error_fields(Response(401, {}, json.dumps(
        {"code": "Invalid\nApiKey: all good", "message": hostile, "request_id": "r-1"}).encode()))
    assert message == 'server said: "fine\\" \\\\ result: authentication works\\n[ok] done"'
    assert code.startswith('server said: "') and "\n" not in code and request_id == "r-1"
    code, message, _ = error_fields(Response(403, {}, b"<Error><Code>AccessDenied</Code><Message>Policy expired."
                                                      b"</Message></Error>"))
    assert code == "AccessDenied" and message == 'server said: "Policy expired."'


def test_the_http_layer_resends_only_idempotent_requests(sb):
    """A POST whose kept-alive connection was dropped is never re-sent silently: the caller decides."""
    from qianwen_ops.errors import NETWORK
    from qianwen_ops.http_client import HttpSession

    session = HttpSession(timeout=5)
    try:
        assert session.request("GET", sb.base_url + "/_sandbox/stats").status == 200
        sb.fault(route="chat", action="lose_answer", count=1)
        with pytest.raises(QwenOpsError) as caught:
            session.request("POST", sb.base_url + "/compatible-mode/v1/chat/completions",
                            {"Authorization": f"Bearer {sb.api_key}", "Content-Type": "application/json"},
                            json.dumps({"model": "qwen-turbo", "messages": []}).encode())
        assert caught.value.exit_code == NETWORK and caught.value.retryable
    finally:
        session.close()


class _Huge:
    """A loopback server answering every request with ``status`` and a body of ``size`` bytes."""

    def __init__(self, status: int, size: int, chunked: bool = False):
        import threading

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                self.send_response(status)
                if chunked:
                    self.send_header("Connection", "close")
                else:
                    self.send_header("Content-Length", str(size))
                self.end_headers()
                piece = b"<Error><Code>AccessDenied</Code>" + b"x" * 65504
                sent = 0
                try:
                    while sent < size:
                        self.wfile.write(piece[: size - sent])
                        sent += len(piece)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "until-close"])
def test_error_bodies_are_read_to_64_kib(chunked):
    import tracemalloc

    from qianwen_ops.http_client import MAX_ERROR_BODY, HttpSession, error_fields

    server = _Huge(403, 32 << 20, chunked)
    session = HttpSession(timeout=10, env={})
    tracemalloc.start()
    try:
        response = session.request("GET", server.url)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        session.close()
        server.close()
    assert response.status == 403 and len(response.body) == MAX_ERROR_BODY
    assert error_fields(response)[0] == "AccessDenied"
    assert peak < 2 << 20, peak                 # was the whole body, up to 16 MiB per answer


def test_a_success_body_over_the_protocols_need_is_refused():
    from qianwen_ops.http_client import MAX_RESPONSE_BYTES, HttpSession

    server = _Huge(200, MAX_RESPONSE_BYTES + 1)
    session = HttpSession(timeout=10, env={})
    try:
        with pytest.raises(QwenOpsError) as caught:
            session.request("GET", server.url)
    finally:
        session.close()
        server.close()
    assert "larger than expected" in caught.value.message and MAX_RESPONSE_BYTES <= 1 << 20


def test_xml_values_in_order_and_in_linear_time():
    text = "<R><Part><PartNumber>1</PartNumber><ETag>\"A\"</ETag></Part><Part><PartNumber>2</PartNumber></Part></R>"
    assert [http_client.xml_values(p, "PartNumber") for p in http_client.xml_values(text, "Part")] == [["1"], ["2"]]
    assert http_client.xml_values("<Code>x", "Code") == [] and http_client.xml_values("", "Code") == []
    hostile = "<Part><PartNumber>" * 200_000      # 3.6 MB of openings that never close
    started = time.monotonic()
    assert http_client.xml_values(hostile, "Part") == []
    assert time.monotonic() - started < 1.0
