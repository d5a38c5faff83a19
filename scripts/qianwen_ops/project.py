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
that git tracks or does not ignore, or that others can read (mode bits; on Windows, which has
none that mean anything, a ``.env`` outside the user's profile folder gets an ``icacls`` hint
instead of ``chmod`` advice). Paths only, never a value.
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


def _quoted(text: str, windows: bool) -> str:
    """``text`` as one shell word: as it is when plain, else in double quotes (Windows) or single quotes."""
    if text and all(ch.isalnum() or ch in "-_./:+=@%,\\" for ch in text):
        return text
    return f'"{text}"' if windows else "'" + text.replace("'", "'\"'\"'") + "'"


def python_command(executable: str | None = None, search_path: str | None = None,
                   windows: bool = os.name == "nt") -> str:
    """How a hint names the interpreter running now, so the user can paste it back.

    Its own name (``python3``, ``python``, ``python3.12``; ``.exe`` dropped on Windows) when the first
    folder on ``PATH`` that holds a program of that name is this interpreter's folder (an activated
    venv included); else its full path, quoted when needed (a venv run by path, ``py -3``, a
    python.org install not on PATH). ``py -3`` itself is never suggested: it may pick another
    installation than the one that ran. Windows paths are shown with ``/``, which PowerShell, cmd
    and Git Bash all accept.
    """
    exe = executable if executable is not None else sys.executable
    if not exe:  # embedded interpreters can leave it empty
        return "python" if windows else "python3"
    folder, name = os.path.split(exe)
    if windows and name.lower().endswith(".exe"):
        name = name[:-4]
    wanted = os.path.normcase(os.path.realpath(folder or "."))
    for entry in (os.environ.get("PATH", "") if search_path is None else search_path).split(os.pathsep):
        candidate = os.path.join(entry or ".", name + (".exe" if windows else ""))
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            if os.path.normcase(os.path.realpath(entry or ".")) == wanted:
                return name
            break
    return _quoted(exe.replace("\\", "/") if windows else exe, windows)


def script_command(name: str, cwd: Path | None = None, skill_dir: Path = SKILL_DIR) -> str:
    """How to run one of this skill's scripts from ``cwd``: ``<python_command()> <path>``."""
    windows = os.name == "nt"
    path = skill_path("scripts", name, cwd=cwd, skill_dir=skill_dir)
    return f"{python_command()} {_quoted(path.replace(os.sep, '/') if windows else path, windows)}"


def _warn(path: Path, why: str) -> None:
    if str(path) not in _warned:
        _warned.add(str(path))
        from .redaction import one_line

        print(one_line(f"warning: ignoring {path}: {why}"), file=sys.stderr)


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
            findings += tracked_dotenv_findings(path, relative)
        elif _git(project, "check-ignore", "-q", "--", relative) == 1:
            findings.append((".env in git", "warn", f"{path} is not ignored by git: add the line "
                             f"'{relative}' to {project / '.gitignore'} so it is never committed"))
    if not posix_permissions():
        return findings + _windows_access_findings(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return findings
    if mode & 0o044:
        findings.append((".env permissions", "warn", f"{path} is readable by other users "
                         f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"))
    return findings


def tracked_dotenv_findings(path: Path, relative: str) -> list:
    """Doctor's lines for a ``.env`` that git tracks: names only, never a value.

    Its redirecting values are not used while git tracks it, so ``git rm --cached`` alone is the
    wrong advice when it holds some (untracking would make a cloned repository's base URL, bucket
    or proxy trusted) or real credentials (they stay in the history): then it says remove and rotate.
    """
    from .dotenv_parser import read_dotenv_file
    from .errors import QwenOpsError

    try:
        values = read_dotenv_file(path)
    except QwenOpsError:
        values = {}
    real = committed_credentials(values)
    redirecting = [name for name in _redirecting_names() if values.get(name) and not _template(values[name])]
    findings = []
    if real:
        findings.append((".env in git", "warn", f"{path} is tracked by git and holds real credentials "
                         f"({', '.join(real)}): everyone with the repository has them; rotate them now (a new API "
                         "key in the console, a new AccessKey pair for the RAM user), then remove them from the "
                         "file (the git history still holds the old ones)"))
    if redirecting:
        findings.append((".env in git", "warn", f"{path} is tracked by git and sets {', '.join(redirecting)}, "
                         "which the scripts do not use from a tracked file (whoever commits chooses them); do not "
                         "just run git rm --cached (that would make them trusted): delete those lines, or the "
                         "file, and set your own values in the environment or a .env git ignores"))
    elif not real:
        findings.append((".env in git", "warn", f"{path} is tracked by git: its values travel with every "
                         f"clone; run: git rm --cached {relative}, then add it to .gitignore"))
    return findings


def _redirecting_names() -> tuple:
    from .provenance import JUDGED_NAMES

    return JUDGED_NAMES


_KEY_VARIABLES = ("QIANWEN_API_KEY", "DASHSCOPE_API_KEY")
_OSS_SECRET_VARIABLES = ("QWEN_TMP_OSS_AK_SECRET", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN")


def committed_credentials(values: Mapping) -> list:
    """Names in ``values`` holding what looks like a real credential (not empty, not a placeholder)."""
    from .credentials import MALFORMED, STANDARD, TOKEN_PLAN, classify_key

    found = []
    for name in _KEY_VARIABLES:
        value = values.get(name) or ""
        status = classify_key(value)[0]
        if status in (STANDARD, TOKEN_PLAN) or (status == MALFORMED and "sk-" in value.lower()):
            found.append(name)
    for name in _OSS_SECRET_VARIABLES:
        if values.get(name) and not _placeholder(values[name]):
            found.append(name)
    return found


def _placeholder(value: str) -> bool:
    """A template's credential (``your-accesskey-secret``): a placeholder word, unless it is plain letters and
    digits as real secrets are (as ``custom_oss`` judges them)."""
    from .credentials import _PLACEHOLDER_WORDS

    lowered = value.strip().lower()
    return _template(value) or (any(word in lowered for word in _PLACEHOLDER_WORDS)
                                and not lowered.replace(".", "").isalnum())


def _template(value: str) -> bool:
    """A value a template leaves for the user to fill in (``your-bucket``, ``<bucket>``); a host is never one."""
    lowered = value.strip().lower()
    return not lowered or lowered.startswith("your") or "-here" in lowered or any(c in lowered for c in "<>{}")
def posix_permissions() -> bool:
    """True where files have an owner uid and rwx mode bits that decide access (not on Windows,
    whose ``st_mode`` only mirrors the read-only attribute: ACLs decide there)."""
    return hasattr(os, "geteuid")


def _windows_access_findings(path: Path, home: Path | None = None) -> list:
    """Windows: a ``.env`` under the user's profile is private by the profile's ACL; elsewhere (a folder
    made under ``C:\\``, a shared drive) the inherited ACL may let every local user read it."""
    profile = Path(os.path.abspath(home or os.environ.get("USERPROFILE") or os.path.expanduser("~")))
    try:
        Path(os.path.abspath(path)).relative_to(profile)
        return []
    except ValueError:
        pass
    return [(".env permissions", "info", f"{path} is outside your user folder ({profile}): on Windows its "
             "folder's access list decides who can read it (a folder made directly under a drive lets every "
             f"signed-in user read it); check with: icacls \"{path}\", or keep the project under {profile}")]


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
