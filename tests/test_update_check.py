"""check_update.py and gossamer.py: version server on 127.0.0.1, injectable clock, shared state."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, UPDATE_SKILL, run_script

sys.path.insert(0, str(UPDATE_SKILL / "scripts"))
import check_update  # noqa: E402

DAY = 24 * 3600
BARE = [sys.executable, "-S"]  # no site-packages: proves the scripts are stdlib only


class VersionServer:
    """Serves whatever ``reply`` says: (status, body bytes, delay seconds)."""

    def __init__(self):
        self.reply = (200, b"{}", 0.0)
        self.hits = 0
        outer = self
        self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits += 1
                status, body, delay = outer.reply
                if delay:
                    outer.release.wait(delay)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/version.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def version(self, version: str, info: str = "new things"):
        self.reply = (200, json.dumps({"version": version, "name": "qianwen-ops-auth", "released": "2026-12-01",
                                       "info": info}).encode(), 0.0)

    def close(self):
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def server():
    srv = VersionServer()
    yield srv
    srv.close()


@pytest.fixture
def uenv(env, tmp_path, server):
    return dict(env, QWEN_UPDATE_URL=server.url, QWEN_SKILLS_STATE=str(tmp_path / "state.json"),
                QWEN_SKILLS_NOW="1800000000")


def check(uenv, cwd, *args, now=None):
    run_env = dict(uenv, QWEN_SKILLS_NOW=str(now)) if now else uenv
    result = run_script("check_update.py", "--print-response", *args, env=run_env, cwd=cwd, python=BARE)
    assert result.code == 0 and "Traceback" not in result.err
    return json.loads(result.out)


CURRENT = json.loads((UPDATE_SKILL / "version.json").read_text())["version"]


def bump(version: str) -> str:
    major, minor, patch = map(int, version.split("-")[0].split("."))
    return f"{major}.{minor + 1}.0"


def test_newer_same_and_older(server, uenv, project):
    server.version(bump(CURRENT))
    result = check(uenv, project, "--force")
    assert result["has_update"] is True and result["latest"] == bump(CURRENT) and result["info"] == "new things"
    assert set(result) >= {"has_update", "current", "latest", "info", "checked_at"} and "error" not in result
    server.version(CURRENT)
    assert check(uenv, project, "--force")["has_update"] is False
    server.version("0.0.1")
    assert check(uenv, project, "--force")["has_update"] is False


@pytest.mark.parametrize("reply,word", [
    ((200, b"{not json", 0.0), "malformed"), ((404, b"nope", 0.0), "HTTP 404"),
    ((200, b'{"version": "banana"}', 0.0), "malformed"), ((200, b"[]", 0.0), "malformed"),
    ((200, b"{}", 3.0), "timed out"),
])
def test_failures_never_block(server, uenv, project, reply, word):
    server.reply = reply
    result = check(dict(uenv, QWEN_UPDATE_TIMEOUT="0.5"), project, "--force")
    assert result["has_update"] is False and word in result["error"]


def test_server_down(uenv, project):
    result = check(dict(uenv, QWEN_UPDATE_URL="http://127.0.0.1:9/v.json"), project)
    assert result["has_update"] is False and "cannot reach" in result["error"]


def test_checks_at_most_once_per_day(server, uenv, project):
    server.version(bump(CURRENT))
    start = 1_800_000_000
    assert check(uenv, project, now=start)["has_update"] is True and server.hits == 1
    server.version(CURRENT)
    cached = check(uenv, project, now=start + DAY - 1)
    assert server.hits == 1 and cached["has_update"] is True and cached["checked_at"] == start
    assert check(uenv, project, "--force", now=start + DAY - 1)["has_update"] is False and server.hits == 2
    assert check(uenv, project, now=start + 2 * DAY)["has_update"] is False and server.hits == 3


@pytest.mark.parametrize("a,b", [("1.10.0", "1.9.0"), ("1.0.0", "1.0.0-rc.1"), ("1.0.0-rc.2", "1.0.0-rc.1"),
                                 ("1.0.0-rc.10", "1.0.0-rc.9"), ("1.0.0-beta", "1.0.0-alpha"),
                                 ("2.0.0", "1.99.99"), ("v1.2.3", "1.2.2"), ("1.0.0-alpha.beta", "1.0.0-alpha.1")])
def test_version_order(a, b):
    assert check_update.parse_version(a) > check_update.parse_version(b)


def test_default_url_uses_repo_setting():
    url = check_update.update_url({"QWEN_SKILLS_REPO": "someone/fork"})
    assert url.startswith("https://") and "someone/fork" in url
    assert "QianWen-AI/qianwen-ops-auth" in check_update.update_url({"QWEN_SKILLS_REPO": "not a repo"})


# ------------------------------------------------------------------ gossamer

def gossamer(uenv, cwd, *args, script_dir=SCRIPTS):
    result = subprocess.run([*BARE, str(script_dir / "gossamer.py"), *args], env=uenv, cwd=cwd,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    return result.stdout


def lone_copy(tmp_path) -> Path:
    """Our skill without its sibling (as a single-skill install would leave it)."""
    target = tmp_path / "lone" / "qianwen-ops-auth"
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(".git", ".venv", "skills", "__pycache__", "output",
                                                                 ".hypothesis", "tests", "bench"))
    return target / "scripts"


def test_dismiss_never_and_status_across_processes(uenv, tmp_path, project):
    scripts = lone_copy(tmp_path)
    status = json.loads(gossamer(uenv, project, "--status", script_dir=scripts))
    assert status["update_check_installed"] is False and status["suppressed"] is False
    assert status["state_file"] == uenv["QWEN_SKILLS_STATE"]
    prompt = gossamer(uenv, project, script_dir=scripts)
    assert prompt.startswith("[ACTION_REQUIRED]")
    assert "npx skills add QianWen-AI/qianwen-ops-auth --full-depth --skill qianwen-update-check -y" in prompt
    assert "Install now" in prompt and "Skip for now" in prompt and "Never remind me" in prompt
    gossamer(uenv, project, "--dismiss", script_dir=scripts)
    assert gossamer(uenv, project, script_dir=scripts) == ""
    status = json.loads(gossamer(uenv, project, "--status", script_dir=scripts))
    assert status["suppressed"] and status["reason"] == "dismissed" and status["next_prompt_at"] == 1_800_000_000 + DAY
    later = dict(uenv, QWEN_SKILLS_NOW=str(1_800_000_000 + DAY + 1))
    assert gossamer(later, project, script_dir=scripts).startswith("[ACTION_REQUIRED]")
    gossamer(later, project, "--never-install", script_dir=scripts)
    much_later = dict(uenv, QWEN_SKILLS_NOW=str(1_800_000_000 + 400 * DAY))
    assert gossamer(much_later, project, script_dir=scripts) == ""
    status = json.loads(gossamer(much_later, project, "--status", script_dir=scripts))
    assert status["reason"] == "never_install" and status["next_prompt_at"] is None
    state = json.loads(Path(uenv["QWEN_SKILLS_STATE"]).read_text())
    assert state["never_install"] is True and state["last_interaction"] == 1_800_000_000


def test_update_available_line_when_sibling_installed(server, uenv, project):
    server.version(bump(CURRENT), "faster uploads")
    out = gossamer(uenv, project)
    assert out.startswith("[UPDATE_AVAILABLE]") and bump(CURRENT) in out and "faster uploads" in out
    assert "npx skills add QianWen-AI/qianwen-ops-auth --full-depth" in out
    assert gossamer(uenv, project) == ""  # checked moments ago: quiet for a day


def test_corrupt_state_is_recovered(uenv, tmp_path, project):
    state = Path(uenv["QWEN_SKILLS_STATE"])
    for junk in (b"", b"{broken", b"[1, 2]", b"\x00\xff"):
        state.write_bytes(junk)
        status = json.loads(gossamer(uenv, project, "--status"))
        assert status["suppressed"] is False
        gossamer(uenv, project, "--dismiss")
        assert json.loads(state.read_text())["last_interaction"] == 1_800_000_000


def test_concurrent_writers_never_corrupt(uenv, project):
    procs = [subprocess.Popen([*BARE, str(SCRIPTS / "gossamer.py"), flag], env=uenv, cwd=project,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for flag in ["--dismiss", "--never-install"] * 6]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    state = json.loads(Path(uenv["QWEN_SKILLS_STATE"]).read_text())
    assert state["never_install"] is True and state["last_interaction"] == 1_800_000_000


def test_state_location_rules(tmp_path):
    sys.path.insert(0, str(SCRIPTS))
    from qianwen_ops.skill_state import state_path

    project = tmp_path / "p"
    agents_skill = project / ".agents" / "skills" / "qianwen-ops-auth"
    claude_skill = project / ".claude" / "skills" / "qianwen-ops-auth"
    loose = tmp_path / "checkout"
    for folder in (agents_skill, claude_skill, loose):
        folder.mkdir(parents=True)
    env = {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "xdg")}
    assert state_path(agents_skill, env) == project / ".agents" / "state.json"
    assert state_path(claude_skill, env) == project / ".agents" / "state.json"
    assert state_path(loose, env) == tmp_path / "xdg" / "qianwen-ai" / "state.json"
    assert state_path(loose, {"HOME": str(tmp_path / "home")}) == tmp_path / "home/.local/state/qianwen-ai/state.json"
    assert state_path(loose, dict(env, QWEN_SKILLS_STATE=str(tmp_path / "s.json"))) == tmp_path / "s.json"


def test_state_module_copies_are_identical():
    assert filecmp.cmp(SCRIPTS / "qianwen_ops" / "skill_state.py", UPDATE_SKILL / "scripts" / "skill_state.py",
                       shallow=False)
