"""Update-prompt state shared by qianwen-ops-auth's gossamer.py and check_update.py.

This file is kept byte-identical in both skills (a test checks it), because each
skill must work when installed alone. Stdlib only, Python 3.9+.

State is one JSON object. Fields: ``last_interaction`` (epoch seconds of the user's
last ``--dismiss``: "skip for now") and ``never_install`` (bool, ``--never-install``), the
field names and meanings of the sister QwenCloud pack; ``last_check`` (epoch seconds of the
last successful fetch) and ``last_result`` (what it said), for check_update.py's once-a-day
cache; ``last_outcome`` ``{"at", "outcome", "detail"}``, the outcome of the last check
(``up-to-date``, ``update-available`` or ``failed``; a failure is recorded too), whose
``detail`` is read back only when it is in this program's own words (``DETAIL_FORMS``); and
``last_reminder`` ``{"at", "latest"}``, when gossamer.py last reported that newer version (it
reports a pending update at most once a day). A check never writes ``last_interaction``: only
the user dismisses.

Where it lives (both skills compute the same file from their own folders, which
are siblings):

1. ``$QWEN_SKILLS_STATE`` when set to an absolute path (``~`` expanded; a relative
   path is ignored, so the working directory never receives state);
2. ``<root>/.agents/state.json`` when the skill lives under a ``.agents/`` tree
   (``<root>`` holds that ``.agents/``; a global install gives ``~/.agents/state.json``);
3. ``<root>/.agents/state.json`` where ``<root>`` is the nearest ancestor holding
   ``.claude/`` (a claude-code-only install), so both layouts share one file;
4. else ``$XDG_STATE_HOME/qianwen-ai/state.json`` (default ``~/.local/state``).

In a git project the state never shows up in ``git status`` (``hide_from_git``): in a folder
named ``.agents`` with no ``.gitignore``, one is written naming the state file, its lock and
itself; when that folder holds a ``.gitignore`` of the user's (never changed), the two files
are named in the repository's own ``.git/info/exclude`` instead (local, never committed), when that
repository is one (``HEAD``, ``objects/``, ``refs/``), no link and, on POSIX, this user's; else the
state may show in ``git status``, and nothing is written elsewhere. A state
file git tracks (``state_tracked``: a committed one, whoever commits chose its content) is never
used, neither choices nor a cached answer, and no check result is saved into it.

Values are bounded by what the program could have written: a ``last_interaction`` later
than now is not a dismissal (a dismissal lasts at most 24 hours from now), and a
``last_check`` later than now is not fresh.

Where ``npx skills add`` takes the bundle from (``install_source``): ``$QWEN_SKILLS_REPO``
when set, else the source ``skills-lock.json`` records for this bundle (the installer
writes it in the project; read bounded, anything unexpected ignored), else
``DEFAULT_REPO``; the ref is the recorded one, else ``RELEASE_REF`` (the generated
branch that holds only the two skill folders). A source other than the official repository
is said so wherever a command names it (``source_note``): a look-alike name in a cloned
project's ``skills-lock.json`` is not the user's choice.

Hostile or broken state never breaks a caller, in bounded time: reads take at most
``MAX_STATE_BYTES`` from a regular file that is not a link (anything else, corrupt
JSON, deep nesting, or a timestamp out of range reads as absent). Writes never
follow a link: the state file and its lock are opened with ``O_NOFOLLOW``, a link or
special file there is refused, the new content goes to a private temp file that
is fsynced and renamed over the old one, under an exclusive lock waited for at most
``LOCK_SECONDS``. A write that cannot be done raises ``OSError``.

Windows too: every ``os.open`` passes ``O_BINARY`` (as qianwen-ops-auth's ``fsutil`` does), the
lock is ``msvcrt.locking`` on the lock file's first byte where ``fcntl`` is missing, and a
rename refused because another process has the state file open for a moment is retried
for up to ``LOCK_SECONDS``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path

DAY_SECONDS = 24 * 3600
DEFAULT_REPO = "QianWen-AI/qianwen-ops-auth"
RELEASE_REF = "release"
UPDATE_SKILL = "qianwen-update-check"
MAIN_SKILL = "qianwen-ops-auth"
MAX_STATE_BYTES = 64 * 1024
MAX_LOCK_BYTES = 256 * 1024
MAX_EPOCH = 1e11  # year ~5138: anything later is junk, not a time
LOCK_SECONDS = 2.0
OUTCOMES = ("up-to-date", "update-available", "failed")
# A version as version.json may give it (semantic versioning, ASCII only, bounded): the raw value must
# match whole, so a line break, a Unicode digit or a separator can never come through.
VERSION = r"v?[0-9]{1,9}\.[0-9]{1,9}\.[0-9]{1,9}(?:-[0-9A-Za-z.-]{1,40})?(?:\+[0-9A-Za-z.-]{1,40})?"
_VERSION_PARTS = re.compile(r"v?([0-9]+)\.([0-9]+)\.([0-9]+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")


def version_key(text: object) -> tuple | None:
    """A sort key for a version (``VERSION`` whole, nothing stripped), None for anything else: 1.10.0 > 1.9.0,
    and 1.0.0-rc.1 < 1.0.0 (semantic-versioning order)."""
    if not (isinstance(text, str) and re.fullmatch(VERSION, text)):
        return None
    match = _VERSION_PARTS.fullmatch(text)
    release = tuple(int(match.group(i)) for i in (1, 2, 3))
    pre = match.group(4)
    if pre is None:
        return release + ((1,),)
    idents = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return release + ((0,) + idents,)
# Every ``detail`` check_update.py records, as patterns: a stored detail in other words was not
# written by this program (an edited or committed state file) and is never shown as its words.
_CA_SOURCES = "SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|the system store"
DETAIL_FORMS = {
    "up-to-date": re.compile(f"installed {VERSION}, published {VERSION}"),
    "update-available": re.compile(f"{VERSION} -> {VERSION}"),
    "failed": re.compile(
        r"HTTP [0-9]{3} from the update server|timed out|cannot reach the update server \([A-Za-z][A-Za-z0-9_]{0,60}\)"
        r"|malformed version\.json \((?:not JSON|not UTF-8|not an object|no version|not a version number|too large)\)"
        r"|QWEN_UPDATE_URL is not an http\(s\) URL"
        r"|cannot read this skill's version\.json \([A-Za-z][A-Za-z0-9_]{0,60}\)"
        r"|update check failed \([A-Za-z][A-Za-z0-9_]{0,60}\)"
        rf"|the update server's TLS certificate is not trusted \([a-z0-9 ,:'-]{{1,80}}\) by (?:{_CA_SOURCES})"),
}
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
O_BINARY = getattr(os, "O_BINARY", 0)  # the same constant as fsutil.O_BINARY: no text-mode fd on Windows


def now_seconds(env: Mapping[str, str] | None = None) -> float:
    """The clock; ``QWEN_SKILLS_NOW`` (epoch seconds) replaces it in tests."""
    env = os.environ if env is None else env
    fake = epoch(env.get("QWEN_SKILLS_NOW", "")[:40] or None, text=True)
    return time.time() if fake is None else fake


def epoch(value, text: bool = False) -> float | None:
    """``value`` as epoch seconds when it is a plausible time (finite, 0..MAX_EPOCH), else None."""
    if text and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and not 0 <= value <= MAX_EPOCH:
        return None
    value = float(value)
    return value if math.isfinite(value) and 0 <= value <= MAX_EPOCH else None


def one_line(text: object, limit: int = 200) -> str:
    """``text`` as one printable line of at most ``limit`` characters."""
    line = "".join(ch if ch.isprintable() else " " for ch in str(text)[: limit * 4])
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def repo_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    repo = env.get("QWEN_SKILLS_REPO", "").strip()
    parts = repo.split("/")
    ok = len(parts) == 2 and all(p and all(c.isalnum() or c in "-_." for c in p) for p in parts)
    return repo if ok else DEFAULT_REPO


_AGENT_FOLDERS = ((".claude", "claude-code"), (".agents", "cursor"))  # cursor reads the universal .agents/


def installer_args(skill_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """The ``npx skills add`` options that install where this skill is installed, for the same agents.

    ``-a claude-code`` when ``<root>/.claude/skills/<this skill>`` exists, ``-a cursor`` when
    ``<root>/.agents/skills/<this skill>`` does (``<root>`` holds the agent folder this skill lives in,
    as given or with links resolved), and ``-g`` when ``<root>`` is the home folder. A skill outside any
    agent folder (a git checkout) gives ``-a cursor``. Never no ``-a``: the installer would then write
    a folder for every agent it knows into the project.
    """
    env = os.environ if env is None else env
    home = Path(os.path.abspath(env.get("HOME") or os.path.expanduser("~")))
    found, is_global = set(), False
    for start in (Path(os.path.abspath(skill_dir)), Path(os.path.realpath(skill_dir))):
        skills = start.parent
        if skills.name != "skills" or skills.parent.name not in dict(_AGENT_FOLDERS):
            continue
        root = skills.parent.parent
        is_global = is_global or root == home or os.path.realpath(root) == os.path.realpath(home)
        found.update(agent for folder, agent in _AGENT_FOLDERS
                     if os.path.isdir(root / folder / "skills" / start.name))
    agents = [agent for _, agent in _AGENT_FOLDERS if agent in found] or ["cursor"]
    return " ".join((["-g"] if is_global else []) + [f"-a {agent}" for agent in agents])


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
    chosen = Path(os.path.expanduser(env.get("QWEN_SKILLS_STATE") or ""))  # never raises, unlike Path's
    if chosen.is_absolute():
        return chosen
    folders = ancestors(skill_dir)
    for folder in folders:
        if folder.name == ".agents":
            return folder / "state.json"
    for folder in folders:
        if folder.name == ".claude":
            return folder.parent / ".agents" / "state.json"
    base = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return Path(base) / "qianwen-ai" / "state.json"


def _open_regular(path, flags: int, mode: int = 0o600) -> int:
    """An fd on a regular file at ``path``, never through a link, never blocking on a FIFO."""
    fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | O_BINARY, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_state(path: Path) -> dict:
    """The state object; ``{}`` when missing, unreadable, special, a link, too large or not JSON."""
    try:
        fd = _open_regular(path, os.O_RDONLY)
    except (OSError, ValueError):
        return {}
    try:
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(MAX_STATE_BYTES + 1)
        if len(raw) > MAX_STATE_BYTES:
            return {}
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError, MemoryError):
        return {}
    return data if isinstance(data, dict) else {}


def _lock_api():
    try:
        import fcntl

        return fcntl, None
    except ImportError:
        pass
    try:
        import msvcrt  # Windows

        return None, msvcrt
    except ImportError:
        return None, None


def _try_lock(fd: int, fcntl, msvcrt) -> bool:
    """An exclusive lock on the lock file without waiting (its first byte with msvcrt); False when held."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    elif msvcrt is not None:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
    return True


@contextmanager
def _lock(path: Path, api=None):
    fd = _open_regular(str(path) + ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl, msvcrt = api or _lock_api()
        deadline = time.monotonic() + LOCK_SECONDS
        while not _try_lock(fd, fcntl, msvcrt):
            if time.monotonic() > deadline:
                raise OSError(errno.ETIMEDOUT, "state file is locked", str(path))
            time.sleep(0.01)
        try:
            yield
        finally:
            if msvcrt is not None:  # flock ends with the close; a Windows lock is released explicitly
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(fd)


def _replace(tmp: Path, path: Path) -> None:
    """``os.replace``, retried while Windows says another handle has ``path`` open (a reader, a scanner)."""
    deadline = time.monotonic() + LOCK_SECONDS
    while True:
        try:
            os.replace(tmp, path)
            return
        except PermissionError as exc:
            if getattr(exc, "winerror", None) not in (5, 32, 33) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _write_new(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; a link or special file at ``path`` is refused."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "not a regular file (a link or special file)", str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | O_BINARY, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def update_state(path: Path, change: Callable[[dict], None]) -> dict:
    """Read, apply ``change``, write back atomically; returns the new state (``OSError`` when not saved)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except ValueError as exc:  # e.g. a NUL in the path
        raise OSError(errno.EINVAL, str(exc)) from None
    with _lock(path):
        hide_from_git(path)
        state = read_state(path)
        change(state)
        data = json.dumps(state, indent=2, sort_keys=True) + "\n"
        _write_new(path, data.encode("utf-8"))
    return state


def suppression(state: dict, now: float) -> tuple[bool, str, float | None]:
    """(suppressed, reason, next_prompt_at): prompts the user turned off (``--never-install``, or
    ``--dismiss`` in the last 24 hours)."""
    if state.get("never_install") is True:
        return True, "never_install", None
    last = epoch(state.get("last_interaction"))
    if last is not None and 0 <= now - last < DAY_SECONDS:  # a future time is not one this program wrote
        return True, "dismissed", last + DAY_SECONDS
    return False, "", now


def last_outcome(state: dict) -> dict | None:
    """The last check's ``{"at", "outcome", "detail"}``, or None when absent or malformed.

    ``detail`` is "" when the stored one is not in this program's words (``DETAIL_FORMS``), and
    ``"foreign_detail": True`` then says a detail was there: it is never passed on.
    """
    found = state.get("last_outcome")
    if not isinstance(found, dict) or found.get("outcome") not in OUTCOMES:
        return None
    at = epoch(found.get("at"))
    if at is None:
        return None
    detail = found.get("detail")
    if isinstance(detail, str) and DETAIL_FORMS[found["outcome"]].fullmatch(detail):
        return {"at": at, "outcome": found["outcome"], "detail": detail}
    return {"at": at, "outcome": found["outcome"], "detail": "", "foreign_detail": bool(detail)}


def record_outcome(state: dict, at: float, outcome: str, detail: str) -> None:
    """Set ``last_outcome`` in ``state`` (for ``update_state``)."""
    state["last_outcome"] = {"at": at, "outcome": outcome, "detail": one_line(detail)}


_OURS = "# written by qianwen-ops-auth: per-user update-prompt state, not project content\n"
_UNSAFE_IN_PATTERN = re.compile(r"[*?\[\\!#\n\r]|\s$")  # what a .gitignore line would read differently


def hide_from_git(path: Path) -> None:
    """Keep the state file and its lock out of ``git status``; failures are ignored.

    In a ``.agents`` folder with no ``.gitignore``: write one naming the two files and itself
    (O_EXCL, never through a link). When that folder holds a ``.gitignore`` that is not ours (the
    user's, never changed): name the two files in the repository's ``.git/info/exclude``, once.
    """
    if path.parent.name != ".agents":
        return
    ignore = path.parent / ".gitignore"
    text = f"{_OURS}/{path.name}\n/{path.name}.lock\n/.gitignore\n"
    try:
        fd = os.open(ignore, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | O_BINARY, 0o644)
    except OSError:
        if _read_bytes(ignore, 4096).startswith(_OURS.encode("utf-8")):
            return
        _exclude_in_repository(path)
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode("utf-8"))


def _read_bytes(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file (never through a link); b"" otherwise."""
    try:
        fd = _open_regular(path, os.O_RDONLY)
    except (OSError, ValueError):
        return b""
    try:
        with os.fdopen(fd, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return b""


def _mine(info: os.stat_result) -> bool:
    """Does this user own it? (POSIX; Windows reports no owner here, so there the shape checks alone decide.)"""
    return not hasattr(os, "geteuid") or info.st_uid == os.geteuid()


def _own_folder(folder: Path) -> bool:
    """A folder that is no link and belongs to this user."""
    try:
        info = os.lstat(folder)
    except (OSError, ValueError):
        return False
    return stat.S_ISDIR(info.st_mode) and _mine(info)


def _git_dir_shape(git_dir: Path, common: Path) -> bool:
    """What git itself takes for a repository: ``HEAD`` in the git folder, ``objects/`` and ``refs/`` in the
    common one; both folders this user's own and no link (the ``.git`` file of an unpacked archive names any
    folder it likes, and that folder's ``info/exclude`` must not be written unless it is a repository's)."""
    try:
        head = os.lstat(git_dir / "HEAD")
    except (OSError, ValueError):
        return False
    return (stat.S_ISREG(head.st_mode) and _own_folder(git_dir) and _own_folder(common)
            and all(os.path.isdir(common / name) for name in ("objects", "refs")))


def _git_common_dir(work_tree: Path) -> Path | None:
    """The git folder whose ``info/exclude`` applies to ``work_tree`` (``.git``, or a linked
    worktree's common folder), or None when ``work_tree`` holds no git repository or one that is not
    safe to write to (``_git_dir_shape``)."""
    dot_git = work_tree / ".git"
    if dot_git.is_dir() and not dot_git.is_symlink():
        return dot_git if _git_dir_shape(dot_git, dot_git) else None
    text = _read_bytes(dot_git, 4096).decode("utf-8", "replace")
    if not text.startswith("gitdir: "):
        return None
    git_dir = work_tree / text[len("gitdir: "):].strip()
    common = _read_bytes(git_dir / "commondir", 4096).decode("utf-8", "replace").strip()
    found = git_dir / common if common else git_dir
    return found if _git_dir_shape(git_dir, found) else None


def _exclude_in_repository(path: Path) -> None:
    """Name ``path`` and its lock in the ``info/exclude`` of the repository holding it (appended once): only
    a repository of this user's (``_git_common_dir``), an ``info/`` folder that is no link, and an
    ``exclude`` that is a regular file of this user's with no other name (a hard link); else nothing."""
    for work_tree in path.parent.parents:
        if os.path.lexists(work_tree / ".git"):  # the nearest, as git finds it: a broken one is not passed over
            git_dir = _git_common_dir(work_tree)
            break
    else:
        return
    if git_dir is None:
        return
    relative = path.relative_to(work_tree).as_posix()
    if _UNSAFE_IN_PATTERN.search(relative):
        return
    wanted = f"/{relative}\n/{relative}.lock\n"
    exclude = git_dir / "info" / "exclude"
    present = _read_bytes(exclude, MAX_LOCK_BYTES)
    if wanted.encode("utf-8") in present or len(present) >= MAX_LOCK_BYTES:
        return
    lead = b"\n" if present and not present.endswith(b"\n") else b""
    try:
        exclude.parent.mkdir(exist_ok=True)
        if not _own_folder(exclude.parent):
            return
        fd = _open_regular(exclude, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except (OSError, ValueError):
        return
    with os.fdopen(fd, "wb") as handle:
        info = os.fstat(handle.fileno())
        if _mine(info) and info.st_nlink == 1:
            handle.write(lead + (_OURS + wanted).encode("utf-8"))


_GIT_SECONDS = 5.0
_GIT_ENV = ("PATH", "PATHEXT", "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "TEMP", "TMP", "TMPDIR", "LANG",
            "LC_ALL", "LC_CTYPE")


def _in_work_tree(folder: Path) -> bool:
    """Does ``folder`` or a folder above it hold a ``.git`` (a folder or a file)? No git needed."""
    return any(os.path.lexists(above / ".git") for above in (folder, *folder.parents))


def git_tracks(path: Path) -> bool | None:
    """Does git track the file ``path``? None when git cannot say (not installed, failed, timed out).

    The stdlib twin of qianwen-ops-auth's ``gitrun.tracked_state`` (this skill is standalone): asked
    from the file's folder, about its name in any case then the entry that is this very file;
    ``core.fsmonitor=false`` (the one setting ``ls-files`` runs a program from), no user configuration,
    no ``GIT_*`` variable and no credential in git's environment (only the variables it needs to run).
    """
    import subprocess

    path = Path(path)
    env = {k: v for k, v in os.environ.items() if k.upper() in _GIT_ENV}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    try:
        done = subprocess.run(["git", "--no-pager", "-c", "core.fsmonitor=false", "-C", str(path.parent), "ls-files",
                               "-z", "--", f":(literal,icase){path.name}"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, timeout=_GIT_SECONDS,
                              check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0:
        return None
    for entry in done.stdout.decode("utf-8", "surrogateescape").split("\0"):
        if entry == path.name or (entry and _same_file(path.parent / entry, path)):
            return True
    return False


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except (OSError, ValueError):
        return False


def state_tracked(path: Path, ask: Callable[[Path], object] | None = None) -> bool:
    """Is the state file ``path`` one git tracks (committed: whoever commits to that repository wrote
    it)? Then nothing in it is used and no check result is saved there. Fail closed: inside a work tree
    (a ``.git`` above it), a git that cannot say counts as tracking it. ``ask``: how git is asked
    (``git_tracks`` by default; qianwen-ops-auth passes its own ``gitrun``): True, False or None.
    """
    path = Path(os.path.abspath(path))
    if not _in_work_tree(path.parent):
        return False
    return (ask or git_tracks)(path) is not False


_SHORTHAND = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}/[A-Za-z0-9_.-]{1,100}")
_URL = re.compile(r"(?:https://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?/|git@[A-Za-z0-9.-]{1,253}:)[A-Za-z0-9_.~/-]{1,300}")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,99}")


def _recorded_source(skill_dir: Path) -> tuple | None:
    """(source, ref or None) that ``<root>/skills-lock.json`` records for this bundle, or None.

    ``<root>`` holds the agent folder this skill is installed in. Read at most ``MAX_LOCK_BYTES``
    from a regular file (not a link); only a GitHub shorthand ``owner/name`` or an https/ssh git URL
    made of plain characters is taken (nothing a shell would read differently), never a local path.
    """
    for start in (Path(os.path.abspath(skill_dir)), Path(os.path.realpath(skill_dir))):
        skills = start.parent
        if skills.name != "skills" or skills.parent.name not in dict(_AGENT_FOLDERS):
            continue
        lock = _read_object(skills.parent.parent / "skills-lock.json", MAX_LOCK_BYTES)
        entries = lock.get("skills")
        if not isinstance(entries, dict):
            continue
        for name in (MAIN_SKILL, UPDATE_SKILL):
            entry = entries.get(name)
            if not isinstance(entry, dict):
                continue
            kind = entry.get("sourceType")
            source = entry.get("source") if kind == "github" else entry.get("sourceUrl") if kind in ("git", "gitlab") \
                else None
            ref = entry.get("ref")
            if not isinstance(source, str) or not (_SHORTHAND.fullmatch(source) or _URL.fullmatch(source)) \
                    or ".." in source or (kind != "github" and _SHORTHAND.fullmatch(source)):
                continue
            ok_ref = isinstance(ref, str) and _REF.fullmatch(ref) and ".." not in ref
            return source, ref if ok_ref else None
    return None


def _read_object(path: Path, limit: int) -> dict:
    """A JSON object read from at most ``limit`` bytes of a regular file (not a link); ``{}`` otherwise."""
    try:
        fd = _open_regular(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError):
        return {}
    try:
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(limit + 1)
        data = json.loads(raw.decode("utf-8")) if len(raw) <= limit else None
    except (OSError, ValueError, RecursionError, MemoryError):
        return {}
    return data if isinstance(data, dict) else {}


def install_source(skill_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """``<source>#<ref>`` for ``npx skills add``: ``QWEN_SKILLS_REPO``, else what skills-lock.json records
    for this bundle, else ``DEFAULT_REPO``; the recorded ref, else ``RELEASE_REF``."""
    env = os.environ if env is None else env
    recorded = None if env.get("QWEN_SKILLS_REPO", "").strip() else _recorded_source(skill_dir)
    source, ref = recorded if recorded else (repo_name(env), None)
    return f"{source}#{ref or RELEASE_REF}"


_OFFICIAL = {DEFAULT_REPO.lower(), f"https://github.com/{DEFAULT_REPO}".lower(),
             f"https://github.com/{DEFAULT_REPO}.git".lower(), f"git@github.com:{DEFAULT_REPO}.git".lower()}


def source_note(skill_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """"" when ``install_source`` is the official repository; else a phrase that says where the other
    source comes from, for the line that shows the command (a look-alike name must not pass unseen)."""
    env = os.environ if env is None else env
    if env.get("QWEN_SKILLS_REPO", "").strip():
        source, where = repo_name(env), "QWEN_SKILLS_REPO"
    else:
        recorded = _recorded_source(skill_dir)
        if recorded is None:
            return ""
        source, where = recorded[0], "skills-lock.json"
    if source.lower() in _OFFICIAL:
        return ""
    return f"{source} is from {where}, not the official {DEFAULT_REPO}: check it is the source you meant"


def all_skills(windows: bool = os.name == "nt") -> str:
    """``--skill``'s "every skill" as one shell word: ``"*"`` on Windows, where cmd.exe would pass single
    quotes on to the installer (PowerShell, Git Bash and POSIX shells read both forms as ``*``)."""
    return '"*"' if windows else "'*'"


def add_command(skill_dir: Path, skill: str, env: Mapping[str, str] | None = None) -> str:
    """The ``npx skills add`` line that installs ``skill`` (a name, or ``all_skills()``) from ``install_source``
    where this skill is installed (``installer_args``). ``--full-depth`` only for a ref other than
    ``RELEASE_REF`` (a branch laid out like the development checkout, with a root SKILL.md)."""
    source = install_source(skill_dir, env)
    depth = "" if source.endswith("#" + RELEASE_REF) else " --full-depth"
    return f"npx skills add {source}{depth} --skill {skill} {installer_args(skill_dir, env)} -y"
