"""Where the user's project is (project.py), from every working directory and install layout, and which .git and
.env files are trusted (ownership.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import (
    CANARY_KEY,
    leaks,
    needs_posix_modes,
    needs_root,
    needs_symlinks,
    run_script,
)
from qianwen_ops import ownership
from qianwen_ops.credentials import NOT_SET, find_api_key
from qianwen_ops.project import find_project, locate
from qianwen_ops.settings import Settings

OTHER_UID = 65534  # "nobody": stands for another user (the tests run as root)
KEY = "sk-layout0123456789abcdef"


def installed(project_dir: Path, agent_dir: str = ".agents") -> Path:
    """A fake installed copy of this skill (no .git) at ``<project>/<agent_dir>/skills/qianwen-ops-auth``."""
    skill = project_dir / agent_dir / "skills" / "qianwen-ops-auth"
    (skill / "scripts" / "qianwen_ops").mkdir(parents=True)
    (skill / "skills" / "qianwen-update-check").mkdir(parents=True)  # the nested copy an install carries
    (skill / "SKILL.md").write_text("---\nname: qianwen-ops-auth\n---\n")
    return skill


def settings(cwd: Path, skill: Path, env: dict | None = None) -> Settings:
    return Settings(env=env or {}, cwd=cwd, home=cwd, skill_dir=skill)


@pytest.fixture
def layout(tmp_path):
    """A git project with the skill installed for claude-code + cursor: copy in .agents, link in .claude."""
    proj = tmp_path / "proj"
    (proj / ".git").mkdir(parents=True)
    (proj / "src" / "deep").mkdir(parents=True)
    skill = installed(proj)
    (proj / ".claude" / "skills").mkdir(parents=True)
    (proj / ".claude" / "skills" / "qianwen-ops-auth").symlink_to(Path("../../.agents/skills/qianwen-ops-auth"))
    (proj / ".env").write_text(f"DASHSCOPE_API_KEY={KEY}\n")
    os.chmod(proj / ".env", 0o600)
    return proj, skill


def every_cwd(proj: Path, skill: Path) -> list:
    link = proj / ".claude" / "skills" / "qianwen-ops-auth"
    return [proj, proj / "src", proj / "src" / "deep", skill, skill / "scripts", skill / "scripts" / "qianwen_ops",
            skill / "skills" / "qianwen-update-check", link, link / "scripts"]


@needs_symlinks
def test_every_working_directory_sees_the_same_project_and_key(layout):
    proj, skill = layout
    (skill / ".env").write_text("DASHSCOPE_API_KEY=sk-inside-the-skill-never-read\n")
    (skill / "scripts" / ".env").write_text("DASHSCOPE_API_KEY=sk-inside-the-skill-never-read\n")
    link = proj / ".claude" / "skills" / "qianwen-ops-auth"
    for skill_dir in (skill, link):  # the scripts may be started through either path
        for cwd in every_cwd(proj, skill):
            found = settings(cwd, skill_dir)
            assert found.project_root == proj, cwd
            assert all(skill not in p.parents for p in found.dotenv_paths()), cwd
            key = find_api_key(found)
            assert (key.secret.reveal(), key.source) == (KEY, str(proj / ".env")), cwd


def test_claude_code_only_install_and_nested_sibling(tmp_path):
    proj = tmp_path / "proj"
    (proj / ".git").mkdir(parents=True)
    skill = installed(proj, ".claude")
    for cwd in (skill, skill / "scripts", skill / "skills" / "qianwen-update-check"):
        assert find_project(cwd, skill_dir=skill) == proj


def test_install_in_a_folder_without_git_is_that_folder(tmp_path):
    proj = tmp_path / "plain"
    skill = installed(proj, ".cursor")
    assert find_project(skill / "scripts", skill_dir=skill) == proj
    assert find_project(proj, skill_dir=skill) == proj


def test_global_install_counts_home_as_the_project_only_from_inside_it(tmp_path):
    home, proj = tmp_path / "home", tmp_path / "proj"
    skill = installed(home)
    (proj / ".git").mkdir(parents=True)
    assert find_project(skill / "scripts", skill_dir=skill) == home
    assert find_project(proj, skill_dir=skill) == proj


def test_git_checkout_keeps_the_cwd_then_root_chain(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / ".git").write_text("gitdir: /elsewhere/worktrees/x\n")  # a worktree marker is a file
    (checkout / "skills" / "qianwen-update-check").mkdir(parents=True)
    (checkout / ".env").write_text("DASHSCOPE_API_KEY=sk-rootlevel01\n")
    sub = checkout / "skills" / "qianwen-update-check"
    assert locate(sub, checkout).project == checkout  # skills/ is no marker; the checkout is not an install
    assert find_api_key(settings(checkout / "scripts", checkout)).source == str(checkout / ".env")
    (checkout / "scripts" / ".env").write_text("DASHSCOPE_API_KEY=sk-cwdlevel01\n")
    assert find_api_key(settings(checkout / "scripts", checkout)).source == str(checkout / "scripts" / ".env")
    assert settings(checkout / "scripts", checkout).dotenv_paths() == [checkout / "scripts" / ".env",
                                                                       checkout / ".env"]


def test_no_git_anywhere_means_the_working_directory(tmp_path):
    (tmp_path / "skills").mkdir()
    (tmp_path / "a").mkdir()
    assert find_project(tmp_path / "a", skill_dir=tmp_path / "elsewhere") == tmp_path / "a"


# ------------------------------------------------------------------ trust (git's safe.directory model)

@needs_root
def test_dotenv_owned_by_another_user_is_ignored_once_with_a_warning(tmp_path, capfd):
    (tmp_path / ".git").mkdir()
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"DASHSCOPE_API_KEY={KEY}\n")
    os.chown(dotenv, OTHER_UID, -1)
    for _ in range(2):
        assert find_api_key(settings(tmp_path, tmp_path / "x")).status == NOT_SET
    err = capfd.readouterr().err
    assert err == f"warning: ignoring {dotenv}: owned by another user\n"


@needs_posix_modes
def test_dotenv_in_a_folder_others_can_write_is_ignored(tmp_path, capfd):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # noqa: S103 - a /tmp-like folder is the point
    (shared / ".env").write_text(f"DASHSCOPE_API_KEY={KEY}\n")
    assert find_api_key(settings(shared, tmp_path / "x")).status == NOT_SET
    err = capfd.readouterr().err
    assert err == f"warning: ignoring {shared / '.env'}: its folder {shared} is writable by other users\n"
    os.chmod(shared, 0o700)
    ownership._warned.clear()
    assert find_api_key(settings(shared, tmp_path / "x")).secret.reveal() == KEY


@needs_root
@needs_symlinks
def test_dotenv_linking_to_another_users_file_is_ignored(tmp_path):
    victim = tmp_path / "theirs.env"
    victim.write_text(f"DASHSCOPE_API_KEY={KEY}\n")
    os.chown(victim, OTHER_UID, -1)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / ".env").symlink_to(victim)
    assert find_api_key(settings(tmp_path / "proj", tmp_path / "x")).status == NOT_SET


@needs_posix_modes
def test_git_marker_and_dotenv_in_a_shared_folder_do_not_capture_projects_below(tmp_path, capfd):
    shared = tmp_path / "tmp"
    work = shared / "alice" / "work"
    work.mkdir(parents=True)
    os.chmod(shared, 0o1777)  # noqa: S103 - a /tmp-like folder is the point
    (shared / ".git").mkdir()
    (shared / ".env").write_text("DASHSCOPE_API_KEY=sk-planted01\nQWEN_BASE_URL=http://127.0.0.1:9\n")
    found = settings(work, tmp_path / "x")
    assert found.project_root == work and find_api_key(found).status == NOT_SET
    err = capfd.readouterr().err
    assert f"warning: ignoring {shared / '.git'}: its folder {shared} is writable by other users" in err


@needs_root
def test_git_marker_owned_by_another_user_is_skipped_and_the_search_goes_on(tmp_path):
    outer = tmp_path / "outer"
    inner = outer / "inner" / "sub"
    inner.mkdir(parents=True)
    (outer / ".git").mkdir()
    (outer / "inner" / ".git").mkdir()
    os.chown(outer / "inner" / ".git", OTHER_UID, -1)
    assert find_project(inner, skill_dir=tmp_path / "x") == outer
    os.chown(outer / "inner", OTHER_UID, -1)  # a folder owned by someone else: its marker is not used either
    os.chown(outer / "inner" / ".git", 0, -1)
    assert find_project(inner, skill_dir=tmp_path / "x") == outer


@needs_posix_modes
def test_planted_shared_folder_redirects_neither_key_nor_endpoint(tmp_path, env, sb):
    shared = tmp_path / "shared"
    work = shared / "work"
    work.mkdir(parents=True)
    os.chmod(shared, 0o1777)  # noqa: S103 - a /tmp-like folder is the point
    (shared / ".git").mkdir()
    (shared / ".env").write_text(f"DASHSCOPE_API_KEY={sb.api_key}\nQWEN_BASE_URL={sb.base_url}\n")
    before = sb.counts()
    probe = run_script("probe.py", env=env, cwd=work)  # the planted key is not used
    assert probe.code == 3 and "warning: ignoring" in probe.err and "Traceback" not in probe.err
    doctor = run_script("doctor.py", "--offline", "--json", env=dict(env, DASHSCOPE_API_KEY=CANARY_KEY), cwd=work)
    data = json.loads(doctor.out)  # the user's own key would go to the documented host, not the planted one
    assert (data["key_source"], data["endpoint_host"]) == ("env:DASHSCOPE_API_KEY", "dashscope.aliyuncs.com")
    assert sb.counts() == before and leaks(doctor.out + doctor.err) == []


# ------------------------------------------------------------------ doctor's project findings
