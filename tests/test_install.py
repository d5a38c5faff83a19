"""Install with the real installer (skills@1.5.18) and run the scripts from where it put them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, sandbox_env

SKILLS_VERSION = "1.5.18"


@pytest.fixture(scope="module")
def skills_cli(tmp_path_factory) -> str:
    """The installer: from tests/run.sh (QWEN_SKILLS_CLI) or installed here from npm."""
    path = os.environ.get("QWEN_SKILLS_CLI")
    if path and Path(path).exists():
        return path
    prefix = ROOT / ".venv" / "npm"
    local = prefix / "node_modules" / ".bin" / "skills"
    if not local.exists():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix),
                        f"skills@{SKILLS_VERSION}"], check=True, timeout=300)
    return str(local)


@pytest.fixture(scope="module")
def source_repo(tmp_path_factory) -> str:
    """A ``git clone`` of this checkout (as CI has it); with uncommitted work, a snapshot of the tree."""
    src = tmp_path_factory.mktemp("src") / "qianwen-ops-auth"
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.strip()
    if not dirty:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(src)], check=True)
        (src / ".env").write_text("DASHSCOPE_API_KEY=sk-untracked-must-not-travel\n")  # untracked: must not arrive
        return f"file://{src}"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        origin = ROOT / name
        if origin.is_file():
            target = src / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    (src / ".env").write_text("DASHSCOPE_API_KEY=sk-untracked-must-not-travel\n")  # git-ignored: must not arrive
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=src, check=True)
    subprocess.run([*git, "add", "-A"], cwd=src, check=True)
    subprocess.run([*git, "commit", "-qm", "snapshot"], cwd=src, check=True)
    return f"file://{src}"


def install(cli: str, source: str, cwd: Path, home: Path, *args: str) -> None:
    env = dict(os.environ, HOME=str(home), DISABLE_TELEMETRY="1", DO_NOT_TRACK="1")
    done = subprocess.run([cli, "add", source, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def run_installed(script: Path, *args: str, env: dict, cwd: Path):
    return subprocess.run([sys.executable, str(script), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def gossamer_status(skill: Path, env: dict, cwd: Path) -> dict:
    done = run_installed(skill / "scripts" / "gossamer.py", "--status", env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_full_depth_install_for_claude_code_and_cursor(skills_cli, source_repo, tmp_path, env, sb):
    project, home = tmp_path / "proj", Path(env["HOME"])
    project.mkdir()
    install(skills_cli, source_repo, project, home, "--full-depth", "--skill", "*", "-y",
            "-a", "claude-code", "-a", "cursor")
    ours, sibling = project / ".agents/skills/qianwen-ops-auth", project / ".agents/skills/qianwen-update-check"
    assert (ours / "SKILL.md").is_file() and (sibling / "SKILL.md").is_file()
    assert (project / ".claude/skills/qianwen-ops-auth").is_symlink()
    assert not (ours / ".env").exists() and not (ours / ".venv").exists()
    assert os.access(ours / "scripts" / "probe.py", os.X_OK)
    run_env = dict(sandbox_env(env, sb), QWEN_UPDATE_URL="http://127.0.0.1:9/v.json")
    for skill in (ours, project / ".claude/skills/qianwen-ops-auth"):
        probe = run_installed(skill / "scripts" / "probe.py", env=run_env, cwd=project)
        assert (probe.returncode, probe.stdout.strip()) == (0, "200")
        status = gossamer_status(skill, run_env, project)
        assert status["update_check_installed"] is True
        assert status["state_file"] == str(project / ".agents" / "state.json")
    assert (project / "output" / "qianwen-ops-auth").is_dir() and not (ours / "output" / "qianwen-ops-auth").exists()
    (project / "pic.png").write_bytes(b"\x89PNG installed copy")
    upload = run_installed(ours / "scripts" / "upload_file.py", "pic.png", "--model", "qwen-vl-plus",
                           env=run_env, cwd=project)
    assert upload.returncode == 0 and upload.stdout.startswith("oss://")
    check = run_installed(sibling / "scripts" / "check_update.py", "--print-response", env=run_env, cwd=project)
    assert check.returncode == 0 and json.loads(check.stdout)["has_update"] is False
    lib = subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from qianwen_ops import resolve_file, request_headers_for;"
        "u = resolve_file('pic.png', model='qwen-vl-plus'); print(u, request_headers_for([u]))"),
        str(ours / "scripts")], env=run_env, cwd=project, capture_output=True, text=True, timeout=60)
    assert lib.returncode == 0 and lib.stdout.startswith("oss://") and "X-DashScope-OssResourceResolve" in lib.stdout


def test_claude_code_only_copy(skills_cli, source_repo, tmp_path, env):
    project = tmp_path / "proj"
    project.mkdir()
    install(skills_cli, source_repo, project, Path(env["HOME"]), "--full-depth", "--skill", "*", "-y",
            "-a", "claude-code")
    ours = project / ".claude/skills/qianwen-ops-auth"
    assert ours.is_dir() and not ours.is_symlink()
    status = gossamer_status(ours, env, project)
    assert status["update_check_installed"] is True
    assert status["state_file"] == str(project / ".agents" / "state.json")


def test_global_install(skills_cli, source_repo, tmp_path, env):
    project, home = tmp_path / "proj", Path(env["HOME"])
    project.mkdir()
    install(skills_cli, source_repo, project, home, "--full-depth", "--skill", "*", "-y", "-g", "-a", "cursor")
    ours = home / ".agents/skills/qianwen-ops-auth"
    assert (ours / "SKILL.md").is_file() and not (project / ".agents").exists()
    status = gossamer_status(ours, env, project)
    assert status["update_check_installed"] is True
    assert status["state_file"] == str(home / ".agents" / "state.json")


def test_without_the_sibling_prompt_once_then_quiet(skills_cli, source_repo, tmp_path, env):
    project = tmp_path / "proj"
    project.mkdir()
    install(skills_cli, source_repo, project, Path(env["HOME"]), "--full-depth", "--skill", "qianwen-ops-auth", "-y",
            "-a", "claude-code", "-a", "cursor")
    ours = project / ".agents/skills/qianwen-ops-auth"
    assert not (project / ".agents/skills/qianwen-update-check").exists()
    assert gossamer_status(ours, env, project)["update_check_installed"] is False
    first = run_installed(ours / "scripts" / "gossamer.py", env=env, cwd=project)
    assert first.stdout.startswith("[ACTION_REQUIRED]") and first.returncode == 0
    run_installed(ours / "scripts" / "gossamer.py", "--dismiss", env=env, cwd=project)
    assert run_installed(ours / "scripts" / "gossamer.py", env=env, cwd=project).stdout == ""
    assert json.loads((project / ".agents" / "state.json").read_text())["never_install"] is False
