"""Install with the real installer (skills@1.7.4 on Node 22) and run the scripts from where an agent would."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SCRUB_PREFIXES

pytestmark = pytest.mark.slow   # end to end: seconds per test (selected with -m slow, run by default)

NPM_PINS = ("node@22.23.3", "skills@1.7.4")  # keep in step with tests/run.sh
NO_NETWORK = Path(__file__).with_name("no_network.cjs")
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@example.invalid"}


def documented_install() -> list:
    """The install command agent-compatibility.md documents (README.md links to it), as the arguments after
    ``npx skills add``."""
    section = (ROOT / "agent-compatibility.md").read_text().split("## Install\n", 1)[1]
    line = section.split("```", 2)[1].strip()
    assert line.startswith("npx skills add ") and "\n" not in line, line
    return shlex.split(line)[3:]


@pytest.fixture(scope="module")
def skills_cli() -> str:
    """The installer: from tests/run.sh (QWEN_SKILLS_CLI) or installed here from npm.

    ``QWEN_SKIP_INSTALLER_TESTS=1`` (a machine without npm; tests/run.sh says so) skips these tests,
    each with that reason in the report; nothing else skips them."""
    if os.environ.get("QWEN_SKIP_INSTALLER_TESTS"):
        pytest.skip("QWEN_SKIP_INSTALLER_TESTS is set: the real skills installer is not available here")
    path = os.environ.get("QWEN_SKILLS_CLI")
    if path and Path(path).exists():
        return path
    prefix = ROOT / ".venv" / "npm"
    local = prefix / "node_modules" / ".bin" / "skills"
    if not local.exists():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--save-exact", "--prefix",
                        str(prefix), *NPM_PINS], check=True, timeout=300)
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


@pytest.fixture(scope="module")
def release_mirror(source_repo, tmp_path_factory) -> Path:
    """GitHub, as far as git is concerned: ``<mirror>/QianWen-AI/qianwen-ops-auth.git`` is the source clone
    with its ``release`` branch built by release/build.py, as the release workflow publishes it."""
    src = Path(source_repo[len("file://"):])
    done = subprocess.run([sys.executable, str(src / "release" / "build.py"), "--branch", "release"], cwd=src,
                          env=dict(os.environ, **GIT_IDENTITY), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    mirror = tmp_path_factory.mktemp("github")
    (mirror / "QianWen-AI").mkdir()
    (mirror / "QianWen-AI" / "qianwen-ops-auth.git").symlink_to(src)
    return mirror


def install(cli: str, source: str, cwd: Path, home: Path, *args: str, mirror: Path | None = None) -> None:
    """Run the installer; the ``node`` next to it (the pinned Node 22) comes first on PATH. Its own web
    requests fail at once (tests/no_network.cjs). With ``mirror``, git clones ``https://github.com/...``
    from that folder instead (``url.<mirror>.insteadOf``), so ``owner/name#ref`` sources run offline."""
    path = os.pathsep.join([str(Path(cli).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, HOME=str(home), DISABLE_TELEMETRY="1", DO_NOT_TRACK="1", PATH=path,
               NODE_OPTIONS=f"--require={NO_NETWORK}")
    if mirror is not None:
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0=f"url.file://{mirror}/.insteadOf",
                   GIT_CONFIG_VALUE_0="https://github.com/")
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


def tree_digest(folder: Path) -> dict:
    """Every entry below ``folder`` (bytecode caches aside): file bytes, link targets, folders."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = "link:" + os.readlink(path)
        elif path.is_dir():
            found[name] = "dir"
        else:
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def clean_env(tmp: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_PREFIXES)}
    env.update(HOME=str(tmp / "home"), XDG_CACHE_HOME=str(tmp / "cache"), XDG_STATE_HOME=str(tmp / "state"),
               PYTHONDONTWRITEBYTECODE="1", QWEN_UPDATE_URL="http://127.0.0.1:9/v.json", LC_ALL="C.UTF-8")
    (tmp / "home").mkdir()
    return env


@pytest.fixture(scope="module")
def installed(skills_cli, release_mirror, tmp_path_factory, sandbox):
    """One install shared by this module, as agent-compatibility.md documents it: a fresh git project, claude-code +
    cursor, the key in its .env."""
    tmp = tmp_path_factory.mktemp("installed")
    project = tmp / "proj"
    (project / "src").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    env = clean_env(tmp)
    source, *args = documented_install()
    install(skills_cli, source, project, Path(env["HOME"]), *args, mirror=release_mirror)
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={sandbox.api_key}\n")
    os.chmod(project / ".env", 0o600)
    run_env = dict(env, QWEN_BASE_URL=sandbox.base_url)  # the endpoint from the environment, the key from .env
    ours = project / ".agents/skills/qianwen-ops-auth"
    return project, ours, run_env


WHERE = ["project root", "subfolder", ".agents skill folder", ".claude link", "skill scripts/"]


def place(project: Path, where: str) -> tuple:
    """(working directory, how an agent there names the scripts folder)."""
    link = project / ".claude/skills/qianwen-ops-auth"
    return {"project root": (project, Path(".agents/skills/qianwen-ops-auth/scripts")),
            "subfolder": (project / "src", link / "scripts"),
            ".agents skill folder": (project / ".agents/skills/qianwen-ops-auth", Path("scripts")),
            ".claude link": (link, Path("scripts")),
            "skill scripts/": (project / ".agents/skills/qianwen-ops-auth/scripts", Path("."))}[where]


def test_layout_the_installer_made(installed):
    project, ours, _ = installed
    sibling = project / ".agents/skills/qianwen-update-check"
    assert (ours / "SKILL.md").is_file() and (sibling / "SKILL.md").is_file()
    assert (project / ".claude/skills/qianwen-ops-auth").is_symlink()
    assert not (ours / ".env").exists() and not (ours / ".venv").exists()
    assert os.access(ours / "scripts" / "probe.py", os.X_OK)


def test_documented_install_holds_only_what_runs(installed):
    """README's command (the release branch): no tests, benchmarks, docs, sandbox, nested skill or key-shaped
    text; at most 60 files; what `pip install <skill folder>` needs (pyproject.toml, LICENSE) stays."""
    project, ours, _ = installed
    files = [p.relative_to(ours).as_posix() for p in ours.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len(files) <= 60, len(files)
    for gone in ("tests", "bench", "docs", "skills", "scripts/qianwen_sandbox", "scripts/sandbox.py", "scripts/demo.py",
                 "README.md", ".ci"):
        assert not (ours / gone).exists(), gone
    assert {"SKILL.md", "pyproject.toml", "LICENSE", ".gitignore", "references/company-networks.md"} <= set(files)
    key_shaped = re.compile(rb"sk-(?:sp-)?[A-Za-z0-9]{16,}|LTAI[A-Za-z0-9]{12,}")
    assert not [f for f in files if key_shaped.search((ours / f).read_bytes())]
    lock = json.loads((project / "skills-lock.json").read_text())["skills"]
    assert {name: (e["source"], e["ref"]) for name, e in lock.items()} == {
        "qianwen-ops-auth": ("QianWen-AI/qianwen-ops-auth", "release"),
        "qianwen-update-check": ("QianWen-AI/qianwen-ops-auth", "release")}


def evidence_folders(top: Path) -> list:
    return sorted(p for p in top.rglob("qianwen-ops-auth") if p.parent.name == "output")


def skill_digests(project: Path) -> tuple:
    agents = project / ".agents/skills"
    return tree_digest(agents / "qianwen-ops-auth"), tree_digest(agents / "qianwen-update-check")


@pytest.mark.parametrize("where", WHERE)
def test_every_script_sees_the_same_project_key_and_evidence(installed, where):
    project, _, env = installed
    before, before_env = skill_digests(project), (project / ".env").read_bytes()
    cwd, scripts = place(project, where)
    probe = run_installed(scripts / "probe.py", env=env, cwd=cwd)
    assert (probe.returncode, probe.stdout.strip()) == (0, "200"), probe.stderr
    doctor = run_installed(scripts / "doctor.py", "--json", env=env, cwd=cwd)
    data = json.loads(doctor.stdout)
    assert doctor.returncode == 0, data["checks"]
    assert (data["key_status"], data["key_source"]) == ("standard", str(project / ".env"))
    assert data["evidence_dir"] == str(project / "output" / "qianwen-ops-auth")
    gossamer = run_installed(scripts / "gossamer.py", "--status", env=env, cwd=cwd)
    status = json.loads(gossamer.stdout)
    assert status["update_check_installed"] is True
    assert status["state_file"] == str(project / ".agents" / "state.json")
    assert status["summary"].startswith(("never checked", "check failed"))
    dry = run_installed(scripts / "setup_env.py", "--dry-run", env=env, cwd=cwd)
    assert dry.returncode == 0 and "Traceback" not in dry.stderr
    assert skill_digests(project) == before and (project / ".env").read_bytes() == before_env
    evidence = project / "output" / "qianwen-ops-auth"
    assert evidence_folders(project) == [evidence] and any(evidence.iterdir())
    assert sorted(project.rglob(".env")) == [project / ".env"]


def test_setup_env_never_writes_into_the_skill_or_a_subfolder(installed, tmp_path):
    project = tmp_path / "proj"  # a copy of the install: this test writes, the shared one stays as installed
    shutil.copytree(installed[0], project, symlinks=True)
    env = installed[2]
    before = skill_digests(project)
    for where in WHERE:
        cwd, scripts = place(project, where)
        run_installed(scripts / "setup_env.py", env=env, cwd=cwd)
    assert skill_digests(project) == before
    assert sorted(project.rglob(".env")) == [project / ".env"]


def test_upload_update_check_and_library_from_the_project(installed):
    project, ours, env = installed
    sibling = project / ".agents/skills/qianwen-update-check"
    (project / "pic.png").write_bytes(b"\x89PNG installed copy")
    upload = run_installed(ours / "scripts" / "upload_file.py", "pic.png", "--model", "qwen-vl-plus",
                           env=env, cwd=project)
    assert upload.returncode == 0 and upload.stdout.startswith("oss://")
    check = run_installed(sibling / "scripts" / "check_update.py", "--print-response", env=env, cwd=project)
    assert check.returncode == 0 and json.loads(check.stdout)["has_update"] is False
    status = gossamer_status(ours, env, project / "src")
    assert status["last_check"]["outcome"] == "failed" and status["summary"].startswith("check failed: ")
    lib = subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from qianwen_ops import resolve_file, request_headers_for;"
        "u = resolve_file('pic.png', model='qwen-vl-plus'); print(u, request_headers_for([u]))"),
        str(ours / "scripts")], env=env, cwd=project, capture_output=True, text=True, timeout=60)
    assert lib.returncode == 0 and lib.stdout.startswith("oss://") and "X-DashScope-OssResourceResolve" in lib.stdout


def test_claude_code_only_copy(skills_cli, release_mirror, tmp_path, env):
    project = tmp_path / "proj"
    project.mkdir()
    install(skills_cli, "QianWen-AI/qianwen-ops-auth#release", project, Path(env["HOME"]), "--skill", "*", "-y",
            "-a", "claude-code", mirror=release_mirror)
    ours = project / ".claude/skills/qianwen-ops-auth"
    assert ours.is_dir() and not ours.is_symlink()
    status = gossamer_status(ours, env, ours)
    assert status["update_check_installed"] is True
    assert status["state_file"] == str(project / ".agents" / "state.json")
    doctor = run_installed(ours / "scripts" / "doctor.py", "--offline", "--json", env=env, cwd=ours / "scripts")
    assert json.loads(doctor.stdout)["evidence_dir"] == str(project / "output" / "qianwen-ops-auth")


def test_global_install(skills_cli, release_mirror, tmp_path, env):
    project, home = tmp_path / "proj", Path(env["HOME"])
    project.mkdir()
    install(skills_cli, "QianWen-AI/qianwen-ops-auth#release", project, home, "--skill", "*", "-y", "-g",
            "-a", "cursor", mirror=release_mirror)
    ours = home / ".agents/skills/qianwen-ops-auth"
    assert (ours / "SKILL.md").is_file() and not (project / ".agents").exists()
    status = gossamer_status(ours, env, project)
    assert status["update_check_installed"] is True
    assert status["state_file"] == str(home / ".agents" / "state.json")
    for cwd, expected in ((project, project), (ours, home)):  # a global install's own folder counts as home
        doctor = run_installed(ours / "scripts" / "doctor.py", "--offline", "--json", env=env, cwd=cwd)
        assert json.loads(doctor.stdout)["evidence_dir"] == str(expected / "output" / "qianwen-ops-auth")
    assert evidence_folders(home) == [home / "output" / "qianwen-ops-auth"]


def test_without_the_sibling_prompt_once_then_install_from_the_recorded_source(skills_cli, release_mirror,
                                                                               tmp_path, env):
    """Installed from a fork: the offer to install the update check names the source skills-lock.json
    records (not the default repository), and run exactly as printed it installs the sibling."""
    (release_mirror / "someone").mkdir(exist_ok=True)
    fork = release_mirror / "someone" / "qianwen-fork.git"
    if not fork.exists():
        fork.symlink_to(os.readlink(release_mirror / "QianWen-AI" / "qianwen-ops-auth.git"))
    project = tmp_path / "proj"
    project.mkdir()
    install(skills_cli, "someone/qianwen-fork#release", project, Path(env["HOME"]), "--skill", "qianwen-ops-auth",
            "-y", "-a", "claude-code", "-a", "cursor", mirror=release_mirror)
    ours = project / ".agents/skills/qianwen-ops-auth"
    assert not (project / ".agents/skills/qianwen-update-check").exists()
    status = gossamer_status(ours, env, project)
    assert status["update_check_installed"] is False and status["summary"].startswith("not installed")
    first = run_installed(ours / "scripts" / "gossamer.py", env=env, cwd=project)
    assert first.stdout.startswith("[ACTION_REQUIRED]") and first.returncode == 0
    run_installed(ours / "scripts" / "gossamer.py", "--dismiss", env=env, cwd=project)
    assert run_installed(ours / "scripts" / "gossamer.py", env=env, cwd=project).stdout == ""
    assert json.loads((project / ".agents" / "state.json").read_text())["never_install"] is False
    # "Install now", run as printed: the sibling lands next to this skill for the same two agents, from the
    # recorded fork, and no other agent's folder appears in the project
    offer = next(line for line in first.stdout.splitlines() if "Install now" in line)
    assert "(someone/qianwen-fork is from skills-lock.json, not the official QianWen-AI/qianwen-ops-auth" in offer
    command = offer[offer.index("npx skills add"):]
    assert command == "npx skills add someone/qianwen-fork#release --skill qianwen-update-check -a claude-code " \
                      "-a cursor -y"
    install(skills_cli, *shlex.split(command)[3:4], project, Path(env["HOME"]), *shlex.split(command)[4:],
            mirror=release_mirror)
    assert sorted(p.name for p in project.iterdir() if p.is_dir()) == [".agents", ".claude"]
    assert gossamer_status(ours, env, project)["update_check_installed"] is True


def test_scripts_leave_a_git_project_clean(skills_cli, release_mirror, tmp_path, env, sandbox):
    """Installed as documented and committed, then probe, doctor, upload_file and gossamer (which runs the
    sibling's check and writes the update state) without PYTHONDONTWRITEBYTECODE, as on a user's machine:
    `git status --porcelain` stays empty (evidence, state and bytecode caches each ignore themselves)."""
    project = tmp_path / "proj"
    project.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    source, *args = documented_install()
    install(skills_cli, source, project, Path(env["HOME"]), *args, mirror=release_mirror)
    (project / "pic.png").write_bytes(b"\x89PNG committed")
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "install the skills"], cwd=project, check=True)
    run_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run_env.update(QWEN_BASE_URL=sandbox.base_url, DASHSCOPE_API_KEY=sandbox.api_key)
    scripts = Path(".agents/skills/qianwen-ops-auth/scripts")
    for argv in (["probe.py"], ["doctor.py"], ["upload_file.py", "pic.png", "--model", "qwen-vl-plus"],
                 ["gossamer.py"], ["gossamer.py", "--dismiss"]):
        done = run_installed(scripts / argv[0], *argv[1:], env=run_env, cwd=project)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
    assert (project / ".agents" / "state.json").is_file() and (project / "output" / "qianwen-ops-auth").is_dir()
    assert list((project / ".agents/skills/qianwen-ops-auth").rglob("__pycache__"))  # written, and ignored
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=project,
                            capture_output=True, text=True, check=True)
    assert status.stdout == ""
