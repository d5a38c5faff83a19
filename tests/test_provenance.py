"""Trust by origin: a .env (a tracked one above all) may not choose where the key, the files or the traffic go,
not even through load_dotenv() in the user's app."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import (
    CANARY_KEY,
    MODEL,
    assert_clean_error,
    git,
    leaks,
    oss_env,
    run_script,
)
from qianwen_ops.settings import Settings

APP = """
import sys
from dotenv import load_dotenv
load_dotenv()                     # as SKILL.md and the README once recommended
sys.path.insert(0, {scripts!r})
from qianwen_ops import QwenOpsError, resolve_file
try:
    print(resolve_file("pic.png", "qwen-vl-plus", use_cache=False))
except QwenOpsError as exc:
    print("QwenOpsError", exc.exit_code, exc)
    sys.exit(exc.exit_code)
"""



def _run_app(project: Path, run_env: dict, dotenv: str, tracked: bool = True):
    import subprocess

    from conftest import SCRIPTS

    (project / ".env").write_text(dotenv)
    (project / "pic.png").write_bytes(os.urandom(300))
    (project / "app.py").write_text(APP.format(scripts=str(SCRIPTS)))
    git(project, "init", "-q")
    if tracked:
        git(project, "add", ".env")
    done = subprocess.run([sys.executable, "app.py"], cwd=project, env=run_env, capture_output=True, text=True,
                          timeout=60)
    return done


def _app_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}


def test_load_dotenv_then_resolve_file_never_sends_the_key_to_a_tracked_base_url(env, project, listener):
    done = _run_app(project, _app_env(env), f"DASHSCOPE_API_KEY={CANARY_KEY}\n"
                    f"QWEN_BASE_URL=http://127.0.0.1:{listener.port}\n")
    assert done.returncode == 9 and f"QWEN_BASE_URL in {project / '.env'}" in done.stdout, (done.stdout, done.stderr)
    assert listener.received == [] and leaks(done.stdout + done.stderr) == []


def test_load_dotenv_then_resolve_file_never_uses_a_tracked_bucket(sb, env, project):
    info = sb.info
    before = sb.counts()
    done = _run_app(project, dict(_app_env(env), QWEN_BASE_URL=sb.base_url, DASHSCOPE_API_KEY=sb.api_key),
                    f"QWEN_TMP_OSS_BUCKET={info['oss_bucket']}\nQWEN_TMP_OSS_REGION={info['oss_region']}\n"
                    f"QWEN_TMP_OSS_ENDPOINT={info['oss_endpoint']}\nQWEN_TMP_OSS_AK_ID={info['oss_access_key_id']}\n"
                    f"QWEN_TMP_OSS_AK_SECRET={info['oss_access_key_secret']}\n")
    assert done.returncode == 9 and "QWEN_TMP_OSS_BUCKET in" in done.stdout, (done.stdout, done.stderr)
    assert sb.counts() == before


@pytest.mark.parametrize("names", [("HTTP_PROXY",), ("ALL_PROXY",), ("http_proxy", "HTTPS_PROXY")])
def test_load_dotenv_then_resolve_file_never_uses_a_tracked_proxy(sb, env, project, listener, names):
    lines = "".join(f"{name}=http://127.0.0.1:{listener.port}\n" for name in names)
    run_env = dict(_app_env(env), QWEN_BASE_URL=sb.base_url, DASHSCOPE_API_KEY=sb.api_key)
    done = _run_app(project, run_env, lines)
    assert done.returncode == 0 and done.stdout.startswith("oss://"), (done.stdout, done.stderr)
    assert listener.received == []                            # went direct, as the scripts do
    assert f"warning: {names[0]} in the environment is the value {project / '.env'} sets" in done.stderr
    # the same lines in a .env git ignores are the user's own: the proxy is used (and refuses credentials
    # over plain http, so nothing is sent to it either)
    (project / ".gitignore").write_text(".env\n")
    git(project, "rm", "-q", "--cached", ".env")
    done = _run_app(project, run_env, lines, tracked=False)
    assert done.returncode == 9 and "through proxy 127.0.0.1" in done.stdout, (done.stdout, done.stderr)


@pytest.mark.parametrize("name", ["SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                                  "HTTPS_PROXY", "NO_PROXY", "QWEN_BASE_URL", "QWEN_TMP_OSS_ENDPOINT",
                                  "DASHSCOPE_HTTP_BASE_URL", "DASHSCOPE_WORKSPACE_ID"])
def test_a_value_identical_to_a_tracked_dotenv_line_is_that_files(env, project, tmp_path, name):
    from qianwen_ops import network

    value = {"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "*", "QWEN_BASE_URL": "http://127.0.0.1:9",
             "QWEN_TMP_OSS_ENDPOINT": "http://127.0.0.1:9", "DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:9/api/v1",
             "DASHSCOPE_WORKSPACE_ID": "ws-evil"}.get(name, str(tmp_path / "evil-ca.pem"))
    (project / ".env").write_text(f"{name}={value}\n")
    git(project, "init", "-q")
    git(project, "add", ".env")
    copied = Settings.from_process(cwd=project, env=dict(env, **{name: value}))
    assert name not in copied.env                              # judged as the file's, so not the environment's
    own = Settings.from_process(cwd=project, env=dict(env, **{name: value + "0"}))
    assert own.env[name] == value + "0"                        # the user's own, different value stands
    if name.endswith(("CERT_FILE", "CERT_DIR", "BUNDLE")):
        assert network.trust_setting(copied.env).source == "system"
    sub = project / "sub" / "deeper"
    sub.mkdir(parents=True)
    assert name not in Settings.from_process(cwd=sub, env=dict(env, **{name: value})).env


def test_tracked_dotenv_cannot_choose_the_bucket(sb, env, project):
    info = sb.info
    (project / ".env").write_text(f"QWEN_TMP_OSS_BUCKET={info['oss_bucket']}\nQWEN_TMP_OSS_REGION=cn-beijing\n")
    git(project, "init", "-q")
    git(project, "add", ".env")
    git(project, "commit", "-qm", "a cloned repository's .env")
    (project / "x.bin").write_bytes(b"x")
    run_env = oss_env(env, sb)
    for name in ("QWEN_TMP_OSS_BUCKET", "QWEN_TMP_OSS_REGION"):
        run_env.pop(name)
    before = sb.counts()
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=run_env, cwd=project)
    assert result.code == 9 and sb.counts() == before
    assert f"QWEN_TMP_OSS_BUCKET in {project / '.env'} is not used: git tracks that file" in result.err
    assert "set QWEN_TMP_OSS_BUCKET in the environment" in result.err
    assert_clean_error(result)
    # the same lines in a .env that git does not track are the user's own: they work
    git(project, "rm", "-q", "--cached", ".env")
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=run_env, cwd=project)
    assert result.code == 0, result.err
    assert f"(QWEN_TMP_OSS_BUCKET from {project / '.env'})" in result.err


def test_tracked_dotenv_cannot_choose_the_api_host(env, project):
    (project / ".env").write_text("QWEN_BASE_URL=https://dashscope-intl.aliyuncs.com\n")
    git(project, "init", "-q")
    git(project, "add", ".env")
    result = run_script("probe.py", env=dict(env, DASHSCOPE_API_KEY="sk-abcdef123456"), cwd=project)
    assert result.code == 9 and "git tracks that file" in result.err
    assert_clean_error(result)


@pytest.mark.parametrize("line,name,script", [
    ("QWEN_BASE_URL=http://127.0.0.1:9", "QWEN_BASE_URL", "probe.py"),
    ("QWEN_TMP_OSS_ENDPOINT=http://127.0.0.1:9", "QWEN_TMP_OSS_ENDPOINT", "upload_file.py"),
])
def test_loopback_endpoints_only_from_the_environment(sb, env, project, line, name, script):
    (project / ".env").write_text(line + "\n")
    run_env = oss_env(env, sb) if script == "upload_file.py" else dict(env, DASHSCOPE_API_KEY="sk-abcdef123456")
    run_env.pop(name, None)
    (project / "x.bin").write_bytes(b"x")
    args = ["x.bin", "--model", MODEL] if script == "upload_file.py" else []
    result = run_script(script, *args, env=run_env, cwd=project)
    assert result.code == 9 and f"{name} in {project / '.env'} points to 127.0.0.1, which is a loopback host" \
        in result.err, result.err
