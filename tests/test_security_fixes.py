"""Red-team findings: credential files never uploaded, git never runs a project's programs, upload
hosts checked, JSON output ASCII-escaped, retries bounded by an overall deadline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_custom_oss import oss_env, without_notice

from conftest import CANARY_KEY, assert_clean_error, leaks, run_script, sandbox_env
from qianwen_ops.endpoints import is_git_tracked
from qianwen_ops.gitrun import git_env
from qianwen_ops.secret_files import is_credential_name

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
