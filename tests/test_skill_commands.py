"""Every command SKILL.md shows, run as written from the root of a project that installed the bundle.

One install with the real installer, as agent-compatibility.md documents it (the ``release`` branch that
release/build.py makes, claude-code + cursor), then each row of the
situations table: ``<skill-dir>`` becomes the installed folder as an agent would write it, relative to
the project root, and the command runs from there. Each must print what its row says and exit with
its code. The skill folder must be byte-identical afterwards (bytecode caches aside).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import SCENARIOS, prepare_situation, prints_problem
from test_install import documented_install, install, release_mirror, skills_cli, source_repo  # noqa: F401

from conftest import ROOT, SCRUB_PREFIXES, leaks

pytestmark = pytest.mark.slow   # end to end: seconds per test (selected with -m slow, run by default)

SKILL_DIR = ".agents/skills/qianwen-ops-auth"


def tree_digest(folder: Path) -> dict:
    """Every file and link below ``folder`` (caches aside) with its content hash."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


@pytest.fixture(scope="module")
def installed(skills_cli, release_mirror, tmp_path_factory):  # noqa: F811 - fixtures from test_install
    base = tmp_path_factory.mktemp("skill-commands")
    project, home = base / "proj", base / "home"
    project.mkdir()
    home.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    source, *args = documented_install()
    install(skills_cli, source, project, home, *args, mirror=release_mirror)
    assert not (project / SKILL_DIR / "tests").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_PREFIXES)}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(base / "cache"), XDG_STATE_HOME=str(base / "state"),
               QWEN_UPDATE_URL="http://127.0.0.1:9/version.json", LC_ALL="C.UTF-8")
    return project, env


def as_written(command: str) -> list:
    argv = shlex.split(command.replace("<skill-dir>", SKILL_DIR))
    assert argv[0] == "python3"
    return [sys.executable, *argv[1:]]


def test_every_command_in_skill_md_is_a_row_of_the_situations_table():
    text = (ROOT / "SKILL.md").read_text()
    shown = set(re.findall(r"`(python3 <skill-dir>/[^`]+)`", text))
    assert shown <= {row["command"] for row in SCENARIOS.values()}, shown


def test_skill_md_commands_from_the_project_root(installed, sandbox):
    project, env = installed
    skill = project / SKILL_DIR
    before = tree_digest(skill)
    problems = []
    for situation, row in SCENARIOS.items():
        argv = as_written(row["command"])
        run_env, expected_exit = prepare_situation(situation, env, sandbox, project, project / "state.json")
        done = subprocess.run(argv, cwd=project, env=run_env, capture_output=True, text=True, timeout=120)
        if done.returncode != expected_exit:
            problems.append(f"{row['command']}: exit {done.returncode}, SKILL.md says {expected_exit}: "
                            f"{done.stderr.strip()[:300]}")
            continue
        why = prints_problem(row["prints"], done.stdout)
        if why:
            problems.append(f"{row['command']}: {why}")
        if "Traceback" in done.stderr or leaks(done.stdout + done.stderr, (sandbox.api_key[10:],)):
            problems.append(f"{row['command']}: traceback or key in the output")
    assert not problems, "\n".join(problems)
    assert tree_digest(skill) == before, "the installed skill folder changed"
    assert (project / "output" / "qianwen-ops-auth").is_dir() and not (skill / "output" / "qianwen-ops-auth").exists()
    assert not (skill / ".env").exists()


def test_user_code_snippet_from_skill_md(installed, sandbox):
    """SKILL.md / README: the user's own code gets base URL and headers from one library call."""
    project, env = installed
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={sandbox.api_key}\n")
    code = (f"import sys; sys.path.insert(0, {SKILL_DIR + '/scripts'!r})\n"
            "from qianwen_ops import api_settings\n"
            "s = api_settings()\n"
            "print(s.base_url); print(s.native_base_url); print(sorted(s.headers))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=project, env=dict(env, QWEN_BASE_URL=sandbox.base_url),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    base, native, headers = done.stdout.splitlines()
    assert base == sandbox.base_url + "/compatible-mode/v1" and native == sandbox.base_url + "/api/v1"
    assert "Authorization" in json.loads(headers.replace("'", '"'))
    assert not leaks(done.stdout + done.stderr, (sandbox.api_key[10:],))
