"""probe.py end to end against the sandbox: status codes, exit codes, evidence, no request when it must not."""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from conftest import assert_clean_error, run_script, sandbox_env


def chats(box) -> int:
    return box.counts()["chat"]


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

    class Target(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    target = HTTPServer(("127.0.0.1", 0), Target)

    class Redirector(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{target.server_address[1]}/steal")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    redirector = HTTPServer(("127.0.0.1", 0), Redirector)
    for server in (target, redirector):
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        result = run_script("probe.py", env=dict(env, QWEN_BASE_URL=f"http://127.0.0.1:{redirector.server_address[1]}",
                                                 DASHSCOPE_API_KEY="sk-abcdef1234"), cwd=project)
    finally:
        target.shutdown()
        redirector.shutdown()
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


def imported_modules(result) -> set:
    """The modules a ``python -X importtime`` run loaded, from its stderr."""
    return {line.split("|")[-1].strip() for line in result.err.splitlines() if line.startswith("import time:")}


def test_the_probe_and_a_cache_hit_rerun_load_only_what_they_use(sb, env, project):
    """Start-up is most of the probe's time and of a rerun of cached files (bench/run.py): neither
    loads typing (~14 M instructions), shutil (argparse's terminal size) or dataclasses; a rerun whose
    files are all cached loads no HTTP stack at all."""
    heavy = {"typing", "shutil", "dataclasses", "inspect"}
    timed = [sys.executable, "-X", "importtime"]
    probe = run_script("probe.py", env=sandbox_env(env, sb), cwd=project, python=timed)
    assert probe.code == 0 and probe.out.strip() == "200"
    assert "http.client" in imported_modules(probe) and not imported_modules(probe) & heavy
    (project / "a.png").write_bytes(b"\x89PNG" + bytes(60))
    first = run_script("upload_file.py", "a.png", "--model", "qwen-vl-plus", env=sandbox_env(env, sb), cwd=project)
    assert first.code == 0, first.err
    again = run_script("upload_file.py", "a.png", "--model", "qwen-vl-plus", env=sandbox_env(env, sb), cwd=project,
                       python=timed)
    assert again.code == 0 and again.out == first.out.splitlines()[0] + "\n"
    assert not imported_modules(again) & (heavy | {"http.client", "ssl", "socket", "oss2"})
