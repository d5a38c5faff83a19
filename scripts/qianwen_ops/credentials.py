"""The API key: where it comes from and what kind it is — never what it is.

Chain (first match wins): env ``QIANWEN_API_KEY`` (alias, wins over the next),
env ``DASHSCOPE_API_KEY``, ``.env`` in the current directory, ``.env`` at the
repository root, and last ``~/.bailian/config.json`` (``api_key``), the file the
Model Studio CLI writes.

The value lives in a ``Secret`` whose ``repr``/``str`` never show it; only
``reveal()`` gives it, and only the HTTP layer calls that.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from .redaction import remember
from .settings import Settings

KEY_NAMES = ("QIANWEN_API_KEY", "DASHSCOPE_API_KEY")
BAILIAN_CONFIG = Path(".bailian") / "config.json"

NOT_SET = "not set"
PLACEHOLDER = "placeholder"
STANDARD = "standard"
TOKEN_PLAN = "token-plan"  # noqa: S105 - a status word, not a secret
MALFORMED = "malformed"

# Real keys are "sk-" plus random letters and digits (hex for standard keys), so
# these fragments only ever appear in templates and documentation.
_PLACEHOLDER_WORDS = ("your", "xxxx", "placeholder", "example", "replace", "changeme",
                      "change-me", "-here", "...", "***", "<", ">", "{", "}")


class Secret:
    """Holds a secret string; printing, logging or formatting it shows nothing."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value
        remember(value)

    def reveal(self) -> str:
        return self._value

    def fingerprint(self, salt: str = "qianwen-ops-auth/v1") -> str:
        """A salted hash that identifies the account without holding the key."""
        import hashlib

        return hashlib.sha256((salt + "\0" + self._value).encode("utf-8")).hexdigest()[:16]

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __reduce__(self):  # refuse pickling: a pickle would carry the value
        raise TypeError("a Secret cannot be pickled")


class ApiKey(NamedTuple):
    """What the chain found: status word, source, and the hidden value."""

    status: str          # one of NOT_SET, PLACEHOLDER, STANDARD, TOKEN_PLAN, MALFORMED
    source: str          # "env:QIANWEN_API_KEY", a .env path, "~/.bailian/config.json", or ""
    secret: Secret | None
    problem: str = ""    # for MALFORMED: which rule it broke (never the value)

    @property
    def usable(self) -> bool:
        return self.status == STANDARD


def classify_key(value: str | None) -> tuple[str, str]:
    """Return (status, problem) for a key value without any network access."""
    if value is None or value == "":
        return NOT_SET, ""
    if value != value.strip():
        return MALFORMED, "leading or trailing whitespace"
    if value[0] in "'\"" or value[-1] in "'\"":
        return MALFORMED, "surrounding quotes"
    if value.lower().startswith("bearer"):
        return MALFORMED, "includes a 'Bearer ' prefix"
    lowered = value.lower()
    if lowered in ("sk-", "sk-sp-") or any(word in lowered for word in _PLACEHOLDER_WORDS):
        return PLACEHOLDER, ""
    if not value.isascii():
        return MALFORMED, "non-ASCII characters"
    if any(ch.isspace() for ch in value):
        return MALFORMED, "inner whitespace"
    if not value.isprintable():
        return MALFORMED, "control characters"
    if lowered.startswith("sk-sp-"):
        return TOKEN_PLAN, ""
    if lowered.startswith("sk-"):
        return STANDARD, ""
    return MALFORMED, "does not start with 'sk-'"


def _bailian_key(home: Path) -> tuple[str, str] | None:
    path = home / BAILIAN_CONFIG
    try:
        if not path.is_file() or path.stat().st_size > 1024 * 1024:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("api_key") if isinstance(data, dict) else None
    if isinstance(value, str) and value:
        return value, "~/.bailian/config.json"
    return None


def find_api_key(settings: Settings) -> ApiKey:
    """Walk the chain; the first non-empty value decides (even when it is bad)."""
    found = settings.get(*KEY_NAMES)
    if found is not None:
        value, source = found.value, found.source
    else:
        from_cli = _bailian_key(settings.home)
        if from_cli is None:
            return ApiKey(NOT_SET, "", None)
        value, source = from_cli
    status, problem = classify_key(value)
    return ApiKey(status, source, Secret(value), problem)
