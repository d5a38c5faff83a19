"""tests/run.sh, the README's test command: a failed install step says why and what to do."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

NPM_BEHIND_AN_INSPECTING_PROXY = """#!/bin/sh
echo "npm error code SELF_SIGNED_CERT_IN_CHAIN" >&2
echo "npm error request to https://registry.npmjs.org/node failed, reason: self-signed certificate" >&2
exit 1
"""


def venv_without_npm(tmp_path):
    """A test venv that run.sh accepts as up to date (its python, the requirements hash) but without the
    npm tools, so that run.sh goes to its npm step."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    digest = hashlib.sha256((ROOT / "tests" / "requirements.txt").read_bytes()).hexdigest()
    (venv / ".requirements.sha256").write_text(digest + "\n")
    return venv


def run_sh(env: dict, timeout: float = 60):
    return subprocess.run(["bash", str(ROOT / "tests" / "run.sh")], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell stubs stand in for npm")
def test_a_failed_npm_step_shows_npms_reason_and_the_fix(env, tmp_path):
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "npm").write_text(NPM_BEHIND_AN_INSPECTING_PROXY)
    (fake / "npm").chmod(0o755)
    run_env = dict(env, PATH=f"{fake}{os.pathsep}{env['PATH']}", QWEN_TEST_VENV=str(venv_without_npm(tmp_path)))
    run_env.pop("QWEN_SKIP_INSTALLER_TESTS", None)
    done = run_sh(run_env)
    assert done.returncode == 1
    assert "npm install node@" in done.stderr and "(exit 1)" in done.stderr
    assert "SELF_SIGNED_CERT_IN_CHAIN" in done.stderr          # npm's own reason, no longer silenced
    assert "NODE_EXTRA_CA_CERTS" in done.stderr and "PIP_CERT" in done.stderr   # and what fixes it


@pytest.mark.skipif(sys.platform == "win32", reason="PATH without npm is built from POSIX folders")
def test_no_npm_at_all_is_one_clear_line(env, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for tool in ("bash", "dirname", "mktemp", "rm", "cat", "tail", "mkdir", "cp", "env"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        if found:
            (bare / tool).symlink_to(found)
    (bare / "python3").symlink_to(sys.executable)
    run_env = dict(env, PATH=str(bare), QWEN_TEST_VENV=str(venv_without_npm(tmp_path)))
    run_env.pop("QWEN_SKIP_INSTALLER_TESTS", None)
    done = run_sh(run_env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: npm not found") and "QWEN_SKIP_INSTALLER_TESTS=1" in done.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell stub stands in for an old Python")
def test_a_python_too_old_for_the_test_tools_is_one_clear_line(env, tmp_path):
    """macOS's own python3 is 3.9: the scripts run on it, pytest 9 and skills-ref do not."""
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\n[ \"$1\" = -V ] && echo 'Python 3.9.6' && exit 0\nexit 1\n")
    old.chmod(0o755)
    done = run_sh(dict(env, PYTHON=str(old), QWEN_TEST_VENV=str(tmp_path / "fresh-venv")))
    assert done.returncode == 2 and not (tmp_path / "fresh-venv").exists()
    assert done.stderr.startswith("error: the test tools need Python 3.11 or newer") and "Python 3.9.6" in done.stderr


def test_run_sh_uses_no_gnu_only_tools():
    """macOS has BSD tools: no sha256sum, no GNU-only flags (readlink -f, sed -i without a suffix...)."""
    text = (ROOT / "tests" / "run.sh").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for gnu_only in ("sha256sum", "readlink -f", "sed -i ", "grep -P", "date -d", "stat -c", "timeout "):
        assert gnu_only not in code, gnu_only


WORKFLOW = ROOT / ".github" / "workflows" / "tests.yml"


def test_the_ci_workflow_runs_the_readme_command_everywhere_and_passes_actionlint():
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "run: bash tests/run.sh" in text and "shell: bash" in text
    assert "os: [ubuntu-latest, macos-latest, windows-latest]" in text and 'python: ["3.9", "3.13"]' in text
    assert "QWEN_REQUIRE_PYTHON39" in text and "continue-on-error" not in text   # no row may fail unseen
    actionlint = Path(sys.executable).with_name("actionlint.exe" if os.name == "nt" else "actionlint")
    done = subprocess.run([str(actionlint), "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    """The check above can fail: the same workflow with a misspelt matrix key and action input does."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    broken = tmp_path / ".github" / "workflows" / "tests.yml"
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("matrix.os }}", "matrix.oses }}")
                      .replace('python-version: "3.13"', 'python-versio: "3.13"'), encoding="utf-8")
    actionlint = Path(sys.executable).with_name("actionlint.exe" if os.name == "nt" else "actionlint")
    done = subprocess.run([str(actionlint), "-no-color", str(broken)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and 'property "oses" is not defined' in done.stdout
    assert 'input "python-versio" is not defined' in done.stdout
