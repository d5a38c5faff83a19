"""The API key: where it comes from and what kind it is — never what it is.

Chain (first match wins): env ``QIANWEN_API_KEY`` (alias, wins over the next),
env ``DASHSCOPE_API_KEY``, ``.env`` in the current directory, ``.env`` at the
repository root, the official ``dashscope`` SDK's key file (``sdk_key_file``: the file named
by ``DASHSCOPE_API_KEY_FILE_PATH``, else ``~/.dashscope/api_key``), and last the Model Studio
CLI's ``config.json`` (its active profile's ``api_key``; see ``bailian_key``). Note that the CLI
itself puts its file *before* ``DASHSCOPE_API_KEY``; doctor says so when the two differ.

Why the SDK's file sits there: the SDK reads ``DASHSCOPE_API_KEY`` first and its file only
without it, and an app that calls ``load_dotenv()`` puts the ``.env`` key into that variable,
so the SDK too prefers the ``.env`` files over its own file; the CLI's file is read by the CLI
only, never by the user's Python code, so it comes last.

The value lives in a ``Secret`` whose ``repr``/``str`` never show it; only
``reveal()`` gives it, where a request header or the user's own code needs the value.
Also here: what to tell the user about a key (``key_advice``), the one mapping from key
status to exit code (``key_exit_code``), and every place a key is set (``key_candidates``),
so doctor can say which one overrides which.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

from . import errors
from .fsutil import read_limited
from .named_tuple import NamedTuple
from .ownership import trusted
from .provenance import tracked_verdict
from .redaction import one_line, remember
from .settings import Settings
from .skill_paths import SKILL_DIR, script_command

KEY_NAMES = ("QIANWEN_API_KEY", "DASHSCOPE_API_KEY")
SDK_KEY_FILE = Path(".dashscope") / "api_key"
SDK_KEY_FILE_VARIABLE = "DASHSCOPE_API_KEY_FILE_PATH"
SDK_KEY_FILE_LIMIT = 64 * 1024
BAILIAN_CONFIG = Path(".bailian") / "config.json"
BAILIAN_CONFIG_LIMIT = 1024 * 1024

NOT_SET = "not set"
PLACEHOLDER = "placeholder"
STANDARD = "standard"
TOKEN_PLAN = "token-plan"  # noqa: S105 - a status word, not a secret
MALFORMED = "malformed"

# Real keys and AccessKeys are random letters and digits (hex for standard keys), so
# these fragments only ever appear in templates and documentation.
PLACEHOLDER_WORDS = ("your", "xxxx", "placeholder", "example", "replace", "changeme",
                      "change-me", "-here", "...", "***", "<", ">", "{", "}")


KEY_ADVICE = {
    NOT_SET: "no API key found; run `{setup}` and put your key in the .env it names",
    PLACEHOLDER: "the API key is still the placeholder; replace it in {source} with your key from the console",
    MALFORMED: "the API key in {source} is malformed ({problem}); fix it there",
    TOKEN_PLAN: ("the API key in {source} is a Token Plan key (sk-sp-); Token Plan is for interactive "
                 "tools only and these scripts need a standard pay-as-you-go key (sk-)"),
}


NO_KEY_LIBRARY = ("no API key found; set DASHSCOPE_API_KEY in the environment or in your project's .env "
                  "(or save it with dashscope.save_api_key())")


def _sha256_hex(data: bytes) -> str:
    """SHA-256 of a few bytes in hex, by CPython's own implementation when it has one: a key's fingerprint (the
    reuse cache's scope) then loads no OpenSSL, which ``import hashlib`` does (3-6 ms of a rerun of cached
    files). Files are hashed through ``hashlib``: OpenSSL's is the faster on large inputs."""
    try:
        from _sha256 import sha256  # Python 3.9-3.11
    except ImportError:
        try:
            from _sha2 import sha256  # novermin: 3.12 and later; when absent, the fallback below
        except ImportError:
            from hashlib import sha256
    return sha256(data).hexdigest()


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
        return _sha256_hex((salt + "\0" + self._value).encode("utf-8"))[:16]

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __reduce__(self):  # refuse pickling: a pickle would carry the value
        raise TypeError("a Secret cannot be pickled")


class ApiKey(NamedTuple):
    """What the chain found: status word, source, and the hidden value."""

    status: str          # one of NOT_SET, PLACEHOLDER, STANDARD, TOKEN_PLAN, MALFORMED
    source: str          # "env:QIANWEN_API_KEY", a .env path, "~/.dashscope/api_key", "~/.bailian/config.json", or ""
    secret: Secret | None
    problem: str = ""    # for MALFORMED: which rule it broke (never the value)


# Real keys are "sk-" (or "sk-sp-"/"sk-ws-") plus 32 letters and digits: 35-38 characters. Anything
# over MAX_KEY_LENGTH is no key (a pasted file, a whole .env line), so it is never sent.
MAX_KEY_LENGTH = 200


def classify_key(value: str | None) -> tuple[str, str]:
    """Return (status, problem) for a key value without any network access."""
    if value is None or value == "":
        return NOT_SET, ""
    if len(value) > MAX_KEY_LENGTH:
        return MALFORMED, f"longer than {MAX_KEY_LENGTH} characters; real keys have about 35"
    if value != value.strip():
        return MALFORMED, "leading or trailing whitespace"
    if value[0] in "'\"" or value[-1] in "'\"":
        return MALFORMED, "surrounding quotes"
    if value.lower().startswith("bearer"):
        return MALFORMED, "includes a 'Bearer ' prefix"
    lowered = value.lower()
    if lowered in ("sk-", "sk-sp-") or any(word in lowered for word in PLACEHOLDER_WORDS):
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


def is_template_value(value: str) -> bool:
    """A value a template leaves for the user to fill in (``your-bucket``, ``<bucket>``, ``...-here``); a real
    value of any kind (a host, a base64 token) never looks like this."""
    lowered = value.strip().lower()
    return lowered.startswith("your") or "-here" in lowered or any(c in lowered for c in "<>{}")


def is_placeholder_secret(value: str) -> bool:
    """An AccessKey ID or secret that cannot be real: a template value, or a placeholder word next to other
    punctuation. Real AccessKey IDs and secrets are letters and digits (STS IDs add a dot), so
    ``your-accesskey-id`` is a placeholder while a random secret that happens to contain "your" is not."""
    lowered = value.lower()
    return is_template_value(value) or (any(word in lowered for word in PLACEHOLDER_WORDS)
                                        and not (value.replace(".", "").isalnum() and value.isascii()))


def key_advice(key: "ApiKey") -> str:
    """One line saying what is wrong with an unusable key and where to fix it (never the value)."""
    if key.status == NOT_SET and not (SKILL_DIR / "scripts" / "setup_env.py").is_file():
        return NO_KEY_LIBRARY  # the library installed with pip: no skill folder, no setup script beside it
    return KEY_ADVICE[key.status].format(source=key.source or ".env", problem=key.problem,
                                         setup=script_command("setup_env.py"))


def key_exit_code(key: "ApiKey") -> int:
    """The one mapping from key status to exit code (probe, doctor and uploads use it)."""
    if key.status == STANDARD:
        return errors.OK
    return errors.TOKEN_PLAN_KEY if key.status == TOKEN_PLAN else errors.NO_KEY


# The Model Studio CLI (npm ``bailian-cli``, github.com/modelstudioai/cli, src/config/paths.ts and
# src/config/loader.ts: readRawConfigObject, readStoredActiveConfigName, readRawConfigBlock,
# buildSources): the file is ``$BAILIAN_CONFIG_DIR/config.json`` when that variable is set, else
# ``~/.bailian/config.json``; one JSON object whose top level is the default profile (``api_key``,
# ``base_url``...); ``active_config`` names the active profile, a top-level key whose value is an
# object of the same fields; a name must match /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/ and "default"
# means the top level. A file that is not a JSON object counts as empty (the CLI warns and uses
# defaults); so does anything unreadable, too large (1 MiB) or too deeply nested here.
_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def bailian_config_path(settings: Settings) -> tuple[Path, str]:
    """(path, how to name it) of the CLI's config file; only the process environment can move it."""
    folder = settings.env.get("BAILIAN_CONFIG_DIR")
    if folder:
        return Path(folder) / "config.json", "$BAILIAN_CONFIG_DIR/config.json"
    return settings.home / BAILIAN_CONFIG, "~/.bailian/config.json"


def bailian_profile(settings: Settings) -> tuple[dict, str] | None:
    """(active profile's fields, source) of the CLI's config file, or None. Never raises."""
    path, label = bailian_config_path(settings)
    raw = read_limited(path, BAILIAN_CONFIG_LIMIT)
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(data, dict):
        return None
    block, source = data, label
    active = data.get("active_config")
    if isinstance(active, str) and active != "default" and _PROFILE_NAME.fullmatch(active):
        block = data.get(active)
        if not isinstance(block, dict):
            return None  # the CLI refuses an active profile that does not exist
        source = f"{label} (profile {active})"
    return block, source


def bailian_key(settings: Settings) -> tuple[str, str] | None:
    """(value, source) of the CLI's active-profile ``api_key``, or None. Never raises."""
    profile = bailian_profile(settings)
    if profile is None:
        return None
    value = profile[0].get("api_key")
    if isinstance(value, str) and value.strip():
        return value.strip(), profile[1]
    return None


# The official SDK (dashscope 2.0.2: dashscope/common/api_key.py get_default_api_key, and
# dashscope/v2/_config.py _api_key_from_file): without DASHSCOPE_API_KEY it reads the whole file named
# by DASHSCOPE_API_KEY_FILE_PATH (a process environment variable) and strips it; only when that
# variable is unset, ~/.dashscope/api_key (what dashscope.save_api_key() writes). The folder is the
# constant DEFAULT_DASHSCOPE_CACHE_PATH = Path.home() / ".dashscope" (common/constants.py): no
# environment variable moves it. Here the file is read bounded (64 KiB), a regular file only, and
# only when it and its folder belong to the current user (or to root) and the folder is not
# writable by others, the rule .env files follow.

def sdk_key_file_named(env, home: Path) -> Path | None:
    """The file ``DASHSCOPE_API_KEY_FILE_PATH`` in ``env`` names, or None: the one place that decides it (the key
    chain reads it, ``secret_files`` never uploads it). ``~/`` is ``home``; a relative path is the working folder's."""
    named = env.get(SDK_KEY_FILE_VARIABLE)
    if not named:
        return None
    return home / named[2:] if named == "~" or named.startswith("~/") else Path(named)


def sdk_key_file_path(settings: Settings) -> tuple[Path, str]:
    """(path, how to name it) of the SDK's key file; only the process environment can move it."""
    path = sdk_key_file_named(settings.env, settings.home)
    if path is not None:
        return path, f"${SDK_KEY_FILE_VARIABLE} ({path})"
    return settings.home / SDK_KEY_FILE, "~/.dashscope/api_key"


def _owned_by_root(path: Path) -> bool:
    """A root-owned file in a root-owned folder others cannot write (a mounted secret): root is trusted."""
    try:
        info, folder = os.stat(path), os.stat(path.parent)
    except OSError:
        return False
    return info.st_uid == 0 and folder.st_uid == 0 and not folder.st_mode & stat.S_IWOTH


def sdk_key_file(settings: Settings) -> tuple[str, str] | None:
    """(value, source) from the SDK's key file, or None (missing, empty, special, too large, untrusted)."""
    path, label = sdk_key_file_path(settings)
    if not os.path.lexists(path) or not (_owned_by_root(path) or trusted(path)):
        return None
    raw = read_limited(path, SDK_KEY_FILE_LIMIT)
    if raw is None:
        return None
    value = raw.decode("utf-8", "replace").strip()
    return (value, label) if value else None


def is_sdk_key_source(source: str) -> bool:
    """True for a key source naming the SDK's key file (what ``sdk_key_file`` reports)."""
    return source.startswith(("~/.dashscope/", f"${SDK_KEY_FILE_VARIABLE}"))


class KeyCandidate(NamedTuple):
    source: str
    fingerprint: str     # salted with the caller's salt; never the value
    status: str


def key_candidates(settings: Settings, salt: str) -> list:
    """Every place a key is set, in chain order (the first is the one in effect)."""
    found = []

    def add(value: str, source: str) -> None:
        if value:
            secret = Secret(value)
            found.append(KeyCandidate(source, secret.fingerprint(salt), classify_key(value)[0]))

    for name in KEY_NAMES:
        add(settings.env.get(name) or "", f"env:{name}")
    for path in settings.dotenv_paths():
        try:
            values = settings.dotenv_values(path)
        except errors.QwenOpsError:  # an unreadable .env is reported by the key check itself
            values = {}
        for name in KEY_NAMES:
            add(values.get(name) or "", str(path))
    from_sdk = sdk_key_file(settings)
    if from_sdk is not None:
        add(*from_sdk)
    from_cli = bailian_key(settings)
    if from_cli is not None:
        add(*from_cli)
    return found


CLONED_KEY = ("in a cloned repository that is someone else's key: use your own, in the environment or in a .env "
              "git ignores")


def key_file_is_tracked(settings: Settings, source: str) -> bool:
    """Is the key source ``source`` a ``.env`` the scripts read that git tracks (so, in a cloned repository,
    someone else's key: their account pays and sees the requests)?"""
    if source not in {str(path) for path in settings.dotenv_paths()}:
        return False
    return tracked_verdict(Path(os.path.abspath(source))) == (True, "")


def warn_if_key_is_tracked(settings: Settings) -> None:
    """One stderr line when the key in effect (a real one, not a placeholder) comes from a ``.env`` git tracks
    (probe.py, upload_file.py); never shown, never blocking."""
    try:
        key = find_api_key(settings)
    except errors.QwenOpsError:
        return  # the script's own run reports an unusable setting
    if key.status in (STANDARD, TOKEN_PLAN) and key_file_is_tracked(settings, key.source):
        print(one_line(f"warning: the API key comes from {key.source}, which git tracks: {CLONED_KEY}"),
              file=sys.stderr)


@errors.public
def find_api_key(settings: Settings) -> ApiKey:
    """Walk the chain; the first non-empty value decides (even when it is bad)."""
    found = settings.get(*KEY_NAMES)
    if found is not None:
        value, source = found.value, found.source
    else:
        from_file = sdk_key_file(settings) or bailian_key(settings)
        if from_file is None:
            return ApiKey(NOT_SET, "", None)
        value, source = from_file
    status, problem = classify_key(value)
    return ApiKey(status, source, Secret(value), problem)
