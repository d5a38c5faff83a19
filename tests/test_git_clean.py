"""Running the scripts in a git project leaves nothing untracked the user did not ask for.

The evidence folder ignores itself (a ``.gitignore`` holding ``*``, written whenever the folder has
none); the update state hides itself (tests/test_update_check.py; ``.git/info/exclude`` when
``.agents/.gitignore`` is the user's); bytecode caches in an
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


def test_an_existing_evidence_folder_without_a_gitignore_gets_one(sb, env, project):
    """The folder was there already (a tracked placeholder, an older run): the records still stay out of git."""
    evidence = project / "output" / "qianwen-ops-auth"
    evidence.mkdir(parents=True)
    (evidence / "README.md").write_text("evidence from our runs lands here\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=project, check=True)
    assert run_script("probe.py", env=sandbox_env(env, sb), cwd=project).code == 0
    assert list(evidence.glob("probe-*.json")) and (evidence / ".gitignore").read_text().splitlines()[-1] == "*"
    assert untracked(project) == ""


def test_a_gitignore_of_the_users_own_is_how_to_commit_records(sb, env, project):
    """Documented opt-out: a .gitignore of one's own in the folder (even empty) is never replaced."""
    evidence = project / "output" / "qianwen-ops-auth"
    evidence.mkdir(parents=True)
    (evidence / ".gitignore").write_text("")
    assert run_script("probe.py", env=sandbox_env(env, sb), cwd=project).code == 0
    assert list(evidence.glob("probe-*.json")) and (evidence / ".gitignore").read_text() == ""


def test_a_users_agents_gitignore_and_an_old_evidence_folder_leave_git_status_empty(sb, env, project):
    """Red-team finding: a project with its own .agents/.gitignore and an existing evidence folder."""
    (project / ".agents" / "skills").mkdir(parents=True)
    (project / ".agents" / ".gitignore").write_text("# the team's own rules\n/cache/\n")
    (project / "output" / "qianwen-ops-auth").mkdir(parents=True)
    (project / "output" / "qianwen-ops-auth" / "README.md").write_text("evidence lands here\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=project, check=True)
    run_env = {k: v for k, v in sandbox_env(env, sb).items() if k != "QWEN_SKILLS_STATE"}
    run_env["QWEN_SKILLS_STATE"] = str(project / ".agents" / "state.json")
    for argv in (["doctor.py", "--offline"], ["gossamer.py", "--dismiss"]):
        assert run_script(*argv, env=run_env, cwd=project).code == 0, argv
    assert (project / ".agents" / "state.json").exists() and untracked(project) == ""
    assert (project / ".agents" / ".gitignore").read_text() == "# the team's own rules\n/cache/\n"
