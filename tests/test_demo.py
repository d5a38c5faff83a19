"""demo.py, the README's main command: offline, stdlib only, seconds, leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import SCRIPTS

pytestmark = pytest.mark.slow   # end to end: seconds per test (selected with -m slow, run by default)


def run_demo(env, cwd, tmp, python):
    run_env = dict(env, TMPDIR=str(tmp))
    return subprocess.run([*python, str(SCRIPTS / "demo.py")], env=run_env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_demo_shows_both_backends(env, project, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    done = run_demo(env, project, tmp, [sys.executable])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line[:5] for line in lines[1:7]] == ["[1/6]", "[2/6]", "[3/6]", "[4/6]", "[5/6]", "[6/6]"]
    assert "-> 000 (exit 3)" in lines[2] and "-> 200 (exit 0)" in lines[3] and "oss://" in lines[4]
    assert done.stdout.count("sha256 matches") == 3 and "DOES NOT" not in done.stdout  # oss://, data:, custom OSS
    assert "with --inline (a data: URL, nothing uploaded): sha256 matches" in lines[5]
    assert list(tmp.iterdir()) == [] and list(project.iterdir()) == []
    assert done.stderr == ""


def test_demo_on_bare_python_shows_both_backends_too(env, project, tmp_path):
    """No site-packages at all: custom OSS mode needs no SDK either."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    done = run_demo(env, project, tmp, [sys.executable, "-S"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("sha256 matches") == 3 and "[6/6] custom OSS mode: presigned" in done.stdout
    assert list(tmp.iterdir()) == [] and list(project.iterdir()) == []
