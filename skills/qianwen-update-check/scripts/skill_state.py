"""Update-prompt state shared by qianwen-ops-auth's gossamer.py and check_update.py.

This file is kept byte-identical in both skills (a test checks it), because each
skill must work when installed alone. Stdlib only, Python 3.9+.

State is one JSON object with at least ``last_interaction`` (epoch seconds of the
last dismissal or successful check) and ``never_install`` (bool), the field names
of the sister QwenCloud pack. Where it lives:

1. ``$QWEN_SKILLS_STATE`` when set;
2. ``<root>/.agents/state.json`` when the skill lives under a ``.agents/`` tree
   (``<root>`` holds that ``.agents/``; a global install gives ``~/.agents/state.json``);
3. ``<root>/.agents/state.json`` where ``<root>`` is the nearest ancestor holding
   ``.claude/`` (a claude-code-only install), so both layouts share one file;
4. else ``$XDG_STATE_HOME/qianwen-ai/state.json`` (default ``~/.local/state``).

Reads never fail (missing, empty or corrupt means ``{}``); writes are atomic
(temp file + rename) under an exclusive lock, so concurrent runs never corrupt it.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Mapping

DAY_SECONDS = 24 * 3600
DEFAULT_REPO = "QianWen-AI/qianwen-ops-auth"
UPDATE_SKILL = "qianwen-update-check"
MAIN_SKILL = "qianwen-ops-auth"


def now_seconds(env: Mapping[str, str] | None = None) -> float:
    """The clock; ``QWEN_SKILLS_NOW`` (epoch seconds) replaces it in tests."""
    env = os.environ if env is None else env
    fake = env.get("QWEN_SKILLS_NOW", "")
    try:
        return float(fake) if fake else time.time()
    except ValueError:
        return time.time()


def repo_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    repo = env.get("QWEN_SKILLS_REPO", "").strip()
    parts = repo.split("/")
    ok = len(parts) == 2 and all(p and all(c.isalnum() or c in "-_." for c in p) for p in parts)
    return repo if ok else DEFAULT_REPO


def ancestors(skill_dir: Path) -> list:
    """The folders above ``skill_dir``, as given and with symlinks resolved (installs use links)."""
    seen, out = set(), []
    for start in (Path(os.path.abspath(skill_dir)), skill_dir.resolve()):
        for folder in (start, *start.parents):
            if folder not in seen:
                seen.add(folder)
                out.append(folder)
    return out


def state_path(skill_dir: Path, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("QWEN_SKILLS_STATE"):
        return Path(env["QWEN_SKILLS_STATE"]).expanduser()
    folders = ancestors(skill_dir)
    for folder in folders:
        if folder.name == ".agents":
            return folder / "state.json"
    for folder in folders:
        if folder.name == ".claude":
            return folder.parent / ".agents" / "state.json"
    base = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return Path(base) / "qianwen-ai" / "state.json"


def read_state(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


@contextmanager
def _lock(path: Path):
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:
            pass
        yield
    finally:
        os.close(fd)


def update_state(path: Path, change: Callable[[dict], None]) -> dict:
    """Read, apply ``change``, write back atomically; returns the new state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        state = read_state(path)
        change(state)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    return state


def suppression(state: dict, now: float) -> tuple[bool, str, float | None]:
    """(suppressed, reason, next_prompt_at) for the install prompt."""
    if state.get("never_install") is True:
        return True, "never_install", None
    last = state.get("last_interaction")
    if isinstance(last, (int, float)) and now - last < DAY_SECONDS:
        return True, "dismissed", float(last) + DAY_SECONDS
    return False, "", now
