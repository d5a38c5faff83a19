"""Where the user's project is: the one place that decides.

Every script asks this module which folder is the user's project: settings (which ``.env``
files are read), evidence (``<project>/output/qianwen-ops-auth/``) and ``setup_env.py`` (through
``Settings.project_root``). The rules, in order:

1. **Inside this skill's installed copy** (``skill_paths``: the skill folder, an *installed copy*
   when it holds no ``.git``). When the working directory is that folder or below it (compared by
   real path, so the ``.claude/skills/...`` link and the skill's ``scripts/`` count too), the
   scripts act as if they were run from the *folder holding the install*: the skill folder's
   parent, out of ``skills/``, then out of the agent folder holding that (a name starting with a
   dot: ``.agents/``, ``.claude/``, ``.cursor/``, ...). ``<project>/.agents/skills/qianwen-ops-auth``
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

A ``.git`` marker or a ``.env`` is used only when it belongs to the user (``ownership``: the model is
git's ``safe.directory``); anything else is skipped as if it were absent (the search for ``.git``
goes on upwards), with one warning line on stderr.

The update-prompt state file is placed by ``skill_state.state_path`` from the skill's own
folder (``<folder holding the install>/.agents/state.json``, the same holder as rule 1), because
the sibling update-check skill computes it too and must work without this package.
"""

from __future__ import annotations

import os
from pathlib import Path

from .fsutil import is_within
from .named_tuple import NamedTuple
from .ownership import trusted
from .skill_paths import SKILL_DIR, install_holder, is_installed_copy


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


def locate(cwd: Path, skill_dir: Path = SKILL_DIR) -> Layout:
    """The rules of this module's docstring applied to ``cwd``."""
    logical = Path(os.path.abspath(cwd))
    real = Path(os.path.realpath(cwd))
    skill_real = Path(os.path.realpath(skill_dir))
    skill_logical = Path(os.path.abspath(skill_dir))
    start = logical
    inside = is_within(real, skill_real) or is_within(logical, skill_logical)
    if inside and is_installed_copy(skill_real):
        start = install_holder(skill_real)
    root = _git_root(start)
    return Layout(start=start, project=root if root is not None else start)


def find_project(cwd: Path | None = None, skill_dir: Path = SKILL_DIR) -> Path:
    """The user's project folder seen from ``cwd`` (default: the current directory)."""
    return locate(Path(cwd or os.getcwd()), skill_dir).project
