"""git is asked read-only questions only, and a project's .git/config can never make it run a program or see a key."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CANARY_KEY, leaks, run_script
from qianwen_ops.gitrun import git_env
from qianwen_ops.provenance import tracked_verdict


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
    assert tracked_verdict(project / "tracked.txt") == (True, "") and tracked_verdict(project / ".env") == (False, "")
    ran = marker.read_text() if marker.exists() else ""
    assert not marker.exists(), f"the planted hook ran (with the key in its environment: {CANARY_KEY in ran})"
    assert leaks(doctor.out + doctor.err + setup.out + setup.err) == []


def test_git_runs_without_credentials_or_git_variables():
    env = git_env({"DASHSCOPE_API_KEY": CANARY_KEY, "QWEN_TMP_OSS_AK_SECRET": "x" * 20, "GIT_DIR": "/elsewhere",
                   "git_config_global": "/x", "HTTPS_PROXY": "http://u:p@proxy:1", "PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


def _repo_tracking(project: Path, name: str) -> Path:
    (project / name).write_text("QWEN_BASE_URL=https://dashscope-intl.aliyuncs.com\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", name], cwd=project, check=True)
    return project / name


def test_git_is_asked_about_the_name_as_it_recorded_it(project):
    """On a case-insensitive file system (macOS, Windows) ``.env`` opens the ``.ENV`` git tracks; here a hard
    link stands in for that where the file system tells the names apart."""
    from qianwen_ops.gitrun import tracked_state

    _repo_tracking(project, ".ENV")
    if not (project / ".env").exists():
        os.link(project / ".ENV", project / ".env")
    assert tracked_state(project / ".env") == (True, "")
    (project / "other").mkdir()
    (project / "other" / ".ENV").write_text("x\n")
    (project / "other" / ".env").write_text("y\n")       # a different file (where names differ in case)
    subprocess.run(["git", "add", "other/.ENV"], cwd=project, check=True)
    expected = (True, "") if os.path.samefile(project / "other" / ".env", project / "other" / ".ENV") else (False, "")
    assert tracked_state(project / "other" / ".env") == expected


def test_git_that_cannot_answer_says_so_instead_of_no(project, tmp_path, monkeypatch):
    from qianwen_ops.gitrun import tracked_state

    path = _repo_tracking(project, ".env")
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    state, why = tracked_state(path)
    assert state is None and why == "git is not installed or not on PATH"


def test_a_configuration_the_environment_names_cannot_change_the_answer(project, tmp_path, monkeypatch):
    """``load_dotenv()`` may have copied a tracked ``.env``'s XDG_CONFIG_HOME or HOME into the environment, naming
    a broken (or crafted) git configuration in the repository: git still answers, from the index alone."""
    from qianwen_ops.gitrun import tracked_state

    path = _repo_tracking(project, ".env")
    (project / "cfg" / "git").mkdir(parents=True)
    (project / "cfg" / "git" / "config").write_text("[broken\n")
    (project / ".gitconfig").write_text("[broken\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", "cfg")
    monkeypatch.setenv("HOME", str(project))
    assert subprocess.run(["git", "-C", str(project), "ls-files"], capture_output=True).returncode != 0  # broken
    assert tracked_state(path) == (True, "")
