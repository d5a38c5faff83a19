"""Where configuration values come from: the one place that decides.

Order, first match wins: the process environment, ``.env`` in the current
directory, ``.env`` at the user's project root. Which folders those are (and which
``.env`` files are not trusted) is decided in ``project.py``. Nothing here writes to
``os.environ``: a value already in the environment is never overwritten.

``.env`` files are read lazily, only when a value is not in the environment, so a
broken ``.env`` never gets in the way of a variable that is set. ``env`` is the process
environment minus the base URL, bucket, proxy, CA and cache-folder values a ``.env`` that is not
the user's (git tracks it, or another user's) put there (``load_dotenv()`` in the user's app; see
``provenance``): every decision made from it is the one the scripts make without ``load_dotenv``. It is
worked out once, under a lock: no thread sees the environment before it is judged.
"""

from __future__ import annotations

import _thread
import os
from collections.abc import Mapping
from pathlib import Path

from .fsutil import home_dir
from .named_tuple import NamedTuple
from .ownership import trusted
from .project import Layout, locate
from .provenance import JudgedEnv, copied_from_tracked_files
from .skill_paths import SKILL_DIR


class SourcedValue(NamedTuple):
    """A value and where it came from (``env:NAME`` or a ``.env`` path)."""

    value: str
    source: str


class _Values:
    """The environment and the ``.env`` values a ``Settings`` holds: shown, copied or pickled as nothing."""

    __slots__ = ("process_env", "env", "dotenv", "judging")

    def __init__(self, process_env: Mapping[str, str]):
        self.process_env = process_env
        self.env: Mapping[str, str] | None = None
        self.dotenv: dict = {}
        self.judging = _thread.allocate_lock()   # one thread works ``env`` out; the others wait for it

    def __repr__(self) -> str:
        return "<hidden>"

    def __reduce__(self):  # a pickle (or copy) would carry every key of the environment and the .env files
        raise TypeError("Settings cannot be pickled or copied: they hold the environment's secrets")


class Settings:
    """Looks names up in the environment, then the ``.env`` files, in order.

    The values stay out of sight: no ``__dict__`` (``vars()`` fails), ``repr`` shows the folder
    only, and pickling or copying raises ``TypeError`` (as ``ApiSettings`` and ``Secret`` do).
    A value handed out (``get``, ``env[name]``) is a plain ``str``.
    """

    __slots__ = ("_values", "cwd", "_home", "skill_dir", "_layout")

    def __init__(self, env: Mapping[str, str], cwd: Path, home: Path | None = None, skill_dir: Path = SKILL_DIR):
        self._values = _Values(env)
        self.cwd = cwd
        self._home = home
        self.skill_dir = skill_dir
        self._layout: Layout | None = None

    def __repr__(self) -> str:  # never the environment: it may hold keys
        return f"Settings(cwd={str(self.cwd)!r})"

    def __reduce__(self):
        raise TypeError("Settings cannot be pickled or copied: they hold the environment's secrets")

    @classmethod
    def from_process(cls, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        return cls(env=env, cwd=Path(cwd or os.getcwd()))

    @property
    def home(self) -> Path:
        """The user's home folder (``fsutil.home_dir``) from ``env``: a ``HOME`` a repository's ``.env`` put in
        the environment does not choose where the key file, the CLI configuration or the cache are."""
        if self._home is None:
            self._home = home_dir(self.env)
        return self._home

    @home.setter
    def home(self, folder: Path) -> None:
        self._home = folder

    @property
    def env(self) -> Mapping[str, str]:
        """The process environment without the values a git-tracked ``.env`` put there (see ``provenance``).

        Thread-safe: the first reader works it out under a lock and publishes it once; the other threads wait
        and never see the environment unjudged.
        """
        held = self._values
        if held.env is None:
            with held.judging:
                if held.env is None:
                    copied = copied_from_tracked_files(self, held.process_env)
                    held.env = JudgedEnv(held.process_env, copied) if copied else held.process_env
        return held.env

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = locate(Path(self.cwd), self.skill_dir)
        return self._layout

    @property
    def project_root(self) -> Path:
        """The user's project (see ``project.py``): where ``setup_env.py`` writes and evidence goes."""
        return self.layout.project

    def dotenv_paths(self) -> list[Path]:
        """The ``.env`` files consulted, in order (each is used only when it exists and is trusted)."""
        return self.layout.dotenv_paths()

    def dotenv_values(self, path: Path) -> dict:
        """What the ``.env`` file ``path`` sets, read once; {} when it is missing or not trusted (``ownership``)."""
        cache = self._values.dotenv
        if path not in cache:
            values: dict = {}
            if path.is_file() and trusted(path):
                from .dotenv_parser import read_dotenv_file  # only when a .env is actually read

                values = read_dotenv_file(path)
            cache[path] = values
        return cache[path]

    def get(self, *names: str) -> SourcedValue | None:
        """First non-empty value for any of ``names`` (earlier names win at each level)."""
        for name in names:
            value = self.env.get(name)
            if value:
                return SourcedValue(value, f"env:{name}")
        for path in self.dotenv_paths():
            values = self.dotenv_values(path)
            for name in names:
                value = values.get(name)
                if value:
                    return SourcedValue(value, str(path))
        return None

    def value(self, name: str, default: str = "") -> str:
        found = self.get(name)
        return found.value if found else default
