"""Where the user's project is (project.py), trust of .git/.env, evidence writes, doctor's project findings."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import (
    CANARY_KEY,
    leaks,
    needs_fifo,
    needs_posix_modes,
    needs_root,
    needs_symlinks,
    run_script,
    sandbox_env,
)
from qianwen_ops import evidence, project
from qianwen_ops.credentials import NOT_SET, find_api_key
from qianwen_ops.project import find_project, locate, project_findings
from qianwen_ops.redaction import remember
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
        assert find_project(cwd, {}, skill) == proj


def test_install_in_a_folder_without_git_is_that_folder(tmp_path):
    proj = tmp_path / "plain"
    skill = installed(proj, ".cursor")
    assert find_project(skill / "scripts", {}, skill) == proj
    assert find_project(proj, {}, skill) == proj


def test_global_install_counts_home_as_the_project_only_from_inside_it(tmp_path):
    home, proj = tmp_path / "home", tmp_path / "proj"
    skill = installed(home)
    (proj / ".git").mkdir(parents=True)
    assert find_project(skill / "scripts", {"HOME": str(home)}, skill) == home
    assert find_project(proj, {"HOME": str(home)}, skill) == proj


def test_git_checkout_keeps_the_cwd_then_root_chain(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    (checkout / ".git").write_text("gitdir: /elsewhere/worktrees/x\n")  # a worktree marker is a file
    (checkout / "skills" / "qianwen-update-check").mkdir(parents=True)
    (checkout / ".env").write_text("DASHSCOPE_API_KEY=sk-rootlevel01\n")
    sub = checkout / "skills" / "qianwen-update-check"
    assert locate(sub, {}, checkout).project == checkout  # skills/ is no marker; the checkout is not an install
    assert find_api_key(settings(checkout / "scripts", checkout)).source == str(checkout / ".env")
    (checkout / "scripts" / ".env").write_text("DASHSCOPE_API_KEY=sk-cwdlevel01\n")
    assert find_api_key(settings(checkout / "scripts", checkout)).source == str(checkout / "scripts" / ".env")
    assert settings(checkout / "scripts", checkout).dotenv_paths() == [checkout / "scripts" / ".env",
                                                                       checkout / ".env"]


def test_no_git_anywhere_means_the_working_directory(tmp_path):
    (tmp_path / "skills").mkdir()
    (tmp_path / "a").mkdir()
    assert find_project(tmp_path / "a", {}, tmp_path / "elsewhere") == tmp_path / "a"


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
    project._warned.clear()
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
    assert find_project(inner, {}, tmp_path / "x") == outer
    os.chown(outer / "inner", OTHER_UID, -1)  # a folder owned by someone else: its marker is not used either
    os.chown(outer / "inner" / ".git", 0, -1)
    assert find_project(inner, {}, tmp_path / "x") == outer


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


# ------------------------------------------------------------------ evidence

def test_evidence_goes_to_the_project_root_from_a_subfolder(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "a" / "b").mkdir(parents=True)
    path = evidence.write_record("probe", {"status": 200}, cwd=tmp_path / "a" / "b")
    assert path is not None and path.parent == tmp_path / "output" / "qianwen-ops-auth"
    assert evidence.evidence_dir(tmp_path / "a") == tmp_path / "output" / "qianwen-ops-auth"


@needs_symlinks
def test_evidence_never_writes_through_a_link(tmp_path):
    folder = tmp_path / "output" / "qianwen-ops-auth"
    folder.mkdir(parents=True)
    rc_file = tmp_path / "bashrc"
    rc_file.write_text("# mine\n")
    (folder / "uploads.jsonl").symlink_to(rc_file)
    assert evidence.append_records("uploads", [{"source": "$(touch /tmp/pwned).png"}], cwd=tmp_path) is None
    assert rc_file.read_text() == "# mine\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "p2" / "output").mkdir(parents=True)
    (tmp_path / "p2" / "output" / "qianwen-ops-auth").symlink_to(elsewhere)
    assert evidence.write_record("probe", {"status": 200}, cwd=tmp_path / "p2") is None
    assert evidence.append_records("uploads", [{"source": "a"}], cwd=tmp_path / "p2") is None
    assert list(elsewhere.iterdir()) == []


@needs_fifo
def test_evidence_into_a_fifo_is_skipped_without_blocking(tmp_path):
    folder = tmp_path / "output" / "qianwen-ops-auth"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "uploads.jsonl")
    results = []
    worker = threading.Thread(target=lambda: results.append(
        evidence.append_records("uploads", [{"source": "a"}], cwd=tmp_path)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive() and results == [None]
    assert stat.S_ISFIFO(os.lstat(folder / "uploads.jsonl").st_mode)


def test_every_string_in_evidence_is_redacted(tmp_path):
    remember(CANARY_KEY)
    record = {"error_message": f"server said {CANARY_KEY}", "request_id": CANARY_KEY[3:],
              "checks": [{"name": "probe", "detail": f"echo {CANARY_KEY}"}], "not_allowed": CANARY_KEY}
    path = evidence.write_record("doctor", record, cwd=tmp_path)
    lines = evidence.append_records("uploads", [record], cwd=tmp_path)
    text = path.read_text() + lines.read_text()
    assert leaks(text) == [] and "<redacted>" in text and "not_allowed" not in text


def test_a_thousand_clean_records_cost_one_scan_and_a_secret_among_them_is_still_redacted(tmp_path, monkeypatch):
    """Evidence of a large batch: one scan of all its text decides; ``redact`` runs per field only when
    that scan finds something, and then every field still goes through it."""
    remember(CANARY_KEY)
    calls = []
    real_redact = evidence.redact
    monkeypatch.setattr(evidence, "redact", lambda text: calls.append(text) or real_redact(text))
    batch = [{"source": f"pics/f{i:04d}.png", "url": f"oss://b/dir/{i:012x}_f{i:04d}.png", "bytes": 1024,
              "expires_at": 1.5e9, "backend": "temp-storage", "sha256": "ab" * 32, "model": "qwen-vl-plus"}
             for i in range(1000)]
    evidence.append_records("uploads", batch, cwd=tmp_path)
    assert calls == []
    batch[500] = dict(batch[500], source=f"pics/{CANARY_KEY[4:16]}.png")
    path = evidence.append_records("uploads", batch, cwd=tmp_path)
    text = path.read_text()
    assert leaks(text) == [] and text.count("<redacted>") == 1 and len(calls) >= 1000


def test_a_sha256_the_program_computed_is_never_redacted(tmp_path):
    """A hex digest can share six characters with a hex key by chance; it holds no secret and must stay whole."""
    key = "sk-" + "0123456789abcdef" * 2
    remember(key)
    digest = "f" * 30 + "456789" + "e" * 28
    path = evidence.append_records("uploads", [{"source": "a.png", "sha256": digest}], cwd=tmp_path)
    assert json.loads(path.read_text())["sha256"] == digest
    path = evidence.write_record("probe", {"sha256": digest}, cwd=tmp_path)
    assert json.loads(path.read_text())["sha256"] == digest


def test_uploads_log_is_rotated_so_it_cannot_grow_without_bound(tmp_path, monkeypatch):
    assert evidence.ROTATE_BYTES == 1024 * 1024
    monkeypatch.setattr(evidence, "ROTATE_BYTES", 4096)
    batch = [{"source": f"file-{i:04d}.png", "url": "oss://x/" + "y" * 100} for i in range(10)]
    for _ in range(30):
        path = evidence.append_records("uploads", batch, cwd=tmp_path)
    rotated = path.with_name("uploads.1.jsonl")
    batch_bytes = 10 * 200
    assert rotated.stat().st_size >= 4096 and path.stat().st_size < 4096 + batch_bytes
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == ["uploads.1.jsonl",
                                                                                           "uploads.jsonl"]
    for line in (path.read_text() + rotated.read_text()).splitlines():
        assert json.loads(line)["kind"] == "uploads"


# ------------------------------------------------------------------ doctor's project findings

def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd, check=True,
                   capture_output=True)


def findings(cwd: Path) -> dict:
    return {name: (state, detail) for name, state, detail in project_findings(settings(cwd, cwd / "x"))}


@needs_posix_modes
def test_findings_dotenv_not_ignored_tracked_and_readable_by_others(tmp_path):
    git(tmp_path, "init", "-q")
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\n")
    os.chmod(dotenv, 0o644)
    found = findings(tmp_path)
    assert found["project"][0] == "info" and str(tmp_path) in found["project"][1]
    assert found[".env in git"][0] == "warn" and "not ignored" in found[".env in git"][1]
    assert found[".env permissions"] == ("warn", f"{dotenv} is readable by other users (mode 644); "
                                                 f"run: chmod 600 {dotenv}")
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o644  # reported, never fixed unasked
    (tmp_path / ".gitignore").write_text(".env\n")
    os.chmod(dotenv, 0o600)
    found = findings(tmp_path)
    assert ".env in git" not in found and ".env permissions" not in found
    git(tmp_path, "add", "-f", ".env")
    assert "tracked by git" in findings(tmp_path)[".env in git"][1]
    assert all(leaks(detail) == [] for _, detail in findings(tmp_path).values())


@needs_posix_modes
def test_doctor_reports_findings_without_values(tmp_path, env, project):
    git(project, "init", "-q")
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\n")
    os.chmod(project / ".env", 0o640)
    result = run_script("doctor.py", "--offline", "--json", env=env, cwd=project)
    data = json.loads(result.out)
    names = {check["name"]: check for check in data["checks"]}
    assert names[".env permissions"]["status"] == "warn" and "chmod 600" in names[".env permissions"]["detail"]
    assert names[".env in git"]["status"] == "warn"
    assert data["evidence_dir"] == str(project / "output" / "qianwen-ops-auth")
    assert leaks(result.out + result.err) == [] and result.code == 0


def test_evidence_of_a_script_run_from_a_subfolder_lands_in_the_project(sb, env, project):
    (project / ".git").mkdir()
    (project / "src").mkdir()
    result = run_script("probe.py", env=sandbox_env(env, sb), cwd=project / "src")
    assert result.code == 0
    assert any((project / "output" / "qianwen-ops-auth").iterdir()) and not (project / "src" / "output").exists()


def test_evidence_keeps_undecodable_names_escaped(tmp_path):
    """A file name that is not UTF-8 (a surrogate after os.fsdecode) is saved escaped, never a crash."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    one = evidence.write_record("probe", {"error": "bad \udcff name"}, cwd=tmp_path)
    many = evidence.append_records("uploads", [{"source": "x\udcffy"}], cwd=tmp_path)
    assert one is not None and many is not None
    assert "\\udcff" in one.read_text() and "\\udcff" in many.read_text()
