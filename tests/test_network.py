"""Proxies, TLS trust and time bounds on real parts, offline.

A TLS sandbox (certificate from a test CA made with trustme) and a small forward proxy
(tests/forward_proxy.py: CONNECT tunnels, absolute-form http, Basic auth, TLS inspection
with a second CA, as a company proxy does). The proxy never resolves a name: the documented
DashScope hosts are routed to loopback, so these tests send nothing off the machine.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import HTTPServer
from pathlib import Path

import pytest
from forward_proxy import ForwardProxy

from conftest import (
    CANARY_KEY,
    OSS_HOST,
    PROXY_AND_CA,
    REGION_HOSTS,
    UNAUTHORIZED,
    QuietHandler,
    api_address,
    assert_clean_error,
    leaks,
    run_script,
)
from qianwen_ops import network
from qianwen_ops.errors import CONFIG, NETWORK, QwenOpsError
from qianwen_ops.http_client import HttpSession
from qianwen_ops.redaction import redact

PROXY_PASSWORD = "Px7-Qm3v-Hd9k"


def outside_tunnel_is_clean(proxy: ForwardProxy, key: str) -> None:
    """What the proxy saw outside any tunnel never carries the key or an Authorization header."""
    for line, headers in proxy.seen:
        assert not leaks(line + json.dumps(headers), (key[10:],)), line
        assert "authorization" not in headers


# -- the https path end to end

def test_probe_through_a_connect_tunnel_to_the_default_host(proxies, net_env, pki, tls_box, project):
    proxy = proxies(routes={"dashscope.aliyuncs.com:443": api_address(tls_box)})
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=pki["server-ca"])
    result = run_script("probe.py", env=run_env, cwd=project)
    assert (result.code, result.out.strip(), result.err) == (0, "200", "")
    assert proxy.connects() == ["CONNECT dashscope.aliyuncs.com:443 HTTP/1.1"]
    assert proxy.accepted == 1  # the connection opened early (before http.client loads) is the one used
    outside_tunnel_is_clean(proxy, tls_box.api_key)


def test_inspecting_proxy_with_credentials(proxies, net_env, pki, tls_box, project):
    proxy = proxies(routes={"dashscope.aliyuncs.com:443": api_address(tls_box)}, credentials=("alice", PROXY_PASSWORD),
                    inspect_ca=pki["company_ca"], upstream_ca=pki["server_ca"])
    run_env = dict(net_env, https_proxy=proxy.url("alice", PROXY_PASSWORD), SSL_CERT_FILE=pki["company-ca"])
    result = run_script("probe.py", "--json", env=run_env, cwd=project)
    assert result.code == 0 and json.loads(result.out)["status"] == 200, (result.out, result.err, proxy.errors)
    doctor = run_script("doctor.py", env=run_env, cwd=project)
    assert doctor.code == 0, (doctor.out, proxy.errors)
    assert f"network: through proxy 127.0.0.1:{proxy.port} (from https_proxy); CA certificates from SSL_CERT_FILE" \
        in doctor.out
    assert all(h.get("proxy-authorization", "").startswith("Basic ") for _, h in proxy.seen)
    outside_tunnel_is_clean(proxy, tls_box.api_key)
    # the inspecting proxy does read the request inside the tunnel: that is the user's company's choice
    assert any(h.get("authorization") == f"Bearer {tls_box.api_key}" for _, h in proxy.inner)
    evidence = "".join(p.read_text() for p in (project / "output").rglob("*") if p.is_file())
    for text in (result.out, result.err, doctor.out, doctor.err, evidence):
        assert not leaks(text, (PROXY_PASSWORD, tls_box.api_key[10:]))


def test_wrong_proxy_password_is_a_config_error(proxies, net_env, pki, tls_box, project):
    proxy = proxies(routes={"dashscope.aliyuncs.com:443": api_address(tls_box)}, credentials=("alice", "right-one"))
    run_env = dict(net_env, HTTPS_PROXY=proxy.url("alice", PROXY_PASSWORD), SSL_CERT_FILE=pki["server-ca"])
    result = run_script("probe.py", env=run_env, cwd=project)
    assert (result.code, result.out.strip()) == (9, "000")
    assert_clean_error(result)
    assert len(result.err.splitlines()) == 1 and "407" in result.err and "HTTPS_PROXY" in result.err
    assert not leaks(result.err + result.out, (PROXY_PASSWORD,))
    assert len(proxy.connects()) == 1


def test_wrong_ca_is_one_line_exit_8_and_one_attempt(proxies, net_env, pki, tls_box, project):
    proxy = proxies(routes={"dashscope.aliyuncs.com:443": api_address(tls_box)},
                    inspect_ca=pki["company_ca"], upstream_ca=pki["server_ca"])
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=pki["other-ca"])
    started = time.monotonic()
    result = run_script("probe.py", env=run_env, cwd=project)
    elapsed = time.monotonic() - started
    assert (result.code, result.out.strip()) == (8, "000")
    assert_clean_error(result)
    assert len(result.err.splitlines()) == 1
    assert "not trusted" in result.err and "SSL_CERT_FILE" in result.err and "dashscope.aliyuncs.com" in result.err
    assert len(proxy.connects()) == 1 and proxy.inner == []
    assert elapsed < 3  # one attempt: no retry, no backoff (the bench measures the figure)


def test_system_store_failure_names_ssl_cert_file(tls_box):
    with pytest.raises(QwenOpsError) as info:
        stats({}, tls_box.base_url)
    assert info.value.exit_code == NETWORK and "set SSL_CERT_FILE" in info.value.message


def stats(env: dict, url: str) -> int:
    session = HttpSession(timeout=5, env=env)
    try:
        return session.request("GET", url + "/_sandbox/stats").status
    finally:
        session.close()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_DIR"])
def test_every_ca_variable_is_honoured(pki, tls_box, variable):
    value = pki["server-ca"]
    if variable == "SSL_CERT_DIR":
        import subprocess

        folder = pki["dir"] / "hashed"
        folder.mkdir(exist_ok=True)
        name = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", value], capture_output=True,
                              text=True, check=True).stdout.strip()
        (folder / f"{name}.0").write_bytes(Path(value).read_bytes())
        value = str(folder)
    assert stats({variable: value}, tls_box.base_url) == 200


def test_ssl_cert_file_wins_over_requests_ca_bundle(pki, tls_box):
    with pytest.raises(QwenOpsError) as info:
        stats({"SSL_CERT_FILE": pki["other-ca"], "REQUESTS_CA_BUNDLE": pki["server-ca"]}, tls_box.base_url)
    assert info.value.exit_code == NETWORK and "trust comes from SSL_CERT_FILE" in info.value.message
    assert not info.value.retryable


BAD_SETTINGS = [
    ({"HTTPS_PROXY": "http://u:" + PROXY_PASSWORD + "@host:99999"}, "HTTPS_PROXY"),
    ({"SSL_CERT_FILE": "/nonexistent/ca.pem"}, "SSL_CERT_FILE"),
    ({"REQUESTS_CA_BUNDLE": "/etc/hostname"}, "REQUESTS_CA_BUNDLE"),
    ({"HTTPS_PROXY": "socks5://127.0.0.1:1080"}, "SOCKS"),
    ({"HTTPS_PROXY": "https://127.0.0.1:3128"}, "https:// proxies"),
    ({"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "exa mple,a/b/c"}, "NO_PROXY"),
]


@pytest.mark.parametrize("setting,word", BAD_SETTINGS)
def test_bad_network_settings_are_config_errors(tls_box, setting, word):
    with pytest.raises(QwenOpsError) as info:
        stats(setting, tls_box.base_url)
    message = info.value.message
    assert info.value.exit_code == CONFIG and word in message and "\n" not in message
    assert not leaks(message, (PROXY_PASSWORD,))


def test_bad_network_setting_is_exit_9_one_line(net_env, tls_box, project):
    setting, word = BAD_SETTINGS[0]
    result = run_script("probe.py", env=dict(net_env, QWEN_BASE_URL=tls_box.base_url, **setting), cwd=project)
    assert (result.code, result.out.strip()) == (9, "000")
    assert_clean_error(result)
    assert len(result.err.splitlines()) == 1 and word in result.err
    assert not leaks(result.err, (PROXY_PASSWORD,))


def test_malformed_host_label_is_exit_9(env, project):
    for url in ("https://a..invalid", "https://" + "x" * 64 + ".example.com", "https://x-.example.com"):
        with pytest.raises(QwenOpsError) as info:
            HttpSession(env={}).request("GET", url)
        assert info.value.exit_code == CONFIG
    result = run_script("probe.py", env=dict(env, QWEN_BASE_URL="https://a..invalid",
                                             DASHSCOPE_API_KEY="sk-abcdef1234"), cwd=project)
    assert (result.code, result.out.strip()) == (9, "000")
    assert_clean_error(result)
    assert len(result.err.splitlines()) == 1


def test_no_proxy_sends_loopback_direct(proxies, net_env, pki, tls_box, project):
    proxy = proxies(allow_loopback=True)
    run_env = dict(net_env, QWEN_BASE_URL=tls_box.base_url, HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=pki["server-ca"])
    assert run_script("probe.py", env=run_env, cwd=project).out.strip() == "200"
    assert proxy.connects() == [f"CONNECT 127.0.0.1:{api_address(tls_box)[1]} HTTP/1.1"]
    proxy.seen.clear()
    for no_proxy in ("localhost,127.0.0.0/8", f"127.0.0.1:{api_address(tls_box)[1]}"):  # the rest: unit matrix
        result = run_script("probe.py", env=dict(run_env, no_proxy=no_proxy), cwd=project)
        assert result.out.strip() == "200", no_proxy
    assert proxy.seen == []
    result = run_script("probe.py", env=dict(run_env, NO_PROXY="127.0.0.1:1"), cwd=project)
    assert result.out.strip() == "200" and len(proxy.connects()) == 1  # another port: still proxied


def test_upload_through_the_proxy_to_the_tls_sandbox(proxies, net_env, pki, tls_box, project):
    oss_port = int(tls_box.info["oss_endpoint"].rsplit(":", 1)[1])
    proxy = proxies(routes={"dashscope.aliyuncs.com:443": api_address(tls_box),
                            f"{OSS_HOST}:443": ("127.0.0.1", oss_port)})
    (project / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 2000)
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=pki["server-ca"])
    result = run_script("upload_file.py", "photo.png", "--model", "qwen-vl-plus", "--no-cache", env=run_env,
                        cwd=project)
    assert result.code == 0, result.err
    assert result.out.strip().startswith("oss://")
    # getPolicy names an OSS host (a loopback upload host is refused for a non-loopback API endpoint)
    assert proxy.connects() == ["CONNECT dashscope.aliyuncs.com:443 HTTP/1.1", f"CONNECT {OSS_HOST}:443 HTTP/1.1"]
    outside_tunnel_is_clean(proxy, tls_box.api_key)


def test_update_check_follows_the_same_ca_order(proxies, net_env, pki, project):
    body = json.dumps({"version": "99.0.0", "info": "new"}).encode()
    proxy = proxies(answers={"updates.example.test:443": (200, body)}, inspect_ca=pki["company_ca"])
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), REQUESTS_CA_BUNDLE=pki["company-ca"],
                   QWEN_UPDATE_URL="https://updates.example.test/version.json")
    result = run_script("check_update.py", "--force", "--print-response", env=run_env, cwd=project)
    data = json.loads(result.out)
    assert data["latest"] == "99.0.0" and "error" not in data
    assert [c.rsplit(" ", 1)[0] for c in proxy.connects()] == ["CONNECT updates.example.test:443"]


# -- regions

def test_all_regions_goes_only_to_the_documented_hosts(proxies, net_env, pki, tls_box, project):
    proxy = proxies(routes={"dashscope-intl.aliyuncs.com:443": api_address(tls_box)},
                    answers={"dashscope.aliyuncs.com:443": (401, UNAUTHORIZED)}, inspect_ca=pki["server_ca"])
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=pki["server-ca"],
                   QWEN_BASE_URL="https://gateway.example.test")
    result = run_script("probe.py", "--all-regions", env=run_env, cwd=project)
    assert (result.code, result.out.splitlines()[:3]) == (0, ["cn 401", "intl 200", "us 000"])
    assert "use: base_url https://dashscope-intl.aliyuncs.com/compatible-mode/v1" in result.out  # for the app
    assert sorted(proxy.connects()) == sorted(f"CONNECT {h}:443 HTTP/1.1" for h in REGION_HOSTS)
    outside_tunnel_is_clean(proxy, tls_box.api_key)


def test_all_regions_without_a_usable_key_sends_nothing(proxies, net_env, project):
    proxy = proxies()
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), DASHSCOPE_API_KEY="sk-your-key-here")
    result = run_script("probe.py", "--all-regions", env=run_env, cwd=project)
    assert result.code == 3 and result.out.splitlines() == ["cn 000", "intl 000", "us 000"] and proxy.seen == []
    saved = [json.loads(p.read_text()) for p in (project / "output" / "qianwen-ops-auth").glob("probe-*.json")]
    assert [sorted(r["all_regions"]) for r in saved] == [["cn", "intl", "us"]]  # the evidence keeps each region


def test_ctrl_c_during_all_regions_returns_at_once(net_env, project):
    """A proxy that accepts and never answers: three CONNECTs wait; Ctrl-C must not wait with them."""
    from conftest import SCRIPTS, interrupt_when

    held = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def hold():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=hold, daemon=True).start()
    run_env = dict(net_env, HTTPS_PROXY=f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:  # interrupted once the three tunnel requests (one per region) are all waiting
        code, _, err, took = interrupt_when([SCRIPTS / "probe.py", "--all-regions", "--timeout", "20"],
                                            lambda: len(held) >= 3, run_env, project)
    finally:
        listener.close()
        for conn in held:
            conn.close()
    assert code == 130 and took < 2.0, (took, err)
    assert "Traceback" not in err and "interrupted" in err


def test_doctor_after_a_401_names_the_region_that_works(proxies, net_env, pki, tls_box, project):
    proxy = proxies(routes={"dashscope-intl.aliyuncs.com:443": api_address(tls_box)},
                    answers={"dashscope.aliyuncs.com:443": (401, UNAUTHORIZED),
                             "dashscope-us.aliyuncs.com:443": (401, UNAUTHORIZED)}, inspect_ca=pki["server_ca"])
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=pki["server-ca"])
    result = run_script("doctor.py", env=run_env, cwd=project)
    assert result.code == 5, (result.out, proxy.errors)
    assert "your key works on intl: set QWEN_REGION=intl" in result.out
    fixed = run_script("doctor.py", env=dict(run_env, QWEN_REGION="intl"), cwd=project)
    assert fixed.code == 0 and "QWEN_REGION=intl" not in fixed.out, (fixed.out, proxy.errors)


# -- time bounds and IPv6

def test_a_trickling_server_cannot_hold_the_probe(env, project):
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def trickle():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.wait(0.05):
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    run_env = dict(env, QWEN_BASE_URL=f"http://127.0.0.1:{server.getsockname()[1]}", DASHSCOPE_API_KEY=CANARY_KEY)
    started = time.monotonic()
    try:
        result = run_script("probe.py", "--timeout", "0.5", env=run_env, cwd=project)
    finally:
        stop.set()
        server.close()
    elapsed = time.monotonic() - started
    assert result.code == 8 and "too slowly" in result.err and len(result.err.splitlines()) == 1
    assert elapsed < 3.0  # deadline 2 x 0.5 s, plus interpreter start


class _Answer200(QuietHandler):
    protocol_version = "HTTP/1.1"
    seen_hosts: list = []

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen_hosts.append(self.headers.get("Host"))
        body = b'{"id": "x"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_ipv6_literal_with_a_port(env, project):
    server_class = type("V6", (HTTPServer,), {"address_family": socket.AF_INET6})
    server = server_class(("::1", 0), _Answer200)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    port = server.server_address[1]
    try:
        result = run_script("probe.py", env=dict(env, QWEN_BASE_URL=f"http://[::1]:{port}",
                                                 DASHSCOPE_API_KEY="sk-abcdef1234"), cwd=project)
    finally:
        server.shutdown()
        server.server_close()
    assert result.out.strip() == "200" and _Answer200.seen_hosts[-1] == f"[::1]:{port}"


def test_ipv6_literal_without_a_port_through_the_proxy(proxies, net_env, pki, tls_box, project):
    proxy = proxies(routes={"[::1]:443": api_address(tls_box)})
    run_env = dict(net_env, QWEN_BASE_URL="https://[::1]", HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=pki["server-ca"])
    result = run_script("probe.py", env=run_env, cwd=project)
    assert result.out.strip() == "200", result.err
    assert proxy.connects() == ["CONNECT [::1]:443 HTTP/1.1"]


# -- plain http through a proxy (absolute-form), in process

def test_plain_http_goes_absolute_form_and_never_carries_credentials(proxies, sb):
    proxy = proxies(routes={"example.test:80": ("127.0.0.1", int(sb.base_url.rsplit(":", 1)[1]))})
    session = HttpSession(timeout=5, env={"HTTP_PROXY": proxy.url("bob", PROXY_PASSWORD)})
    try:
        assert session.request("GET", "http://example.test/_sandbox/stats").status == 200
        with pytest.raises(QwenOpsError) as info:
            session.request("POST", "http://example.test/x", {"Authorization": "Bearer sk-abcdef123456"}, b"")
    finally:
        session.close()
    assert info.value.exit_code == CONFIG and "NO_PROXY" in info.value.message
    assert [line for line, _ in proxy.seen] == ["GET http://example.test:80/_sandbox/stats HTTP/1.1"]
    assert proxy.seen[0][1]["proxy-authorization"].startswith("Basic ")


# -- the rules, without sockets

@pytest.mark.parametrize("env,scheme,expected", [
    ({"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:2"}, "https", "low"),
    ({"HTTPS_PROXY": "http://up:2", "ALL_PROXY": "http://all:3"}, "https", "up"),
    ({"all_proxy": "http://all:3"}, "https", "all"),
    ({"HTTPS_PROXY": "http://up:2"}, "http", None),
    ({"HTTP_PROXY": "http://plain:4"}, "http", "plain"),
    ({"HTTP_PROXY": "http://plain:4", "REQUEST_METHOD": "GET"}, "http", None),
    ({"https_proxy": "  ", "HTTPS_PROXY": "up:8080"}, "https", "up"),
])
def test_proxy_precedence(env, scheme, expected):
    proxy = network.proxy_for(scheme, "api.example.com", None, env)
    assert (proxy.host if proxy else None) == expected


@pytest.mark.parametrize("no_proxy,host,port,bypass", [
    ("example.com", "example.com", 443, True), ("example.com", "api.example.com", 443, True),
    (".example.com", "example.com", 443, True), ("*.example.com", "a.b.example.com", 443, True),
    ("example.com", "badexample.com", 443, False), ("*", "anything", 1, True),
    ("10.0.0.0/8", "10.2.3.4", 443, True), ("10.0.0.0/8", "11.2.3.4", 443, False),
    ("::1", "::1", 443, True), ("[::1]:8443", "::1", 8443, True), ("[::1]:8443", "::1", 443, False),
    ("fd00::/8", "fd12::1", 443, True), ("host:8080", "host", 8080, True), ("host:8080", "host", 443, False),
    ("127.0.0.1", "localhost", 443, False), ("EXAMPLE.COM.", "api.example.com", 443, True),
    ("a.com, b.com  c.com", "c.com", 443, True),
])
def test_no_proxy_matching(no_proxy, host, port, bypass):
    env = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": no_proxy}
    assert (network.proxy_for("https", host, port, env) is None) is bypass


@pytest.mark.parametrize("value", ["a/b/c", "10.0.0.0/99", "ex ample:port", "host:99999", "[::1", "ho$t"])
def test_no_proxy_garbage_is_config(value):
    with pytest.raises(QwenOpsError) as info:
        network.proxy_for("https", "h", 443, {"HTTPS_PROXY": "http://p:1", "NO_PROXY": value})
    assert info.value.exit_code == CONFIG


def test_proxy_credentials_never_show():
    proxy = network.parse_proxy(f"http://alice:{PROXY_PASSWORD}@proxy.corp:3128", "HTTPS_PROXY")
    assert proxy.authorization.startswith("Basic ") and (proxy.host, proxy.port) == ("proxy.corp", 3128)
    assert PROXY_PASSWORD not in repr(proxy) and PROXY_PASSWORD not in proxy.label
    assert not leaks(redact(f"x {PROXY_PASSWORD} {proxy.authorization} {proxy.url}"), (PROXY_PASSWORD,))
    with pytest.raises(QwenOpsError) as info:
        network.parse_proxy(f"http://alice:{PROXY_PASSWORD}@proxy.corp:99999", "HTTPS_PROXY")
    assert PROXY_PASSWORD not in str(info.value)


@pytest.mark.parametrize("env,source", [
    ({}, "system"), ({"SSL_CERT_FILE": "/a"}, "SSL_CERT_FILE"), ({"SSL_CERT_DIR": "/"}, "SSL_CERT_DIR"),
    ({"SSL_CERT_FILE": "/a", "SSL_CERT_DIR": "/"}, "SSL_CERT_FILE+SSL_CERT_DIR"),
    ({"REQUESTS_CA_BUNDLE": "/a", "CURL_CA_BUNDLE": "/b"}, "REQUESTS_CA_BUNDLE"),
    ({"CURL_CA_BUNDLE": "/b"}, "CURL_CA_BUNDLE"),
    ({"SSL_CERT_FILE": "/a", "REQUESTS_CA_BUNDLE": "/b"}, "SSL_CERT_FILE"),
])
def test_ca_order(env, source):
    assert network.trust_setting(env).source == source


def test_one_ssl_context_per_setting(pki):
    env = {"SSL_CERT_FILE": pki["server-ca"]}
    first, second = network.ssl_context(env), network.ssl_context(dict(env))
    assert first[0] is second[0] and first[1] == "SSL_CERT_FILE"
    session = HttpSession(env=env)
    assert session._tls()[0] is first[0]


def test_session_close_closes_every_threads_connections(sb):
    session = HttpSession(timeout=5)
    url = sb.base_url + "/_sandbox/stats"
    threads = [threading.Thread(target=session.request, args=("GET", url)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    socks = [conn.sock for pool in session._pools for conn in pool.values()]
    assert len(socks) == 3 and all(s is not None for s in socks)
    session.close()
    assert all(s.sock.fileno() == -1 for s in socks)
    assert all(not pool for pool in session._pools)


def test_a_refusing_proxy_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening, held open: refused
        port = s.getsockname()[1]
        session = HttpSession(timeout=2, env={"HTTPS_PROXY": f"http://127.0.0.1:{port}"})
        with pytest.raises(QwenOpsError) as info:
            session.request("GET", "https://dashscope.aliyuncs.com/")
    assert info.value.exit_code == NETWORK and "refused by proxy 127.0.0.1" in info.value.message
    assert "HTTPS_PROXY" in info.value.message


def test_process_environment_only(tmp_path, monkeypatch):
    """A .env naming a proxy or a CA changes nothing: network reads os.environ, not Settings."""
    (tmp_path / ".env").write_text("HTTPS_PROXY=http://evil.example:3128\nSSL_CERT_FILE=/tmp/evil.pem\n")
    monkeypatch.chdir(tmp_path)
    for name in PROXY_AND_CA:
        monkeypatch.delenv(name, raising=False)
    assert network.proxy_for("https", "dashscope.aliyuncs.com", 443) is None
    assert network.trust_setting().source == "system"
    assert os.environ.get("HTTPS_PROXY") is None


@pytest.mark.parametrize("through_proxy", [False, True])
def test_a_silent_peer_is_bounded_by_the_connect_timeout(through_proxy):
    """TCP connects (the kernel's backlog), then nothing: no TLS handshake, no CONNECT reply."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        env = {"HTTPS_PROXY": f"http://127.0.0.1:{port}"} if through_proxy else {}
        url = "https://dashscope.aliyuncs.com/" if through_proxy else f"https://127.0.0.1:{port}/"
        session = HttpSession(timeout=5, connect_timeout=0.3, env=env)
        started = time.monotonic()
        with pytest.raises(QwenOpsError) as info:
            session.request("GET", url)
        elapsed = time.monotonic() - started
    assert info.value.exit_code == NETWORK and "timed out after 0.3s connecting to" in info.value.message
    assert ("proxy 127.0.0.1" in info.value.message) is through_proxy
    assert elapsed < 2


def test_fallback_when_the_system_store_is_empty(monkeypatch):
    """The python.org macOS build without 'Install Certificates': truststore, else certifi, else a clear line."""
    import sys

    monkeypatch.setattr(network, "_has_roots", lambda context: False)
    monkeypatch.setattr(network, "_contexts", {})
    monkeypatch.setitem(sys.modules, "truststore", None)  # an import of it now fails
    assert network.ssl_context({})[1] == "certifi"
    monkeypatch.setattr(network, "_contexts", {})
    monkeypatch.setitem(sys.modules, "certifi", None)
    assert network.ssl_context({})[1] == "system (empty)"
    advice = network.certificate_advice("dashscope.aliyuncs.com", "system (empty)", "unable to get local issuer")
    assert "pip install certifi" in advice and "SSL_CERT_FILE" in advice and "\n" not in advice


@pytest.mark.parametrize("platform,used", [("darwin", True), ("win32", True), ("linux", False)])
def test_truststore_is_a_fallback_only_where_it_reads_no_environment(monkeypatch, platform, used):
    """On Linux truststore loads OpenSSL's default paths, which read SSL_CERT_FILE from the real environment
    (a tracked .env's CA copied by load_dotenv() included): there the fallback is certifi or nothing."""
    import sys
    import types

    made = []
    fake = types.ModuleType("truststore")
    fake.SSLContext = lambda protocol: made.append(protocol) or "truststore context"
    monkeypatch.setitem(sys.modules, "truststore", fake)
    monkeypatch.setitem(sys.modules, "certifi", None)
    monkeypatch.setattr(sys, "platform", platform)
    assert network._fallback_context() == (("truststore context", "truststore") if used else (None, ""))
    assert bool(made) is used


# -- the TLS contexts load exactly the store the one trust decision chose

def _hashed_folder(pki, name: str = "hashed") -> str:
    """A folder OpenSSL reads as SSL_CERT_DIR, holding the sandbox's CA under its subject-hash name."""
    import subprocess

    folder = pki["dir"] / name
    folder.mkdir(exist_ok=True)
    hashed = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", pki["server-ca"]], capture_output=True,
                            text=True, check=True).stdout.strip()
    (folder / f"{hashed}.0").write_bytes(Path(pki["server-ca"]).read_bytes())
    return str(folder)


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_a_ca_variable_left_out_of_the_decision_is_not_read_by_openssl_either(pki, tls_box, monkeypatch, variable):
    """``load_dotenv()`` put a tracked ``.env``'s CA variable into the real environment; ``Settings.env`` (here
    ``{}``) left it out. The system store must then be loaded by name, never through OpenSSL's own getenv."""
    monkeypatch.setenv(variable, pki["server-ca"] if variable == "SSL_CERT_FILE" else _hashed_folder(pki))
    monkeypatch.setattr(network, "_contexts", {})
    with pytest.raises(QwenOpsError) as refused:
        stats({}, tls_box.base_url)
    assert refused.value.exit_code == NETWORK and "not trusted" in refused.value.message
    assert stats({variable: os.environ[variable]}, tls_box.base_url) == 200   # the user's own setting still works


def test_a_tracked_ssl_cert_dir_copied_by_load_dotenv_is_not_trusted(net_env, pki, tls_box, project):
    """The red team's a26: the repository ships a CA folder and ``SSL_CERT_DIR=certs``; a server that CA vouches
    for (a spoofed host) must not get the key from ``load_dotenv(); resolve_file(...)``."""
    import shutil
    import subprocess
    import sys

    from conftest import SCRIPTS, git

    shutil.copytree(_hashed_folder(pki, "repo-certs"), project / "certs")
    (project / ".env").write_text("SSL_CERT_DIR=certs\n")
    (project / "pic.png").write_bytes(b"a picture")
    (project / "app.py").write_text(
        "import sys\nfrom dotenv import load_dotenv\nload_dotenv()\n"
        f"sys.path.insert(0, {str(SCRIPTS)!r})\nfrom qianwen_ops import QwenOpsError, resolve_file\n"
        "try:\n    print(resolve_file('pic.png', 'qwen-vl-plus', use_cache=False))\n"
        "except QwenOpsError as exc:\n    print(exc.exit_code, exc)\n")
    git(project, "init", "-q")
    git(project, "add", ".env", "certs")
    before = tls_stats(pki, tls_box)
    done = subprocess.run([sys.executable, "app.py"], cwd=project, capture_output=True, text=True, timeout=60,
                          env=dict(net_env, QWEN_BASE_URL=tls_box.base_url, DASHSCOPE_API_KEY=CANARY_KEY))
    assert done.stdout.startswith("8 the TLS certificate of 127.0.0.1 is not trusted"), (done.stdout, done.stderr)
    assert "SSL_CERT_DIR in the environment is the value" in done.stderr
    assert tls_stats(pki, tls_box) == before


def tls_stats(pki, box) -> dict:
    """The TLS sandbox's request counts, asked with its own CA."""
    session = HttpSession(timeout=5, env={"SSL_CERT_FILE": pki["server-ca"]})
    try:
        return session.request("GET", box.base_url + "/_sandbox/stats").json()["counts"]
    finally:
        session.close()


def test_no_tls_context_of_the_bundle_writes_a_key_log(pki, tls_box, monkeypatch, tmp_path):
    from qianwen_ops import interception

    log = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))    # what a tracked .env can make load_dotenv() set
    monkeypatch.setattr(network, "_contexts", {})
    contexts = [network.ssl_context({})[0], network.ssl_context({"SSL_CERT_FILE": pki["server-ca"]})[0],
                interception.public_roots()[0], network._fallback_context()[0]]
    assert all(getattr(c, "keylog_filename", None) is None for c in contexts if c is not None)
    assert stats({"SSL_CERT_FILE": pki["server-ca"]}, tls_box.base_url) == 200
    assert not log.exists()


def test_the_windows_store_is_loaded_for_server_authentication_only(pki, tls_box):
    """What ``load_default_certs()`` takes from Windows' "CA" and "ROOT" stores, given as ``enum_certificates``
    would give it there: certificates trusted for server authentication (True or the serverAuth purpose)."""
    import ssl

    from qianwen_ops.http_client import tls_handshake

    der = ssl.PEM_cert_to_DER_cert(Path(pki["server-ca"]).read_text())
    other = ssl.PEM_cert_to_DER_cert(Path(pki["other-ca"]).read_text())
    stores = {"ROOT": [(b"not a certificate", "x509_asn", True), (der, "x509_asn", {"1.3.6.1.5.5.7.3.1"})],
              "CA": [(other, "x509_asn", {"1.3.6.1.5.5.7.3.2"}), (other, "pkcs_7_asn", True)]}
    assert network.windows_store_certificates(lambda store: stores[store]) == [b"not a certificate", der]
    context = network.system_context(lambda store: stores[store])
    assert tls_handshake(tls_box.base_url, context, {}, 5) is not None    # the store's CA vouches for the sandbox
    client_only = {"ROOT": [(der, "x509_asn", {"1.3.6.1.5.5.7.3.2"})], "CA": []}
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(tls_box.base_url, network.system_context(lambda store: client_only[store]), {}, 5)


def test_the_bundles_contexts_are_pythons_default_ones_without_reading_the_environment(pki, monkeypatch):
    """``network.client_context`` must keep every setting ``ssl.create_default_context`` makes on this Python (the CI
    matrix runs 3.9 to 3.13), and differ only in what it reads from the environment."""
    import ssl

    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    ours, python = network.client_context(cafile=pki["server-ca"]), ssl.create_default_context(cafile=pki["server-ca"])
    for name in ("protocol", "verify_mode", "check_hostname", "verify_flags", "options", "minimum_version",
                 "maximum_version", "post_handshake_auth", "keylog_filename"):
        assert getattr(ours, name, None) == getattr(python, name, None), name
    assert [c["name"] for c in ours.get_ciphers()] == [c["name"] for c in python.get_ciphers()]
    assert ours.cert_store_stats() == python.cert_store_stats()
