"""Red-team findings: credential files never uploaded, git never runs a project's programs, upload
hosts checked, JSON output ASCII-escaped, retries bounded by an overall deadline."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from test_custom_oss import oss_env, without_notice

from conftest import CANARY_KEY, assert_clean_error, leaks, run_script, sandbox_env
from qianwen_ops.credentials import Secret
from qianwen_ops.endpoints import resolve_endpoint
from qianwen_ops.errors import HTTP_ERROR, NETWORK, QwenOpsError
from qianwen_ops.gitrun import git_env
from qianwen_ops.http_client import DEFAULT_RETRY, Response, call_with_retries, retry_deadline
from qianwen_ops.limits import MIN_UPLOAD_RATE
from qianwen_ops.local_files import check_file
from qianwen_ops.provenance import is_git_tracked
from qianwen_ops.secret_files import is_credential_name
from qianwen_ops.settings import Settings
from qianwen_ops.temp_storage import TempStorage

MODEL = "qwen-vl-plus"


@pytest.mark.parametrize("name", [".env", ".env.local", "prod.env", ".netrc", ".pgpass", ".npmrc", ".pypirc",
                                  "credentials", ".bailian/config.json", "id_rsa", "id_ed25519", "server.pem",
                                  "tls.key", ".git-credentials"])
def test_credential_file_names_are_recognised(name):
    assert is_credential_name(Path("/p") / name)


@pytest.mark.parametrize("name", ["photo.png", "config.json", "environment.txt", "keys.png", "report.pdf"])
def test_ordinary_names_are_not_credentials(name):
    assert not is_credential_name(Path("/p") / name)


def _sent(box) -> int:
    counts = box.counts()
    return counts["getPolicy"] + counts["postObject"] + counts["oss"]


@pytest.mark.parametrize("backend", ["temp", "custom-oss"])
def test_credential_files_are_refused_before_any_byte_is_sent(sb, env, project, backend):
    run_env = sandbox_env(env, sb) if backend == "temp" else oss_env(env, sb)
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={sb.api_key}\n")
    (project / "notes.txt").write_text(f"my key is {sb.api_key[3:]} (keep it safe)\n")
    secret = sb.info["oss_access_key_secret"] if backend == "custom-oss" else sb.api_key
    (project / "dump.bin").write_bytes(b"\x00\x01" * 100 + secret.encode() + b"\xff")
    (project / "ok.png").write_bytes(b"fine picture")
    before = _sent(sb)
    for name in (".env", "notes.txt", "dump.bin"):
        done = run_script("upload_file.py", name, "--model", MODEL, "--no-cache", env=run_env, cwd=project)
        assert done.code == 10, (name, done.err)
        assert f"refusing to upload {name}: it holds credentials" in done.err
        assert_clean_error(without_notice(done) if done.err.startswith("note: ") else done)
        assert done.out == "" and sb.api_key[6:18] not in done.out + done.err
        assert leaks(done.out + done.err, (CANARY_KEY, secret)) == []
    assert _sent(sb) == before                       # not even a getPolicy or a bucket call
    done = run_script("upload_file.py", "ok.png", "--model", MODEL, "--no-cache", env=run_env, cwd=project)
    assert done.code == 0 and done.out.strip() and _sent(sb) > before  # the same set-up uploads a picture


def _plant_fsmonitor(project: Path) -> Path:
    """A git work tree whose config names a hook that records that it ran, and its environment."""
    marker = project.parent / "fsmonitor-ran"
    hook = project.parent / "hook.sh"
    hook.write_text(f"#!/bin/sh\nenv > '{marker}'\nexit 1\n")
    hook.chmod(0o700)
    for args in (["init", "-q"], ["config", "core.fsmonitor", str(hook)]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)
    (project / "tracked.txt").write_text("x\n")
    subprocess.run(["git", "-c", "core.fsmonitor=false", "add", "tracked.txt"], cwd=project, check=True)
    # The planted hook really does run for a plain git call (the test would prove nothing otherwise).
    subprocess.run(["git", "ls-files"], cwd=project, check=True, capture_output=True)
    assert marker.exists()
    marker.unlink()
    return marker


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_planted_git_fsmonitor_never_runs_or_sees_the_key(env, project):
    marker = _plant_fsmonitor(project)
    run_env = dict(env, DASHSCOPE_API_KEY=CANARY_KEY)
    setup = run_script("setup_env.py", "--from-stdin", env=run_env, cwd=project, stdin=CANARY_KEY + "\n")
    assert setup.code == 0 and ".env" in (project / ".gitignore").read_text(), setup.err  # git was asked
    (project / ".gitignore").unlink()
    doctor = run_script("doctor.py", "--offline", env=run_env, cwd=project)
    assert "Traceback" not in doctor.err and "is not ignored by git" in doctor.out + doctor.err  # asked too
    assert is_git_tracked(project / "tracked.txt") and not is_git_tracked(project / ".env")
    ran = marker.read_text() if marker.exists() else ""
    assert not marker.exists(), f"the planted hook ran (with the key in its environment: {CANARY_KEY in ran})"
    assert leaks(doctor.out + doctor.err + setup.out + setup.err) == []


def test_git_runs_without_credentials_or_git_variables():
    env = git_env({"DASHSCOPE_API_KEY": CANARY_KEY, "QWEN_TMP_OSS_AK_SECRET": "x" * 20, "GIT_DIR": "/elsewhere",
                   "git_config_global": "/x", "HTTPS_PROXY": "http://u:p@proxy:1", "PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


class _PolicyServer:
    """A stand-in HTTP session: getPolicy answers ``data``; every request is recorded."""

    def __init__(self, data: dict):
        self.body = json.dumps({"data": data}).encode()
        self.requests = []

    def request(self, method, url, headers=None, body=None) -> Response:
        self.requests.append((method, url))
        if method == "GET":
            return Response(200, {}, self.body)
        for _ in body.chunks():
            pass
        return Response(200, {}, b"")


GOOD_POLICY = {"policy": "cG9saWN5", "signature": "c2ln", "upload_dir": "dashscope-instant/abc/2026-11-21/x",
               "upload_host": "https://dashscope-file-mgr.oss-cn-beijing.aliyuncs.com",
               "oss_access_key_id": "LTAI5tExample", "x_oss_object_acl": "private", "x_oss_forbid_overwrite": "true"}


def _upload_with(tmp_path, base_url: str | None, **changes):
    server = _PolicyServer(dict(GOOD_POLICY, **changes))
    env = {"QWEN_BASE_URL": base_url} if base_url else {}
    storage = TempStorage(resolve_endpoint(Settings.from_process(cwd=None, env=env)), Secret("sk-" + "1" * 32),
                          server)
    path = tmp_path / "pic.png"
    path.write_bytes(b"picture")
    return server, (lambda: storage.upload(check_file(path), MODEL))


@pytest.mark.parametrize("base_url,host", [
    (None, "http://files.attacker.example/up"), (None, "https://files.attacker.example"),
    (None, "http://dashscope-file-mgr.oss-cn-beijing.aliyuncs.com"),     # OSS, but plain http
    (None, "https://oss.aliyuncs.com.attacker.example"), (None, "http://127.0.0.1:8999/bucket"),
    (None, "https://127.0.0.1/bucket"), ("http://127.0.0.1:9", "https://[::2]/bucket"),
    (None, "ftp://x.aliyuncs.com"), (None, 42)])
def test_an_untrusted_upload_host_is_refused_and_nothing_is_uploaded(tmp_path, base_url, host):
    server, upload = _upload_with(tmp_path, base_url, upload_host=host)
    with pytest.raises(QwenOpsError) as caught:
        upload()
    message = caught.value.message
    assert caught.value.exit_code == HTTP_ERROR and "upload" in message and "\n" not in message
    assert [method for method, _ in server.requests] == ["GET"]          # getPolicy only: nothing uploaded
    if isinstance(host, str) and "attacker" in host:
        assert "attacker.example" in message


@pytest.mark.parametrize("base_url,host", [
    (None, "https://dashscope-file-mgr.oss-cn-beijing.aliyuncs.com"),
    (None, "https://oss-cn-beijing.aliyuncs.com/some-bucket"),
    ("http://127.0.0.1:9", "http://127.0.0.1:8999/dashscope-sandbox-temp"),   # the sandbox: loopback API only
    ("http://localhost:9", "https://localhost:8999")])
def test_oss_over_https_and_loopback_for_a_loopback_api_are_accepted(tmp_path, base_url, host):
    server, upload = _upload_with(tmp_path, base_url, upload_host=host)
    url = upload()[0]
    assert url.startswith("oss://dashscope-instant/abc/2026-11-21/x/") and server.requests[-1] == ("POST", host)


@pytest.mark.parametrize("field,value", [
    ("upload_dir", "a\nb"), ("upload_dir", "ok\r\nSUCCESS"), ("upload_dir", "../up"), ("upload_dir", "a/../b"),
    ("upload_dir", "x" * 600), ("upload_dir", "dir\u202egnp.exe"), ("upload_dir", ""), ("upload_dir", "/abs"),
    ("upload_dir", "with space"), ("upload_dir", ["list"]), ("signature", "s\r\nX-Evil: 1"),
    ("policy", "p\x00"), ("oss_access_key_id", 7), ("x_oss_object_acl", "public-read\n")])
def test_policy_fields_with_control_characters_or_bad_shapes_are_refused(tmp_path, field, value):
    server, upload = _upload_with(tmp_path, None, **{field: value})
    with pytest.raises(QwenOpsError) as caught:
        upload()
    assert caught.value.exit_code == HTTP_ERROR and field in caught.value.message
    assert "\n" not in caught.value.message and "\u202e" not in caught.value.message
    assert [method for method, _ in server.requests] == ["GET"]


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


def test_a_slow_get_policy_cannot_hold_upload_past_a_few_timeouts(sb, env, project):
    (project / "pic.png").write_bytes(b"picture")
    sb.fault(route="getPolicy", delay_s=3.0, count=10)
    before = sb.counts()["getPolicy"]
    start = time.monotonic()
    done = run_script("upload_file.py", "pic.png", "--model", MODEL, "--no-cache", "--timeout", "0.5",
                      env=sandbox_env(env, sb), cwd=project)
    took = time.monotonic() - start
    assert done.code == 8 and "Traceback" not in done.err
    assert sb.counts()["getPolicy"] - before < DEFAULT_RETRY.attempts and took < 3.5, (took, done.err)


def test_json_output_and_evidence_are_ascii_escaped(sb, env, project):
    name = "图片 ünï name.png"               # printable non-ASCII: escaped in JSON, never lost
    (project / name).write_bytes(b"picture")
    done = run_script("upload_file.py", name, "missing-\u2067.png", "--model", MODEL, "--json", "--no-cache",
                      env=sandbox_env(env, sb), cwd=project)
    assert done.code == 10 and done.out.isascii(), done.out
    first, second = (json.loads(line) for line in done.out.splitlines())
    assert first["source"] == name and "图片" in first["url"] and "error" in second
    evidence = project / "output" / "qianwen-ops-auth"
    texts = [path.read_bytes() for path in evidence.rglob("*") if path.is_file()]
    assert texts and all(text.isascii() for text in texts)
    assert any("图片" in json.loads(line).get("source", "") for line in (evidence / "uploads.jsonl").read_text()
               .splitlines())
