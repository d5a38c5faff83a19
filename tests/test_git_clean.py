"""Running the scripts in a git project leaves nothing untracked the user did not ask for.

The evidence folder ignores itself (a ``.gitignore`` holding ``*``, written when the folder is
created); the update state hides itself (tests/test_update_check.py); bytecode caches in an
installed copy are ignored by the skill's own ``.gitignore`` (tests/test_install.py runs the
documented install, commits it, and checks ``git status`` after every script).
"""

from __future__ import annotations

import subprocess

from conftest import run_script, sandbox_env


def untracked(project) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=project,
                          capture_output=True, text=True, check=True).stdout


def test_probe_doctor_upload_and_gossamer_leave_git_status_empty(sb, env, project):
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    (project / "pic.png").write_bytes(b"\x89PNG tracked")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=project, check=True)
    run_env = sandbox_env(env, sb)
    for argv in (["probe.py"], ["doctor.py"], ["doctor.py", "--offline", "--json"], ["gossamer.py"],
                 ["upload_file.py", "pic.png", "--model", "qwen-vl-plus"], ["gossamer.py", "--dismiss"]):
        result = run_script(*argv, env=run_env, cwd=project)
        assert result.code == 0, (argv, result.err)
    evidence = project / "output" / "qianwen-ops-auth"
    assert len(list(evidence.glob("*.json"))) >= 3
    assert (evidence / ".gitignore").read_text().splitlines()[-1] == "*"
    assert untracked(project) == ""


def test_an_existing_evidence_folder_is_left_as_the_user_keeps_it(sb, env, project):
    """Someone who deleted the .gitignore to commit their evidence keeps it that way."""
    evidence = project / "output" / "qianwen-ops-auth"
    evidence.mkdir(parents=True)
    assert run_script("probe.py", env=sandbox_env(env, sb), cwd=project).code == 0
    assert list(evidence.glob("probe-*.json")) and not (evidence / ".gitignore").exists()
