"""The post-task update prompt: find the sibling update-check skill, run it, or offer it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from .skill_state import (
    MAIN_SKILL,
    UPDATE_SKILL,
    ancestors,
    now_seconds,
    read_state,
    repo_name,
    state_path,
    suppression,
    update_state,
)

SKILL_DIR = Path(__file__).resolve().parents[2]
CHECK_TIMEOUT_SECONDS = 10


def find_update_skill(skill_dir: Path = SKILL_DIR, env: Mapping[str, str] | None = None) -> Path | None:
    """The sibling skill's folder in any layout the installer produces, or a git checkout."""
    env = os.environ if env is None else env
    candidates = []
    for base in (Path(os.path.abspath(skill_dir)), skill_dir.resolve()):
        candidates.append(base.parent / UPDATE_SKILL)
        if (base / ".git").exists():  # a git checkout carries the sibling under skills/;
            candidates.append(base / "skills" / UPDATE_SKILL)  # an installed copy's nested one does not count
    for folder in ancestors(skill_dir):
        candidates += [folder / ".agents" / "skills" / UPDATE_SKILL, folder / ".claude" / "skills" / UPDATE_SKILL]
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    candidates += [home / ".agents" / "skills" / UPDATE_SKILL, home / ".claude" / "skills" / UPDATE_SKILL]
    for folder in candidates:
        if (folder / "SKILL.md").is_file() and (folder / "scripts" / "check_update.py").is_file():
            return folder
    return None


def install_command(env: Mapping[str, str] | None = None) -> str:
    return f"npx skills add {repo_name(env)} --full-depth --skill {UPDATE_SKILL} -y"


def update_command(env: Mapping[str, str] | None = None) -> str:
    return f"npx skills add {repo_name(env)} --full-depth --skill '*' -y"


def status(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    path = state_path(SKILL_DIR, env)
    suppressed, reason, next_at = suppression(read_state(path), now_seconds(env))
    sibling = find_update_skill(SKILL_DIR, env)
    return {"update_check_installed": sibling is not None, "update_check_path": str(sibling) if sibling else None,
            "suppressed": suppressed, "reason": reason, "state_file": str(path), "next_prompt_at": next_at}


def dismiss(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    now = now_seconds(env)
    return update_state(state_path(SKILL_DIR, env), lambda s: (s.update(last_interaction=now),
                                                               s.setdefault("never_install", False)))


def never_install(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    return update_state(state_path(SKILL_DIR, env), lambda s: s.update(never_install=True))


def action_required_lines(env: Mapping[str, str] | None = None) -> list:
    me = f"python3 {SKILL_DIR / 'scripts' / 'gossamer.py'}"
    return [
        f"[ACTION_REQUIRED] The {UPDATE_SKILL} skill is not installed; it tells you about new {MAIN_SKILL} "
        "versions. Ask the user to choose one option and wait for the answer:",
        f"  1. Install now: {install_command(env)} && {me} --dismiss",
        f"  2. Skip for now: {me} --dismiss",
        f"  3. Never remind me: {me} --never-install",
    ]


def post_task_check(env: Mapping[str, str] | None = None) -> list:
    """Lines to print after a task (possibly none)."""
    env = os.environ if env is None else env
    info = status(env)
    if info["suppressed"] and info["reason"] == "dismissed":
        return []
    if not info["update_check_installed"]:
        return [] if info["suppressed"] else action_required_lines(env)
    script = Path(info["update_check_path"]) / "scripts" / "check_update.py"
    try:
        done = subprocess.run([sys.executable, str(script), "--print-response"], capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT_SECONDS, env=dict(env))
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return []
    if isinstance(result, dict) and result.get("has_update"):
        return [f"[UPDATE_AVAILABLE] {MAIN_SKILL} {result.get('current')} -> {result.get('latest')}: "
                f"{str(result.get('info') or '')[:200]} Update with: {update_command(env)}"]
    return []
