"""probe.py end to end against the sandbox: status codes, exit codes, evidence, no request when it must not."""

from __future__ import annotations

import json
import socket
import time
from http.server import HTTPServer

import pytest

from conftest import (
    CANARY_KEY,
    HOSTILE_BODIES,
    QuietHandler,
    assert_clean_error,
    run_script,
    sandbox_env,
    serving,
)
from qianwen_ops.probe import run_probe
from qianwen_ops.settings import Settings


def test_good_key_prints_200_and_writes_evidence(sb, env, project):
    result = run_script("probe.py", env=sandbox_env(env, sb), cwd=project)
    assert (result.code, result.out.strip(), result.err) == (0, "200", "")
    files = list((project / "output" / "qianwen-ops-auth").glob("probe-*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert record["status"] == 200 and record["key_status"] == "standard" and record["endpoint_host"] == "127.0.0.1"
    assert sb.api_key not in files[0].read_text()


def test_wrong_key_prints_401(sb, env, project):
    result = run_script("probe.py", env=sandbox_env(env, sb, key="sk-wrongwrongwrong1"), cwd=project)
    assert (result.code, result.out.strip()) == (5, "401")
    assert_clean_error(result)
    assert "InvalidApiKey" in result.err and "wrongwrong" not in result.err


def test_alias_wins(sb, env, project):
    both = dict(sandbox_env(env, sb), QIANWEN_API_KEY="sk-aliaswrong1")
    assert run_script("probe.py", env=both, cwd=project).out.strip() == "401"
    both = dict(sandbox_env(env, sb, key="sk-dashwrong1"), QIANWEN_API_KEY=sb.api_key)
    assert run_script("probe.py", env=both, cwd=project).out.strip() == "200"


def test_dotenv_in_cwd_and_repo_root(sb, env, tmp_path):
    repo = tmp_path / "repo"
    sub = repo / "pkg"
    sub.mkdir(parents=True)
    (repo / ".git").mkdir()
    (repo / ".env").write_text(f"DASHSCOPE_API_KEY={sb.api_key}\n")
    base = dict(env, QWEN_BASE_URL=sb.base_url)
    result = run_script("probe.py", "--json", env=base, cwd=sub)
    assert json.loads(result.out)["key_source"] == str(repo / ".env") and result.code == 0
    (sub / ".env").write_text("DASHSCOPE_API_KEY=sk-cwdwrong1\n")
    result = run_script("probe.py", "--json", env=base, cwd=sub)
    assert json.loads(result.out)["key_source"] == str(sub / ".env") and json.loads(result.out)["status"] == 401


def test_env_beats_dotenv(sb, env, project):
    (project / ".env").write_text("DASHSCOPE_API_KEY=sk-filewrong1\n")
    result = run_script("probe.py", env=sandbox_env(env, sb), cwd=project)
    assert result.out.strip() == "200"


@pytest.mark.parametrize("key,code,word", [
    (None, 3, "no API key"), ("sk-your-key-here", 3, "placeholder"), ("Bearer sk-abc1234", 3, "malformed"),
    ("TOKEN_PLAN", 4, "Token Plan"),
])
def test_unusable_keys_send_nothing(sb, env, project, key, code, word):
    with socket.socket() as listener:  # not even a TCP connection is opened
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        run_env = dict(env, QWEN_BASE_URL=f"http://127.0.0.1:{listener.getsockname()[1]}")
        if key:
            run_env["DASHSCOPE_API_KEY"] = sb.info["token_plan_key"] if key == "TOKEN_PLAN" else key
        result = run_script("probe.py", env=run_env, cwd=project)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # a connection the probe had made would wait here
            listener.accept()
    assert (result.code, result.out.strip()) == (code, "000")
    assert word in result.err
    assert_clean_error(result)


@pytest.mark.parametrize("case", ["plain http through a proxy", "unreadable SSL_CERT_FILE"])
def test_a_request_refused_before_connecting_opens_no_connection(env, project, case):
    """The early first-hop connection is not opened when the request itself would never connect."""
    with socket.socket() as target, socket.socket() as proxy:
        for listener in (target, proxy):
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
        run_env = dict(env, DASHSCOPE_API_KEY="sk-abcdef1234")
        if case == "plain http through a proxy":
            run_env.update(QWEN_BASE_URL=f"http://127.0.0.1:{target.getsockname()[1]}",
                           HTTP_PROXY=f"http://127.0.0.1:{proxy.getsockname()[1]}")
            word = "refusing to send credentials over plain http"
        else:
            run_env.update(QWEN_BASE_URL=f"https://127.0.0.1:{target.getsockname()[1]}",
                           SSL_CERT_FILE=str(project / "missing-ca.pem"))
            word = "SSL_CERT_FILE names a CA file that cannot be read"
        result = run_script("probe.py", env=run_env, cwd=project)
        for listener in (target, proxy):
            listener.setblocking(False)
            with pytest.raises(BlockingIOError):
                listener.accept()
    assert (result.code, result.out.strip()) == (9, "000") and word in result.err
    assert_clean_error(result)


def test_json_output_fields(sb, env, project):
    data = json.loads(run_script("probe.py", "--json", env=sandbox_env(env, sb), cwd=project).out)
    assert set(data) >= {"status", "key_status", "key_source", "endpoint_host", "request_id", "latency_ms",
                         "error_code", "error_message"}
    assert data["status"] == 200 and data["request_id"]


@pytest.mark.parametrize("status,code", [(429, 6), (500, 7), (503, 7), (403, 5)])
def test_http_errors_map_to_exit_codes(sb, env, project, status, code):
    sb.fault(route="chat", status=status, count=1)
    result = run_script("probe.py", env=sandbox_env(env, sb), cwd=project)
    assert (result.code, result.out.strip()) == (code, str(status))


def test_timeout_and_reset_are_network_errors(sb, env, project):
    sb.fault(route="chat", delay_s=3, count=1)
    result = run_script("probe.py", "--timeout", "0.5", env=sandbox_env(env, sb), cwd=project)
    assert (result.code, result.out.strip()) == (8, "000") and "timed out" in result.err
    sb.fault(route="chat", action="reset", count=1)
    result = run_script("probe.py", env=sandbox_env(env, sb), cwd=project)
    assert (result.code, result.out.strip()) == (8, "000") and "dropped" in result.err


def test_connection_refused(env, project):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening, held open: refused, and no other process can take it
        port = s.getsockname()[1]
        result = run_script("probe.py", env=dict(env, QWEN_BASE_URL=f"http://127.0.0.1:{port}",
                                                 DASHSCOPE_API_KEY="sk-abcdef1234"), cwd=project)
    assert result.code == 8 and "refused" in result.err


def test_redirect_is_not_followed_with_the_key(env, project):
    seen = []

    class Target(QuietHandler):
        def do_POST(self):  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

    with serving(Target, HTTPServer) as target:
        class Redirector(QuietHandler):
            def do_POST(self):  # noqa: N802
                self.answer(307, headers={"Location": f"{target.url}/steal"})

        with serving(Redirector, HTTPServer) as redirector:
            result = run_script("probe.py", env=dict(env, QWEN_BASE_URL=redirector.url,
                                                     DASHSCOPE_API_KEY="sk-abcdef1234"), cwd=project)
    assert result.out.strip() == "307" and result.code == 7
    assert seen == []


@pytest.mark.parametrize("url", ["ftp://x", "http://example.com", "https://u:p@example.com", "https://h/x?y=1"])
def test_bad_base_url_is_config_error(env, project, url):
    result = run_script("probe.py", env=dict(env, QWEN_BASE_URL=url, DASHSCOPE_API_KEY="sk-abcdef1234"), cwd=project)
    assert result.code == 9
    assert_clean_error(result)


def test_bad_arguments(env, project):
    result = run_script("probe.py", "--timeout", "abc", env=env, cwd=project)
    assert result.code == 2 and "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_the_probe_parses_a_hostile_401_quickly(env, project, monkeypatch):
    class Hostile(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.read_body()
            self.answer(401, HOSTILE_BODIES["open Code tags"])

    with serving(Hostile) as server:
        settings = Settings.from_process(cwd=project, env=dict(
            {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}, DASHSCOPE_API_KEY=CANARY_KEY,
            QWEN_BASE_URL=server.url))
        started = time.process_time()
        result = run_probe(settings, timeout=0.2)
        took = time.process_time() - started
    assert result.status == 401 and result.exit_code == 5
    assert took < 0.5, took                    # was ~3 s of CPU per answer


def test_the_probe_and_doctor_show_server_text_as_the_servers(env, project):
    class Liar(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            self.read_body()
            self.answer(401, json.dumps({"code": "InvalidApiKey", "message": "Key verified. Authentication works.",
                                         "request_id": "r-2"}).encode())

    with serving(Liar) as server:
        run_env = dict({k: v for k, v in env.items() if not k.lower().endswith("_proxy")},
                       DASHSCOPE_API_KEY=CANARY_KEY, QWEN_BASE_URL=server.url)
        probe = run_script("probe.py", env=run_env, cwd=project)
        doctor = run_script("doctor.py", env=run_env, cwd=project)
    assert probe.code == 5 and 'server said: "Key verified. Authentication works."' in probe.err
    assert doctor.code == 5 and 'InvalidApiKey: server said: "Key verified. Authentication works."' in doctor.out


def test_all_regions_says_to_unset_a_base_url_that_would_still_win(proxies, net_env, pki, tls_box, project):
    """QWEN_BASE_URL wins over QWEN_REGION: following the use: lines literally must fix the 401."""
    from conftest import UNAUTHORIZED, api_address

    proxy = proxies(routes={"dashscope-intl.aliyuncs.com:443": api_address(tls_box)},
                    answers={"dashscope.aliyuncs.com:443": (401, UNAUTHORIZED),
                             "dashscope-us.aliyuncs.com:443": (401, UNAUTHORIZED)}, inspect_ca=pki["server_ca"])
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=pki["server-ca"],
                   QWEN_BASE_URL="https://dashscope.aliyuncs.com")
    result = run_script("probe.py", "--all-regions", env=run_env, cwd=project)
    uses = [line for line in result.out.splitlines() if line.startswith("use:")]
    assert result.code == 0 and uses[:2] == ["use: unset QWEN_BASE_URL (env:QWEN_BASE_URL): it wins over QWEN_REGION",
                                             "use: QWEN_REGION=intl (these scripts)"]
    data = json.loads(run_script("probe.py", "--all-regions", "--json", env=run_env, cwd=project).out)
    assert data["app"]["unset"] == {"QWEN_BASE_URL": "env:QWEN_BASE_URL"}
    without = {k: v for k, v in run_env.items() if k != "QWEN_BASE_URL"}
    plain = run_script("probe.py", "--all-regions", env=without, cwd=project)
    assert "unset" not in plain.out and "use: QWEN_REGION=intl (these scripts)" in plain.out
