"""doctor's findings about the project and its ``.env`` files: what an agent otherwise finds by hand.

A ``.env`` that git tracks (with the right advice for what it holds: real credentials are rotated,
redirecting values deleted, anything else untracked), one git does not ignore, or one others can
read (mode bits; on Windows, which has none that mean anything, a ``.env`` outside the user's profile
folder gets an ``icacls`` hint instead of ``chmod`` advice). Paths and names only, never a value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from .credentials import (
    KEY_NAMES,
    MALFORMED,
    STANDARD,
    TOKEN_PLAN,
    classify_key,
    is_placeholder_secret,
    is_template_value,
)
from .dotenv_parser import read_dotenv_file
from .errors import QwenOpsError
from .evidence import EVIDENCE_SUBDIR
from .fsutil import is_within
from .gitrun import ignores, tracks
from .ownership import posix_permissions, trusted
from .provenance import JUDGED_NAMES


def _dotenv_findings(path: Path, project: Path, in_git: bool, home: Path) -> list:
    findings = []
    if in_git and is_within(path, project):
        relative = str(path.relative_to(project))
        if tracks(path):
            findings += [(".env in git", "warn", advice) for advice in tracked_dotenv_advice(path, relative)]
        elif ignores(project, relative) is False:
            findings.append((".env in git", "warn", f"{path} is not ignored by git: add the line "
                             f"'{relative}' to {project / '.gitignore'} so it is never committed"))
    if not posix_permissions():
        return findings + _windows_access_findings(path, home)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return findings
    if mode & 0o044:
        findings.append((".env permissions", "warn", f"{path} is readable by other users "
                         f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"))
    return findings


def tracked_dotenv_advice(path: Path, relative: str) -> list:
    """What to do about a ``.env`` that git tracks, one sentence per problem: names only, never a value.

    Doctor reports it, and ``setup_env.py`` says it when it refuses to write a key there. Its redirecting
    values are not used while git tracks it, so ``git rm --cached`` alone is the wrong advice when it
    holds some (untracking would make a cloned repository's base URL, bucket or proxy trusted) or real
    credentials (they stay in the history): then it says delete, or rotate.
    """
    try:
        values = read_dotenv_file(path)
    except QwenOpsError:
        values = {}
    real = committed_credentials(values)
    redirecting = [name for name in JUDGED_NAMES if values.get(name) and not is_template_value(values[name])]
    advice = []
    if real:
        advice.append(f"{path} is tracked by git and holds real credentials ({', '.join(real)}): everyone with the "
                      "repository has them; if they are yours, rotate them now (a new API key in the console, a new "
                      "AccessKey pair for the RAM user), then remove them from the file (the git history still holds "
                      "the old ones); if this is a clone of someone else's repository they are not yours: do not use "
                      "them, set your own in the environment or in a .env git ignores")
    if redirecting:
        advice.append(f"{path} is tracked by git and sets {', '.join(redirecting)}, which the scripts do not use "
                      "from a tracked file (whoever commits chooses them); do not just run git rm --cached (that would "
                      "make them trusted): delete those lines, or the file, and set your own values in the "
                      "environment or a .env git ignores")
    elif not real:
        advice.append(f"{path} is tracked by git: its values travel with every "
                      f"clone; run: git rm --cached {relative}, then add it to .gitignore")
    return advice


_OSS_SECRET_VARIABLES = ("QWEN_TMP_OSS_AK_SECRET", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN")


def committed_credentials(values: Mapping) -> list:
    """Names in ``values`` holding what looks like a real credential (not empty, not a placeholder)."""
    found = []
    for name in KEY_NAMES:
        value = values.get(name) or ""
        status = classify_key(value)[0]
        if status in (STANDARD, TOKEN_PLAN) or (status == MALFORMED and "sk-" in value.lower()):
            found.append(name)
    for name in _OSS_SECRET_VARIABLES:
        if values.get(name) and not is_placeholder_secret(values[name]):
            found.append(name)
    return found


def _windows_access_findings(path: Path, home: Path) -> list:
    """Windows: a ``.env`` under the user's profile is private by the profile's ACL; elsewhere (a folder
    made under ``C:\\``, a shared drive) the inherited ACL may let every local user read it. ``home``: the
    user's folder as ``Settings.home`` decides it."""
    profile = Path(os.path.abspath(home))
    if is_within(Path(os.path.abspath(path)), profile):
        return []
    return [(".env permissions", "info", f"{path} is outside your user folder ({profile}): on Windows its "
             "folder's access list decides who can read it (a folder made directly under a drive lets every "
             f"signed-in user read it); check with: icacls \"{path}\", or keep the project under {profile}")]


def project_findings(settings) -> list:
    """Doctor lines ``(name, state, detail)`` about the project and its ``.env`` files; never a value."""
    layout = settings.layout
    read = [p for p in layout.dotenv_paths() if os.path.isfile(p) and trusted(p)]
    shown = ", ".join(str(p) for p in read) or "none found"
    findings = [("project", "info", f"{layout.project} (.env files read: {shown}; evidence in "
                 f"{layout.project / EVIDENCE_SUBDIR})")]
    in_git = trusted(layout.project / ".git")
    for path in read:
        findings += _dotenv_findings(path, layout.project, in_git, settings.home)
    return findings
