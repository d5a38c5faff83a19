"""Where a setting came from, and what that lets it decide: the one place that judges by origin.

A value is trusted as much as whoever could write where it came from. The process environment is
the user's own. A ``.env`` file may come from a cloned repository, and a ``.env`` that git tracks
certainly was written by whoever commits to it. So:

* a value that chooses where the key, the files or the traffic go (``JUDGED_NAMES``: the API host,
  the custom-OSS bucket, proxies, CA certificates) may not come from a ``.env`` that git tracks
  (``check_not_tracked``; proxies and CA certificates are never read from a ``.env`` at all, see
  ``network``);
* a host read from any ``.env`` must be a documented one, on the https port
  (``check_file_sourced_host``); loopback and any other host only from the environment.

The documented library path is ``load_dotenv(); resolve_file(...)``: python-dotenv copies every
line of a ``.env`` into ``os.environ``, where a value would gain the environment's trust on the
way. The rule: a value of one of ``JUDGED_NAMES`` in the process environment that is *identical* to
the value a ``.env`` that git tracks sets for the same name is judged as coming from that file
(``copied_from_tracked_files``). ``Settings.env`` leaves it out, so every decision made from it
(``endpoints`` for the API host, ``oss_settings`` for the bucket, ``network`` for proxies and CA
certificates) is the one the scripts make without ``load_dotenv``. One warning line on stderr names
each value left out.

The ``.env`` files compared: those ``Settings`` reads (the working directory's, the project's),
every ``.env`` in the folders between them, and those from the main script's folder up to its
project (where ``load_dotenv()`` starts looking). git runs only when a value is identical, through
``gitrun`` (a cloned repository's configuration cannot make the question run a program).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from .errors import CONFIG, QwenOpsError
from .gitrun import tracks
from .network import ALL_PROXY_VARIABLES, CA_VARIABLES
from .project import locate
from .redaction import one_line
from .urls import is_loopback_host

# Values that choose where the key, the files or the traffic go (a key itself may come from a tracked file).
# (A region only picks among documented hosts, so QWEN_REGION and DASHSCOPE_API_REGION are not here.)
ENDPOINT_NAMES = ("QWEN_BASE_URL", "DASHSCOPE_HTTP_BASE_URL", "DASHSCOPE_WORKSPACE_ID")
# Every custom-OSS setting decides where files go or with whose keys (oss_settings reads them).
BUCKET_NAMES = ("QWEN_TMP_OSS_BUCKET", "QWEN_TMP_OSS_REGION", "QWEN_TMP_OSS_ENDPOINT", "QWEN_TMP_OSS_PREFIX",
                "QWEN_TMP_OSS_AK_ID", "QWEN_TMP_OSS_AK_SECRET", "QWEN_TMP_OSS_URL_EXPIRES")
JUDGED_NAMES = ENDPOINT_NAMES + BUCKET_NAMES + ALL_PROXY_VARIABLES + CA_VARIABLES
MAX_LEVELS = 12
_warned: set = set()


def _between(start: Path, stop: Path) -> list:
    """``start`` and its parents up to ``stop`` (both included) when ``stop`` holds ``start``; else ``start``."""
    folders = [start]
    for parent in start.parents:
        if len(folders) >= MAX_LEVELS or folders[-1] == stop:
            break
        folders.append(parent)
    return folders if folders[-1] == stop else [start]


def _main_folder() -> Path | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return Path(os.path.abspath(os.path.dirname(path))) if path else None


def candidate_files(settings) -> list:
    """The ``.env`` files whose values may have been copied into the environment, nearest first."""
    files = list(settings.dotenv_paths())
    folders = _between(settings.layout.start, settings.layout.project)
    script = _main_folder()
    if script is not None:
        folders += _between(script, locate(script, skill_dir=settings.skill_dir).project)
    for folder in folders:
        path = folder / ".env"
        if path not in files:
            files.append(path)
    return [path for path in files if os.path.isfile(path)]


def copied_from_tracked_files(settings, process_env: Mapping[str, str]) -> dict:
    """``{name: path}`` for each judged value in ``process_env`` that a git-tracked ``.env`` sets identically."""
    names = [name for name in JUDGED_NAMES if process_env.get(name)]
    if not names:
        return {}
    copied: dict = {}
    for path in candidate_files(settings):
        try:
            values = settings.dotenv_values(path)
        except QwenOpsError:  # unreadable: it cannot have been loaded either
            continue
        same = [name for name in names if name not in copied and values.get(name) == process_env[name]]
        if same and is_git_tracked(Path(path).absolute()):
            for name in same:
                copied[name] = path
                if name in ALL_PROXY_VARIABLES + CA_VARIABLES or path not in settings.dotenv_paths():
                    _warn(name, path)   # else the endpoint or bucket check refuses it, naming the file
    return copied


def check_file_sourced_host(name: str, url: str, source: str, documented: Callable[[str], bool]) -> None:
    """A .env file (possibly from a cloned repository) may not send credentials to an unknown host.

    From a file only hosts ``documented`` accepts pass, on the https port; loopback, any other host
    and any other port must be set in the process environment, where only the user puts it.
    """
    if source.startswith("env:"):
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not documented(host):
        kind = "a loopback host" if is_loopback_host(host) else "not a documented host"
        raise QwenOpsError(f"{name} in {source} points to {host}, which is {kind}; a .env file may only name "
                           "documented hosts: set it in the environment instead if you really mean it", CONFIG)
    if parts.port not in (None, 443):
        raise QwenOpsError(f"{name} in {source} names port {parts.port}; a .env file may only name documented "
                           "hosts on the https port: set it in the environment instead if you really mean it",
                           CONFIG)


# ``gitrun.tracks``, asked once per file and process: every QWEN_TMP_OSS_* value of one .env asks the same question.
is_git_tracked = lru_cache(maxsize=16)(tracks)


def check_not_tracked(name: str, source: str) -> None:
    """Refuse a redirecting value (endpoint, bucket) that comes from a git-tracked .env file."""
    if source.startswith("env:") or not is_git_tracked(Path(source).absolute()):
        return
    raise QwenOpsError(f"{name} in {source} is not used: git tracks that file, so whoever commits to the "
                       f"repository would choose where your data goes; set {name} in the environment "
                       "(export it) or in a .env that git ignores", CONFIG)


def _warn(name: str, path: Path) -> None:
    if (name, str(path)) not in _warned:
        _warned.add((name, str(path)))
        print(one_line(f"warning: {name} in the environment is the value {path} sets, and git tracks that file "
                       "(load_dotenv() copied it?): judged as that file's, so it does not choose where the key, "
                       "files or traffic go; set your own value in the environment or in a .env git ignores"),
              file=sys.stderr)
