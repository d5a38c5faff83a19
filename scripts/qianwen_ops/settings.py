"""Where configuration values come from: the one place that decides.

Order, first match wins: the process environment, ``.env`` in the current
directory, ``.env`` at the repository root (nearest ancestor of the current
directory holding ``.git`` or ``skills/``). Nothing here writes to
``os.environ``: a value already in the environment is never overwritten.

``.env`` files are read lazily, only when a value is not in the environment, so a
broken ``.env`` never gets in the way of a variable that is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, NamedTuple


class Found(NamedTuple):
    """A value and where it came from (``env:NAME`` or a ``.env`` path)."""

    value: str
    source: str


def find_repo_root(start: Path) -> Path | None:
    """Nearest ancestor of ``start`` (itself included) holding ``.git`` or ``skills/``."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists() or (folder / "skills").is_dir():
            return folder
    return None


class Settings:
    """Looks names up in the environment, then the ``.env`` files, in order."""

    def __init__(self, env: Mapping[str, str], cwd: Path, home: Path):
        self.env = env
        self.cwd = cwd
        self.home = home
        self._dotenv_cache: dict = {}

    def __repr__(self) -> str:  # never the environment: it may hold keys
        return f"Settings(cwd={str(self.cwd)!r})"

    @classmethod
    def from_process(cls, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("HOME") or os.path.expanduser("~"))
        return cls(env=env, cwd=Path(cwd or os.getcwd()), home=home)

    # TEMPORARY (envdocs branch): a stand-in until the layout branch lands its Settings.project_root.
    # The lead resolves the merge conflict in favour of layout's version; delete this one then.
    @property
    def project_root(self) -> Path:
        """The user's project: where setup_env.py writes a new ``.env``."""
        return find_repo_root(self.cwd) or self.cwd

    def dotenv_paths(self) -> list[Path]:
        paths = [self.cwd / ".env"]
        root = find_repo_root(self.cwd)
        if root is not None and root != self.cwd:
            paths.append(root / ".env")
        return paths

    def _dotenv(self, path: Path) -> dict:
        if path not in self._dotenv_cache:
            from .dotenv_parser import read_dotenv_file  # only when a .env is actually read

            self._dotenv_cache[path] = read_dotenv_file(path) if path.is_file() else {}
        return self._dotenv_cache[path]

    def get(self, *names: str) -> Found | None:
        """First non-empty value for any of ``names`` (earlier names win at each level)."""
        for name in names:
            value = self.env.get(name)
            if value:
                return Found(value, f"env:{name}")
        for path in self.dotenv_paths():
            values = self._dotenv(path)
            for name in names:
                value = values.get(name)
                if value:
                    return Found(value, str(path))
        return None

    def value(self, name: str, default: str = "") -> str:
        found = self.get(name)
        return found.value if found else default
