"""git is asked read-only questions only, and a project's .git/config can never make it run a program or see a key."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CANARY_KEY, leaks, run_script
from qianwen_ops.gitrun import git_env
from qianwen_ops.provenance import is_git_tracked


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
