"""This skill's own folder, and how a hint names its files and scripts: the one place that decides.

``SKILL_DIR`` is the folder holding SKILL.md (this package is ``scripts/qianwen_ops`` below it). It is
an *installed copy* when it holds no ``.git`` (an installer never copies one), and ``install_holder``
is then the folder holding the install: out of ``skills/``, then out of the agent folder holding that
(``.agents/``, ``.claude/``, ...). ``skill_path`` names one of the skill's files as the user sees it
from the working directory, and ``script_command`` the command that runs one of its scripts with the
interpreter running now (``python_command``), quoted for the user's shell.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SKILL_DIR = Path(__file__).resolve().parents[2]


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
