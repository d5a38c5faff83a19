"""The one way the bundle runs git: read-only questions that cannot run a project's programs.

A project's ``.git/config`` may come from anyone who could write to it (a cloned or unpacked
repository, a tool). git itself runs programs named there: ``core.fsmonitor`` is run by
``ls-files`` and ``check-ignore`` (verified with git 2.39: a planted hook received the whole
environment, API key included). Every git call therefore goes through ``run_git``:

* ``-c core.fsmonitor=false`` (the only setting these commands act on that names a program; with
  git older than 2.36, where the value is a hook path, it names the harmless ``false``);
* ``--no-pager``; stdin closed; output captured (so no pager or editor even with a terminal);
* an environment without credentials (``redaction.child_env``, the rule the update check
  uses) and without any ``GIT_*`` variable (``GIT_DIR``, ``GIT_CONFIG_*`` could point git at
  other configuration); ``GIT_TERMINAL_PROMPT=0`` and ``GIT_OPTIONAL_LOCKS=0``;
* a timeout.

Verified not to run anything for ``rev-parse``, ``ls-files`` and ``check-ignore`` (git 2.39, each
configured to a marker-writing program): ``filter.<driver>.clean/smudge/process`` (these commands
never hash or check out content), ``diff.external``, ``core.pager`` (no terminal),
``core.sshCommand`` and ``core.alternateRefsCommand`` (no network, no refs advertised).
``core.hooksPath`` does not matter: no hook fires on a read-only command.
"""

from __future__ import annotations

import os
from pathlib import Path

from .redaction import child_env

GIT_TIMEOUT_SECONDS = 10
SAFE_OPTIONS = ("--no-pager", "-c", "core.fsmonitor=false")


def git_env(env=None) -> dict:
    """``env`` (default: the process environment) without credentials and without ``GIT_*``."""
    kept = {k: v for k, v in child_env(os.environ if env is None else env).items()
            if not k.upper().startswith("GIT_")}
    kept.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    return kept


def run_git(folder: Path, *args: str, timeout: float = GIT_TIMEOUT_SECONDS):
    """``git -C folder args`` run safely (see the module docstring); None when git cannot run.

    Returns the ``subprocess.CompletedProcess`` with text ``stdout`` (stderr discarded).
    """
    import subprocess  # only when git is asked: the probe's start-up never needs it

    try:
        return subprocess.run(["git", *SAFE_OPTIONS, "-C", str(folder), *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=git_env(), timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def tracks(path: Path) -> bool:
    """Does git track ``path`` (a committed file: whoever commits to that repository wrote it)?

    The one way the bundle asks: from the file's own folder, so the repository that holds it answers.
    False without git, outside a work tree, or for a file git does not know.
    """
    path = Path(path)
    done = run_git(path.parent, "ls-files", "--error-unmatch", "--", path.name)
    return done is not None and done.returncode == 0


def ignores(folder: Path, name: str) -> bool | None:
    """Does git ignore ``name`` (relative to ``folder``)? None when git cannot tell (no git, no work tree)."""
    done = run_git(folder, "check-ignore", "-q", "--", name)
    return None if done is None or done.returncode not in (0, 1) else done.returncode == 0


def in_work_tree(folder: Path) -> bool:
    """Is ``folder`` inside a git work tree?"""
    done = run_git(folder, "rev-parse", "--is-inside-work-tree")
    return done is not None and done.returncode == 0 and done.stdout.strip() == "true"
