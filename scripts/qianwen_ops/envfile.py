"""Creating the placeholder ``.env`` without ever harming an existing one.

* no key line yet -> append ``DASHSCOPE_API_KEY=sk-your-key-here`` (new files are 0600)
* a key line exists -> change nothing, byte for byte
* never writes through a symlink; ``.env`` that is not a regular file is refused
* inside a git work tree, ``.env`` is made git-ignored if it is not already
* ``key`` (from stdin, never argv) replaces a placeholder line in place
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import errors
from .credentials import KEY_NAMES, PLACEHOLDER, STANDARD, TOKEN_PLAN, Secret, classify_key
from .dotenv_parser import read_dotenv_file
from .errors import QwenOpsError
from .fsutil import replace_file

PLACEHOLDER_VALUE = "sk-your-key-here"
PLACEHOLDER_LINE = f"DASHSCOPE_API_KEY={PLACEHOLDER_VALUE}"
API_KEYS_URL = "https://platform.qianwenai.com/home/api-keys"
_KEY_LINE = re.compile(
    r"^[ \t]*(?:export[ \t]+)?(?:" + "|".join(KEY_NAMES) + r")[ \t]*=.*$", re.MULTILINE)


@dataclass
class SetupReport:
    actions: list = field(default_factory=list)   # what was (or would be) done
    key_state: str = ""                          # status word of the key now in .env

    def say(self, text: str) -> None:
        self.actions.append(text)


def _newline_of(data: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in data else b"\n"


def _check_target(path: Path) -> None:
    if path.is_symlink():
        raise QwenOpsError(f"{path} is a symbolic link; refusing to write through it", errors.REFUSED_WRITE)
    if path.exists() and not path.is_file():
        raise QwenOpsError(f"{path} exists but is not a regular file; refusing to touch it",
                           errors.REFUSED_WRITE)


def _append(path: Path, text: bytes) -> None:
    """Append a line, adding a line break first when the file does not end with one."""
    _check_target(path)
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    if path.exists():
        data = path.read_bytes()
        newline = _newline_of(data)
        prefix = newline if data and not data.endswith((b"\n", b"\r")) else b""
        fd = os.open(path, flags)
        payload = prefix + text + newline
    else:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        payload = text + b"\n"
    with os.fdopen(fd, "ab") as handle:
        handle.write(payload)


def _existing_key_status(path: Path) -> str | None:
    """Status word of the key line already in ``path``, or None when there is none."""
    if not path.exists():
        return None
    values = read_dotenv_file(path)
    for name in KEY_NAMES:
        if name in values:
            return classify_key(values[name])[0]
    if _KEY_LINE.search(path.read_bytes().decode("utf-8", "replace")):
        return classify_key(None)[0]
    return None


def _in_git_work_tree(cwd: Path) -> bool:
    try:
        done = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=cwd,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == "true"


def _git_ignores(cwd: Path, name: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", "--", name], cwd=cwd,
                          capture_output=True, timeout=10)
    return done.returncode == 0


def ensure_gitignored(cwd: Path, report: SetupReport, dry_run: bool) -> None:
    if not _in_git_work_tree(cwd):
        return
    if _git_ignores(cwd, ".env"):
        report.say(".env is already git-ignored")
        return
    report.say("add '.env' to .gitignore so the key is never committed")
    if not dry_run:
        _append(cwd / ".gitignore", b".env")


def setup_env(cwd: Path, dry_run: bool = False, key: Secret | None = None) -> SetupReport:
    path = cwd / ".env"
    report = SetupReport()
    _check_target(path)
    state = _existing_key_status(path)
    if key is None:
        if state is None:
            report.say(f"{'create' if not path.exists() else 'append to'} {path}: {PLACEHOLDER_LINE}")
            if not dry_run:
                _append(path, PLACEHOLDER_LINE.encode())
            report.key_state = PLACEHOLDER
        else:
            report.say(f"{path} already has a key line ({state}); left unchanged")
            report.key_state = state
    else:
        report.key_state = _write_real_key(path, key, state, report, dry_run)
    ensure_gitignored(cwd, report, dry_run)
    return report


def _write_real_key(path: Path, key: Secret, state: str | None, report: SetupReport, dry_run: bool) -> str:
    status, problem = classify_key(key.reveal())
    if status not in (STANDARD, TOKEN_PLAN):
        raise QwenOpsError(f"the key read from stdin is {status}{f' ({problem})' if problem else ''}; "
                           "nothing written", errors.NO_KEY)
    line = f"DASHSCOPE_API_KEY={key.reveal()}".encode()
    if state is None:
        report.say(f"append the key from stdin to {path} ({status})")
        if not dry_run:
            _append(path, line)
            os.chmod(path, 0o600)
        return status
    if state != PLACEHOLDER:
        raise QwenOpsError(f"{path} already has a key line ({state}); edit it yourself, nothing written",
                           errors.REFUSED_WRITE)
    data = path.read_bytes()
    pattern = re.compile(rb"^([ \t]*(?:export[ \t]+)?(?:" + "|".join(KEY_NAMES).encode()
                         + rb")[ \t]*=)[^\r\n]*", re.MULTILINE)
    new_data, count = pattern.subn(lambda m: m.group(1) + line.split(b"=", 1)[1], data, count=1)
    if count != 1:
        raise QwenOpsError(f"could not find the placeholder line in {path}; nothing written",
                           errors.REFUSED_WRITE)
    report.say(f"replace the placeholder in {path} with the key from stdin ({status})")
    if not dry_run:
        _check_target(path)
        replace_file(path, new_data)
    return status
