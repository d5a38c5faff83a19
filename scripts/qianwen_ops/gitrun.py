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

"Does git track this file?" (``tracked_state``) decides what a ``.env`` may choose, so its answer
must not depend on anything a project can set. In the user's app, ``load_dotenv()`` may have copied
a tracked ``.env``'s ``HOME`` or ``XDG_CONFIG_HOME`` into the environment, pointing git at a
configuration in the repository (a broken one made git fail, which once read as "not tracked").
So that question reads no user configuration at all (``GIT_CONFIG_GLOBAL`` names the null device,
git 2.32+; none of it changes which paths the index holds), asks about the name as git may have
recorded it (case-insensitively, then the entry that is the same file: on a case-insensitive file
system ``.env`` opens a tracked ``.ENV``), and says when git cannot answer (not installed, failed,
timed out) instead of answering "no": the caller decides what that means (``provenance`` treats
such a file inside a work tree as tracked).
"""

from __future__ import annotations

import os
from pathlib import Path

from .redaction import child_env

GIT_TIMEOUT_SECONDS = 10
SAFE_OPTIONS = ("--no-pager", "-c", "core.fsmonitor=false")


def git_env(env=None, user_config: bool = True) -> dict:
    """``env`` (default: the process environment) without credentials and without ``GIT_*``;
    without the user's configuration too when ``user_config`` is False."""
    kept = {k: v for k, v in child_env(os.environ if env is None else env).items()
            if not k.upper().startswith("GIT_")}
    kept.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    if not user_config:
        kept["GIT_CONFIG_GLOBAL"] = os.devnull
    return kept


def _run(folder: Path, args: tuple, timeout: float, user_config: bool = True):
    """The ``CompletedProcess``, or why git could not run (a short phrase)."""
    import subprocess  # only when git is asked: the probe's start-up never needs it

    try:
        return subprocess.run(["git", *SAFE_OPTIONS, "-C", str(folder), *args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=git_env(user_config=user_config), timeout=timeout, check=False)
    except FileNotFoundError:
        return "git is not installed or not on PATH"
    except subprocess.TimeoutExpired:
        return f"git did not answer within {timeout:g} s"
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return f"git could not run ({exc.__class__.__name__})"


def run_git(folder: Path, *args: str, timeout: float = GIT_TIMEOUT_SECONDS):
    """``git -C folder args`` run safely (see the module docstring); None when git cannot run.

    Returns the ``subprocess.CompletedProcess`` with text ``stdout`` (stderr discarded).
    """
    done = _run(folder, args, timeout)
    return None if isinstance(done, str) else done


def tracked_state(path: Path, timeout: float = GIT_TIMEOUT_SECONDS) -> tuple:
    """``(True, "")`` when git tracks the file ``path`` (whoever commits to that repository wrote it),
    ``(False, "")`` when it does not, ``(None, why)`` when git cannot say: not installed, failed (a
    broken configuration, not a work tree), timed out. Asked from the file's own folder, so the
    repository that holds it answers, about its name in any case, then about the entry that is this
    very file (``os.path.samefile``).
    """
    path = Path(path)
    done = _run(path.parent, ("ls-files", "-z", "--", f":(literal,icase){path.name}"), timeout, user_config=False)
    if isinstance(done, str):
        return None, done
    if done.returncode != 0:
        return None, f"git failed (exit {done.returncode})"
    for entry in done.stdout.split("\0"):
        if entry == path.name or (entry and _same_file(path.parent / entry, path)):
            return True, ""
    return False, ""


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except (OSError, ValueError):
        return False


def tracks(path: Path) -> bool:
    """Does git track ``path``? False also when git cannot say (see ``tracked_state``)."""
    return tracked_state(path)[0] is True


def ignores(folder: Path, name: str) -> bool | None:
    """Does git ignore ``name`` (relative to ``folder``)? None when git cannot tell (no git, no work tree)."""
    done = run_git(folder, "check-ignore", "-q", "--", name)
    return None if done is None or done.returncode not in (0, 1) else done.returncode == 0


def in_work_tree(folder: Path) -> bool:
    """Is ``folder`` inside a git work tree?"""
    done = run_git(folder, "rev-parse", "--is-inside-work-tree")
    return done is not None and done.returncode == 0 and done.stdout.strip() == "true"
