"""The post-task update prompt: find the sibling update-check skill, run it, or offer it.

Which copy of ``qianwen-update-check`` counts: only the one installed next to this skill
(``<skills folder>/qianwen-update-check``, as the installer puts it), or ``skills/qianwen-update-check``
inside a git checkout of the bundle. A copy anywhere else (an ancestor's ``.agents/skills/``, the
home folder, the nested copy inside an installed skill) is never run. It runs with a bounded
timeout and with credentials stripped from its environment (``redaction.child_env``).

After a task, silence means "nothing to tell the user now": checked and up to date, a newer
version already reported in the last 24 hours (``[UPDATE_AVAILABLE]`` is repeated once a day
while the update is pending; ``--status`` says when it was reported), or prompts the user
turned off (``--dismiss``, ``--never-install``). A check that could not complete says so in
one ``[UPDATE_CHECK_FAILED]`` line (why, and that the next run retries). Choices stored in a
state file git tracks are not used, nor is its last check or report, and nothing is saved there (a
committed file is whoever commits' choice: the check then runs, and reports, after every task). Install and
update commands come from ``skill_state.add_command``: the source skills-lock.json records,
else the default repository, at the release ref; another source than the official one is said
so on the same line (``skill_state.source_note``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .gitrun import tracked_state
from .redaction import child_env, redact, server_said
from .skill_paths import SKILL_DIR, script_command
from .skill_state import (
    DAY_SECONDS,
    MAIN_SKILL,
    UPDATE_SKILL,
    VERSION,
    add_command,
    all_skills,
    epoch,
    last_outcome,
    now_seconds,
    one_line,
    read_state,
    source_note,
    state_path,
    state_tracked,
    suppression,
    update_state,
    version_key,
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
    return add_command(skill_dir, all_skills(), env)


def _with_note(label: str, env: Mapping[str, str] | None, skill_dir: Path = SKILL_DIR) -> str:
    """``label`` ("Install now", "Update with") followed by ``source_note`` when the source is not the official one."""
    note = source_note(skill_dir, env)
    return f"{label} ({note})" if note else label


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _reported_at(state: dict, latest: object, now: float) -> float | None:
    """When gossamer.py last reported ``latest`` as a newer version, if that was in the last 24 hours."""
    reminder = state.get("last_reminder")
    if not isinstance(reminder, dict) or not isinstance(latest, str) or reminder.get("latest") != latest:
        return None
    at = epoch(reminder.get("at"))
    return at if at is not None and 0 <= now - at < DAY_SECONDS else None  # a future time was not ours


def installed_version(sibling: Path | None) -> str | None:
    """The bundle version the update check compares with (the sibling skill's version.json), or None."""
    if sibling is None:
        return None
    try:
        with open(sibling / "version.json", "rb") as handle:
            version = json.loads(handle.read(4096).decode("utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) and re.fullmatch(VERSION, version) else None


def _pending(state: dict, installed: str | None = None) -> str | None:
    """The newer version the last successful check found (its answer, cached by check_update.py), or None.

    A later failed check changes nothing of what is known: the cached answer still names a newer
    version than ``installed`` (check_update.py reuses that answer for a day)."""
    cached = state.get("last_result")
    outcome = last_outcome(state)
    if outcome is None or not isinstance(cached, dict):
        return None
    latest = cached.get("version")
    if not (isinstance(latest, str) and re.fullmatch(VERSION, latest)):
        return None
    if outcome["outcome"] == "update-available":
        return latest
    if outcome["outcome"] == "failed" and installed is not None and version_key(latest) > version_key(installed):
        return latest
    return None


def _tracked(path: Path) -> bool:
    """Is the state file one git tracks (or git cannot say, inside a work tree)? ``skill_state.state_tracked``,
    asked through ``gitrun``."""
    return state_tracked(path, lambda p: tracked_state(p)[0])


def _choices_not_used(state: dict, now: float, installed: str | None = None) -> list:
    """The user's choices stored in a state file git tracks (a committed one: whoever commits to the
    repository made them), which are therefore not used: ``never_install``, ``dismissed``, ``reminder``."""
    found = []
    if state.get("never_install") is True:
        found.append("never_install")
    if suppression({k: v for k, v in state.items() if k != "never_install"}, now)[1] == "dismissed":
        found.append("dismissed")
    if _reported_at(state, _pending(state, installed), now) is not None:
        found.append("reminder")
    return found


def summary(installed: bool, state: dict, now: float, env: Mapping[str, str] | None = None,
            version: str | None = None, tracked: bool = False) -> str:
    """One line that starts with exactly one of: not installed, never checked, not recorded, up to date,
    update available, suppressed until <ISO time>, check failed: <why>. ``tracked``: git tracks the
    state file, so ``state`` is empty (nothing there is used) and no check result is kept."""
    suppressed, reason, next_at = suppression(state, now)
    if not installed:
        if reason == "dismissed":
            return (f"suppressed until {_iso(next_at)}: the {UPDATE_SKILL} skill is not installed and the user chose "
                    "to skip the offer for now (--dismiss)")
        if reason == "never_install":
            return f"not installed: {UPDATE_SKILL} is not offered again (the user chose --never-install)"
        return f"not installed: gossamer.py offers to install {UPDATE_SKILL} after the next task"
    if reason == "dismissed":
        return f"suppressed until {_iso(next_at)}: the user dismissed update prompts (--dismiss)"
    outcome = last_outcome(state)
    if tracked:
        return ("not recorded: no check result is read from or saved to a state file git tracks, so the check "
                "runs after every task and a newer version is reported each time")
    if outcome is None:
        return "never checked: gossamer.py runs the check after the next task"
    when = _iso(outcome["at"])
    detail = outcome["detail"] or ("(a reason in words this program did not write: not shown)"
                                   if outcome.get("foreign_detail") else "")
    pending = _pending(state, version)
    if outcome["outcome"] == "failed":
        last_check = epoch(state.get("last_check"))
        if last_check is None or not 0 <= now - last_check < DAY_SECONDS:
            return f"check failed: {detail or 'unknown reason'} (at {when}; retried after the next task)"
        known = f"update available: {pending}" if pending else "no newer version"
        return (f"check failed: {detail or 'unknown reason'} (at {when}, a forced check); the last successful "
                f"check ({_iso(last_check)}: {known}) is used until {_iso(last_check + DAY_SECONDS)}, then the "
                "check runs again after a task")
    if outcome["outcome"] == "update-available":
        reported = _reported_at(state, pending, now)
        told = (f"reported at {_iso(reported)}, reported again after {_iso(reported + DAY_SECONDS)}" if reported
                else "gossamer.py reports it after the next task")
        return (f"update available: {detail or 'a newer version'} (checked {when}; {told}); "
                f"{_with_note('update with', env)}: {update_command(env)}")
    return f"up to date: {detail or 'no newer version'} (checked {when})"


def status(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    path = state_path(SKILL_DIR, env)
    stored = read_state(path)
    now = now_seconds(env)
    sibling = find_update_skill(SKILL_DIR)
    version = installed_version(sibling)
    tracked = _tracked(path)
    not_used = _choices_not_used(stored, now, version) if tracked else []
    state = {} if tracked else stored  # a committed state file: nothing in it is the user's or a real check's
    suppressed, reason, next_at = suppression(state, now)
    pending = _pending(state, version)
    text = summary(sibling is not None, state, now, env, version, tracked)
    if tracked:
        choices = f" (incl. the choices {', '.join(not_used)})" if not_used else ""
        text += (f"; note: git tracks {path} (or could not say whether it does), so nothing stored there{choices} is "
                 "used: anyone committing to the repository could have written it; set QWEN_SKILLS_STATE to a "
                 "file of your own")
    return {"update_check_installed": sibling is not None, "update_check_path": str(sibling) if sibling else None,
            "suppressed": suppressed, "reason": reason, "state_file": str(path), "next_prompt_at": next_at,
            "last_check": last_outcome(state), "update_pending": pending,
            "update_reported_at": _reported_at(state, pending, now), "choices_not_used": not_used,
            "state_tracked": tracked, "summary": text}


def dismiss(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    now = now_seconds(env)
    return update_state(state_path(SKILL_DIR, env), lambda s: (s.update(last_interaction=now),
                                                               s.setdefault("never_install", False)))


def never_install(env: Mapping[str, str] | None = None) -> dict:
    env = os.environ if env is None else env
    return update_state(state_path(SKILL_DIR, env), lambda s: s.update(never_install=True))


def tracked_state_warning(env: Mapping[str, str] | None = None) -> str:
    """One warning line when git tracks the state file (a choice saved there is not used), else ""."""
    env = os.environ if env is None else env
    path = state_path(SKILL_DIR, env)
    if not _tracked(path):
        return ""
    return (f"warning: git tracks {path}, so choices saved there are not used (anyone committing to the "
            "repository could make them): set QWEN_SKILLS_STATE to a file of your own")


def action_required_lines(env: Mapping[str, str] | None = None) -> list:
    me = script_command("gossamer.py")
    return [
        f"[ACTION_REQUIRED] The {UPDATE_SKILL} skill is not installed; it tells you about new {MAIN_SKILL} "
        "versions. Ask the user to choose one option and wait for the answer:",
        f"  1. {_with_note('Install now', env)}: {install_command(env)}",
        f"  2. Skip for now: {me} --dismiss",
        f"  3. Never remind me: {me} --never-install",
    ]


def post_task_check(env: Mapping[str, str] | None = None) -> list:
    """Lines to print after a task (possibly none: nothing to tell the user now)."""
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
        return update_available_lines(result, info, env)
    if not isinstance(result, dict) or "has_update" not in result:
        return [failure_line(f"{UPDATE_SKILL} gave no readable answer")]
    if result.get("error"):
        return [failure_line(result["error"])]
    return []


def update_available_lines(result: dict, info: dict, env: Mapping[str, str]) -> list:
    """The [UPDATE_AVAILABLE] line, at most once a day for one newer version (recorded as
    ``last_reminder``); none when it was reported in the last 24 hours (``--status`` says when).
    ``info``: ``status()`` as it was before the check ran."""
    latest, now = result.get("latest"), now_seconds(env)
    if not (isinstance(latest, str) and re.fullmatch(VERSION, latest)):
        return [failure_line(f"{UPDATE_SKILL} gave no readable answer")]
    if info["update_reported_at"] is not None and info["update_pending"] == latest:
        return []
    if not info["state_tracked"]:  # a committed state file stays as committed: reported again next time
        try:
            update_state(state_path(SKILL_DIR, env), lambda s: s.update(last_reminder={"at": now, "latest": latest}))
        except OSError:
            pass  # not saved: the next run reports it again, which is only one line too many
    return [f"[UPDATE_AVAILABLE] {MAIN_SKILL} {one_line(result.get('current'), 60)} -> {latest}: "
            f"{release_notes(result.get('info'))} {_with_note('Update with', env)}: {update_command(env)}"]


def failure_line(why: object) -> str:
    """The one line that says the check could not complete, why, and when it is tried again."""
    return (f"[UPDATE_CHECK_FAILED] the update check could not complete: {redact(one_line(why, 300))}; "
            "it is tried again after the next task (nothing else to do now)")


def release_notes(info: object) -> str:
    """version.json's ``info``, marked as the repository's words (quoted, redacted, one line, 200 characters)."""
    return server_said(info, 200, who="release notes say") or "(no release notes)"
