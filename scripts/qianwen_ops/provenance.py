"""Where a value in the process environment really came from: a git-tracked ``.env`` copied there.

The documented library path is ``load_dotenv(); resolve_file(...)``: python-dotenv copies every
line of a ``.env`` into ``os.environ``. In a cloned repository that file is someone else's, so
a value it sets must not gain the environment's trust on the way. The rule: a value of one of
``JUDGED_NAMES`` in the process environment that is *identical* to the value a ``.env`` that git
tracks sets for the same name is judged as coming from that file. ``Settings.env`` leaves it
out, so every decision made from it (``endpoints`` for the API host, ``custom_oss`` for the
bucket, ``network`` for proxies and CA certificates) is the one the scripts make without
``load_dotenv``: an endpoint or bucket from a tracked file is refused, a proxy or CA setting from
a file is not used. One warning line on stderr names each value left out.

The ``.env`` files compared: those ``Settings`` reads (the working directory's, the project's),
every ``.env`` in the folders between them, and those from the main script's folder up to its
project (where ``load_dotenv()`` starts looking). git runs only when a value is identical.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

# Values that choose where the key, the files or the traffic go (a key itself may come from a tracked file).
# (A region only picks among documented hosts, so QWEN_REGION and DASHSCOPE_API_REGION are not here.)
ENDPOINT_NAMES = ("QWEN_BASE_URL", "DASHSCOPE_HTTP_BASE_URL", "DASHSCOPE_WORKSPACE_ID")
BUCKET_NAMES = ("QWEN_TMP_OSS_BUCKET", "QWEN_TMP_OSS_REGION", "QWEN_TMP_OSS_ENDPOINT", "QWEN_TMP_OSS_PREFIX",
                "QWEN_TMP_OSS_AK_ID", "QWEN_TMP_OSS_AK_SECRET", "QWEN_TMP_OSS_URL_EXPIRES")
PROXY_NAMES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
               "NO_PROXY")
CA_NAMES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
JUDGED_NAMES = ENDPOINT_NAMES + BUCKET_NAMES + PROXY_NAMES + CA_NAMES
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
        from .project import locate

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
    from .endpoints import is_git_tracked
    from .errors import QwenOpsError

    copied: dict = {}
    for path in candidate_files(settings):
        try:
            values = settings._dotenv(path)
        except QwenOpsError:  # unreadable: it cannot have been loaded either
            continue
        same = [name for name in names if name not in copied and values.get(name) == process_env[name]]
        if same and is_git_tracked(Path(path).absolute()):
            for name in same:
                copied[name] = path
                if name in PROXY_NAMES + CA_NAMES or path not in settings.dotenv_paths():
                    _warn(name, path)   # else the endpoint or bucket check refuses it, naming the file
    return copied


def _warn(name: str, path: Path) -> None:
    from .redaction import one_line

    if (name, str(path)) not in _warned:
        _warned.add((name, str(path)))
        print(one_line(f"warning: {name} in the environment is the value {path} sets, and git tracks that file "
                       "(load_dotenv() copied it?): judged as that file's, so it does not choose where the key, "
                       "files or traffic go; set your own value in the environment or in a .env git ignores"),
              file=sys.stderr)
