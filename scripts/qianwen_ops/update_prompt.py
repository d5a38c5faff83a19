"""The post-task update prompt: find the sibling update-check skill, run it, or offer it.

Which copy of ``qianwen-update-check`` counts: only the one installed next to this skill
(``<skills folder>/qianwen-update-check``, as the installer puts it), or ``skills/qianwen-update-check``
inside a git checkout of the bundle. A copy anywhere else (an ancestor's ``.agents/skills/``, the
home folder, the nested copy inside an installed skill) is never run. It runs with a bounded
timeout and with credentials stripped from its environment (``redaction.child_env``).

After a task, silence means "nothing to do" (checked, or prompts dismissed); a check that
could not complete says so in one ``[UPDATE_CHECK_FAILED]`` line (why, and that the next
run retries). Install and update commands come from ``skill_state.add_command``: the
source skills-lock.json records, else the default repository, at the release ref.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .redaction import child_env, redact, server_said
from .skill_paths import SKILL_DIR, script_command
from .skill_state import (
    DAY_SECONDS,
    MAIN_SKILL,
    UPDATE_SKILL,
    add_command,
    last_outcome,
    now_seconds,
    one_line,
    read_state,
    state_path,
    suppression,
    update_state,
)

CHECK_TIMEOUT_SECONDS = 10  # check_update.py's own deadline (5 s) plus interpreter start, with room to spare


def find_update_skill(skill_dir: Path = SKILL_DIR) -> Path | None:
    """The sibling skill's folder (installed next to this one, or under ``skills/`` in a git checkout)."""
    candidates = []
    for base in (Path(os.path.abspath(skill_dir)), Path(os.path.realpath(skill_dir))):
        candidates.append(base.parent / UPDATE_SKILL)
        if os.path.lexists(base / ".git"):  # a git checkout carries the sibling under skills/;
            candidates.append(base / "skills" / UPDATE_SKILL)  # an installed copy's nested one does not count
    for folder in candidates:
        if (folder / "SKILL.md").is_file() and (folder / "scripts" / "check_update.py").is_file():
            return folder
    return None


def install_command(env: Mapping[str, str] | None = None, skill_dir: Path = SKILL_DIR) -> str:
    """Installs the sibling next to this skill, for the same agents (``installer_args``), nothing else."""
    return add_command(skill_dir, UPDATE_SKILL, env)


def update_command(env: Mapping[str, str] | None = None, skill_dir: Path = SKILL_DIR) -> str:
    return add_command(skill_dir, "'*'", env)


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def summary(installed: bool, state: dict, now: float) -> str:
    """One line that starts with exactly one of: not installed, never checked, up to date,
    update available, suppressed until <ISO time>, check failed: <why>."""
    suppressed, reason, next_at = suppression(state, now)
    if not installed:
        if reason == "dismissed":
            return (f"suppressed until {_iso(next_at)}: the {UPDATE_SKILL} skill is not installed and the offer "
                    "to install it was dismissed")
        if reason == "never_install":
            return f"not installed: {UPDATE_SKILL} is not offered again (--never-install)"
        return f"not installed: gossamer.py offers to install {UPDATE_SKILL} after the next task"
    outcome = last_outcome(state)
    if reason == "dismissed" and (outcome is None or outcome["at"] < next_at - DAY_SECONDS):
        return f"suppressed until {_iso(next_at)}: update checks were dismissed"
    if outcome is None:
        return "never checked: gossamer.py runs the check after the next task"
    when = _iso(outcome["at"])
    if outcome["outcome"] == "failed":
        return f"check failed: {outcome['detail'] or 'unknown reason'} (at {when}; retried after the next task)"
    if outcome["outcome"] == "update-available":
        return f"update available: {outcome['detail']} (checked {when}); update with: {update_command()}"
    return f"up to date: {outcome['detail']} (checked {when})"


def status(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    path = state_path(SKILL_DIR, env)
    state = read_state(path)
    now = now_seconds(env)
    suppressed, reason, next_at = suppression(state, now)
    sibling = find_update_skill(SKILL_DIR)
    return {"update_check_installed": sibling is not None, "update_check_path": str(sibling) if sibling else None,
            "suppressed": suppressed, "reason": reason, "state_file": str(path), "next_prompt_at": next_at,
            "last_check": last_outcome(state), "summary": summary(sibling is not None, state, now)}


def dismiss(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    now = now_seconds(env)
    return update_state(state_path(SKILL_DIR, env), lambda s: (s.update(last_interaction=now),
                                                               s.setdefault("never_install", False)))


def never_install(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    return update_state(state_path(SKILL_DIR, env), lambda s: s.update(never_install=True))


def action_required_lines(env: Mapping[str, str] | None = None) -> list:
    me = script_command("gossamer.py")
    return [
        f"[ACTION_REQUIRED] The {UPDATE_SKILL} skill is not installed; it tells you about new {MAIN_SKILL} "
        "versions. Ask the user to choose one option and wait for the answer:",
        f"  1. Install now: {install_command(env)}",
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
                              timeout=CHECK_TIMEOUT_SECONDS, env=child_env(env), stdin=subprocess.DEVNULL)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return [failure_line(f"{UPDATE_SKILL} did not finish within {CHECK_TIMEOUT_SECONDS} s")]
    except (OSError, subprocess.SubprocessError, ValueError, IndexError, RecursionError):
        return [failure_line(f"{UPDATE_SKILL} gave no readable answer")]
    if isinstance(result, dict) and result.get("has_update") is True:
        return [f"[UPDATE_AVAILABLE] {MAIN_SKILL} {result.get('current')} -> {result.get('latest')}: "
                f"{release_notes(result.get('info'))} Update with: {update_command(env)}"]
    if not isinstance(result, dict) or "has_update" not in result:
        return [failure_line(f"{UPDATE_SKILL} gave no readable answer")]
    if result.get("error"):
        return [failure_line(result["error"])]
    return []


def failure_line(why: object) -> str:
    """The one line that says the check could not complete, why, and when it is tried again."""
    return (f"[UPDATE_CHECK_FAILED] the update check could not complete: {redact(one_line(why, 300))}; "
            "it is tried again after the next task (nothing else to do now)")


def release_notes(info: object) -> str:
    """version.json's ``info``, marked as the repository's words (quoted, redacted, one line, 200 characters)."""
    return server_said(info, 200, who="release notes say") or "(no release notes)"
