"""Where the user's project is: the one place that decides.

Every script asks this module which folder is the user's project: settings (which ``.env``
files are read), evidence (``<project>/output/qianwen-ops-auth/``) and ``setup_env.py`` (through
``Settings.project_root``). The rules, in order:

1. **Inside this skill's installed copy.** The skill folder is ``Path(__file__).parents[2]``; it
   is an *installed copy* when it holds no ``.git`` (the installer never copies one). When the
   working directory is that folder or below it (compared by real path, so the
   ``.claude/skills/...`` link and the skill's ``scripts/`` count too), the scripts act as if they
   were run from the *folder holding the install*: the skill folder's parent, out of
   ``skills/``, then out of the agent folder holding that (a name starting with a dot:
   ``.agents/``, ``.claude/``, ``.cursor/``, ...). ``<project>/.agents/skills/qianwen-ops-auth``
   gives ``<project>``; from there rule 2 applies as if the scripts were run in that folder.
   A global install (``~/.agents/skills/...``) has no project: from inside it the home folder
   (the folder holding it) counts as the project, so nothing is ever written into the skill
   folder and the answer does not depend on the subfolder; run the scripts from the project
   to use the project's ``.env`` and evidence folder.
2. **Anywhere else** (a project, any subfolder, a git checkout of the bundle run by hand): the
   project is the nearest ancestor of the working directory (itself included) holding ``.git``
   (a folder, or a file for worktrees and submodules); with none, the working directory itself.
   ``skills/`` is not a marker: an installed copy, ``.agents/`` and ``.claude/`` all hold one.
3. ``.env`` files are read in this order, first match wins after the process environment: the
   working directory's ``.env``, then the project's ``.env``. Inside the installed skill folder
   the working directory counts as the folder holding the install (rule 1), so no ``.env``
   inside the skill folder is ever read.

Trust (the model is git's ``safe.directory``): a ``.git`` marker or a ``.env`` is used only when

* the folder holding it is owned by the current user and is not writable by others
  (``o+w``, e.g. ``/tmp``, sticky bit or not), and
* the entry itself is owned by the current user (for a link, the link and its target).

Anything else is skipped as if it were absent (the search for ``.git`` goes on upwards), with
one line on stderr, once per process and path: ``warning: ignoring /tmp/.env: owned by
another user``. Where the platform has no user ids (Windows) every entry is trusted.

The update-prompt state file is placed by ``skill_state.state_path`` from the skill's own
folder (``<folder holding the install>/.agents/state.json``, the same holder as rule 1), because
the sibling update-check skill computes it too and must work without this package.

``project_findings`` reports, for doctor, what an agent otherwise finds by hand: a ``.env``
that git tracks or does not ignore, or that others can read. Paths only, never a value.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from .named_tuple import NamedTuple

SKILL_DIR = Path(__file__).resolve().parents[2]
_warned: set = set()


def skill_path(*parts: str, cwd: Path | None = None, skill_dir: Path = SKILL_DIR) -> str:
    """A file of this skill as seen from ``cwd``: relative when it lies below, else absolute."""
    path = skill_dir.joinpath(*parts)
    try:
        return str(path.relative_to(Path(os.path.abspath(cwd or os.getcwd())).resolve()))
    except ValueError:
        return str(path)


def script_command(name: str, cwd: Path | None = None, skill_dir: Path = SKILL_DIR) -> str:
    """How to run one of this skill's scripts from ``cwd``: ``python3 <path>``."""
    return f"python3 {skill_path('scripts', name, cwd=cwd, skill_dir=skill_dir)}"


def _warn(path: Path, why: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        print(f"warning: ignoring {path}: {why}", file=sys.stderr)


def distrust(path: Path) -> str | None:
    """Why ``path`` (a ``.env`` or a ``.git`` marker) must not be used, or None when it may.

    A missing ``path`` gives None: the caller decides what absence means.
    """
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if uid is None:
        return None
    try:
        folder = os.stat(path.parent)
    except OSError:
        return "its folder cannot be inspected"
    if folder.st_mode & stat.S_IWOTH:
        return f"its folder {path.parent} is writable by other users"
    if folder.st_uid != uid:
        return f"its folder {path.parent} is owned by another user"
    if info.st_uid != uid:
        return "owned by another user"
    if stat.S_ISLNK(info.st_mode):
        try:
            if os.stat(path).st_uid != uid:
                return "a link to a file owned by another user"
        except OSError:
            return None  # a dangling link: nothing to read
    return None


def trusted(path: Path) -> bool:
    """``path`` exists and may be used; an untrusted one is reported once on stderr."""
    if not os.path.lexists(path):
        return False
    why = distrust(path)
    if why:
        _warn(path, why)
        return False
    return True


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def is_installed_copy(skill_dir: Path = SKILL_DIR) -> bool:
    """True for a copy made by an installer (no ``.git``), False for a git checkout."""
    return not os.path.lexists(skill_dir / ".git")


def install_holder(skill_dir: Path = SKILL_DIR) -> Path:
    """The folder holding an installed skill: out of ``skills/``, then out of one agent folder."""
    folder = Path(os.path.realpath(skill_dir)).parent
    if folder.name == "skills":
        folder = folder.parent
        if folder.name.startswith(".") and folder.parent != folder:  # .agents, .claude, .cursor, ...
            folder = folder.parent
    return folder


def _git_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if trusted(folder / ".git"):
            return folder
    return None


class Layout(NamedTuple):  # a NamedTuple, not a dataclass: the probe's start-up stays short
    """``start``: the folder whose ``.env`` is read first; ``project``: the user's project."""

    start: Path
    project: Path

    def dotenv_paths(self) -> list:
        paths = [self.start / ".env"]
        if self.project != self.start:
            paths.append(self.project / ".env")
        return paths


def locate(cwd: Path, env: Mapping[str, str] | None = None, skill_dir: Path = SKILL_DIR) -> Layout:
    """The rules of this module's docstring applied to ``cwd``."""
    del env  # the rules need no variable today; kept so callers pass what they have
    logical = Path(os.path.abspath(cwd))
    real = Path(os.path.realpath(cwd))
    skill_real = Path(os.path.realpath(skill_dir))
    skill_logical = Path(os.path.abspath(skill_dir))
    start = logical
    inside = _within(real, skill_real) or _within(logical, skill_logical)
    if inside and is_installed_copy(skill_real):
        start = install_holder(skill_real)
    root = _git_root(start)
    return Layout(start=start, project=root if root is not None else start)


def find_project(cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 skill_dir: Path = SKILL_DIR) -> Path:
    """The user's project folder seen from ``cwd`` (default: the current directory)."""
    return locate(Path(cwd or os.getcwd()), env, skill_dir).project


def _git(project: Path, *args: str) -> int | None:
    from .gitrun import run_git  # only for doctor's findings: the probe's start-up never needs it

    done = run_git(project, *args, timeout=5)
    return None if done is None else done.returncode


def _dotenv_findings(path: Path, project: Path, in_git: bool) -> list:
    findings = []
    if in_git and _within(path, project):
        relative = str(path.relative_to(project))
        if _git(project, "ls-files", "--error-unmatch", "--", relative) == 0:
            findings.append((".env in git", "warn", f"{path} is tracked by git: its values travel with every "
                             f"clone; run: git rm --cached {relative}, then add it to .gitignore"))
        elif _git(project, "check-ignore", "-q", "--", relative) == 1:
            findings.append((".env in git", "warn", f"{path} is not ignored by git: add the line "
                             f"'{relative}' to {project / '.gitignore'} so it is never committed"))
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return findings
    if mode & 0o044:
        findings.append((".env permissions", "warn", f"{path} is readable by other users "
                         f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"))
    return findings


def project_findings(settings) -> list:
    """Doctor lines ``(name, state, detail)`` about the project and its ``.env`` files; never a value."""
    layout = settings.layout
    read = [p for p in layout.dotenv_paths() if os.path.isfile(p) and trusted(p)]
    shown = ", ".join(str(p) for p in read) or "none found"
    findings = [("project", "info", f"{layout.project} (.env files read: {shown}; evidence in "
                 f"{layout.project / 'output' / 'qianwen-ops-auth'})")]
    in_git = trusted(layout.project / ".git")
    for path in read:
        findings += _dotenv_findings(path, layout.project, in_git)
    return findings
