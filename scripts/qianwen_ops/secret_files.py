"""Files that must never be uploaded: judged by what they are, not by the name they were given.

An upload turns a file into a URL (in custom OSS mode a shareable presigned link), so a
``.env`` named by mistake would publish the key. Links are resolved first (``realpath``): a
repository that commits ``photo.png -> ~/.ssh/id_rsa`` or ``notes.png -> .env`` gets the file it
points to judged. Before any byte is sent, an input is refused (exit 10, one line, never its
content) when

* its name, or the name of the file it really is, marks it as a credential file
  (``CREDENTIAL_NAMES``, ``CREDENTIAL_SUFFIXES``, ``.env.*``, ``config.json`` in a ``.bailian``
  folder, the dashscope SDK's ``.dashscope/api_key``), or
* it really is one of the well-known credential stores of a developer machine
  (``HOME_STORES`` below the home folder, and the files the variables in ``ENV_STORES`` name), or
* it is at most ``SCAN_LIMIT`` bytes and holds a private key block (``-----BEGIN ... PRIVATE
  KEY-----``, a PuTTY key), or
* it is at most ``SCAN_LIMIT`` bytes and holds a secret this process has loaded (the API key with
  or without its ``sk-`` prefix, an OSS AccessKey secret, an STS token: every value
  ``redaction.remember`` was given).

``allow_credential_files=True`` (``upload_file.py --allow-credential-file``) lifts every rule but
the last: a user who really means to upload a key file may, but the secrets this very run uses
never leave.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from . import errors, redaction
from .errors import QwenOpsError
from .fsutil import is_within, read_limited
from .local_files import display

SCAN_LIMIT = 1024 * 1024
CREDENTIAL_NAMES = frozenset({
    ".env", ".netrc", "_netrc", ".pgpass", ".npmrc", ".pypirc", ".git-credentials", "credentials",
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519",
})
CREDENTIAL_SUFFIXES = (".env", ".pem", ".key")
# The credential stores of a developer machine, relative to the home folder ("/*": everything below).
HOME_STORES = (
    ".ssh/*", ".gnupg/*", ".password-store/*", ".local/share/keyrings/*",
    ".docker/config.json", ".kube/config", ".config/gh/hosts.yml", ".config/hub", ".config/git/credentials",
    ".config/gcloud/application_default_credentials.json", ".config/gcloud/credentials.db",
    ".config/gcloud/access_tokens.db", ".config/gcloud/legacy_credentials/*",
    ".aws/credentials", ".aws/config", ".azure/accessTokens.json", ".azure/msal_token_cache.json",
    ".aliyun/config.json", ".alibabacloud/credentials", ".alibabacloud/credentials.ini", ".ossutilconfig",
    ".dashscope/api_key", ".bailian/config.json",
    ".netrc", "_netrc", ".git-credentials", ".npmrc", ".pypirc", ".pgpass", ".my.cnf", ".vault-token",
    ".cargo/credentials", ".cargo/credentials.toml", ".gem/credentials", ".terraform.d/credentials.tfrc.json",
    ".s3cfg", ".boto", ".config/rclone/rclone.conf",
)
# Variables that move a store elsewhere: (variable, file inside the folder it names, or "" for the file itself,
# "/*" for everything below). KUBECONFIG may list several files.
ENV_STORES = (
    ("DASHSCOPE_API_KEY_FILE_PATH", ""), ("DASHSCOPE_CACHE_PATH", "api_key"), ("BAILIAN_CONFIG_DIR", "config.json"),
    ("AWS_SHARED_CREDENTIALS_FILE", ""), ("AWS_CONFIG_FILE", ""), ("KUBECONFIG", ""),
    ("DOCKER_CONFIG", "config.json"), ("GH_CONFIG_DIR", "hosts.yml"), ("GOOGLE_APPLICATION_CREDENTIALS", ""),
    ("CLOUDSDK_CONFIG", "application_default_credentials.json"), ("CLOUDSDK_CONFIG", "credentials.db"),
    ("NETRC", ""), ("GNUPGHOME", "/*"), ("XDG_CONFIG_HOME", "gh/hosts.yml"),
    ("XDG_CONFIG_HOME", "gcloud/application_default_credentials.json"), ("XDG_CONFIG_HOME", "gcloud/credentials.db"),
    ("XDG_CONFIG_HOME", "git/credentials"), ("XDG_CONFIG_HOME", "rclone/rclone.conf"),
)
_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----|PuTTY-User-Key-File-\d+:")


def is_credential_name(path: Path) -> bool:
    """True when the file's name (or ``.bailian/config.json``, ``.dashscope/api_key``) marks it as holding
    credentials."""
    name = path.name.lower()
    if name in CREDENTIAL_NAMES or name.startswith(".env.") or name.endswith(CREDENTIAL_SUFFIXES):
        return True
    return (name, path.parent.name.lower()) in (("config.json", ".bailian"), ("api_key", ".dashscope"))


@lru_cache(maxsize=8)
def _stores(home: str, moved: tuple) -> tuple:
    """(real path, whole subtree?) of every store, links resolved once per home and variables."""
    found = []
    for entry in HOME_STORES:
        subtree = entry.endswith("/*")
        found.append((_real(os.path.join(home, entry[:-2] if subtree else entry)), subtree))
    for value, inner in moved:
        subtree = inner == "/*"
        found.append((_real(os.path.join(value, "" if subtree else inner) if inner else value), subtree))
    return tuple(found)


def _real(path) -> str:
    """The real path, links resolved, in the platform's case (Windows compares paths case-insensitively)."""
    return os.path.normcase(os.path.realpath(path))


def credential_stores(home: Path, env: Mapping[str, str]) -> tuple:
    """(real path, whole subtree?) of ``HOME_STORES`` below ``home`` and of what ``ENV_STORES`` name in ``env``."""
    moved = []
    for variable, inner in ENV_STORES:
        for value in (env.get(variable) or "").split(os.pathsep if variable == "KUBECONFIG" else "\0"):
            if value and os.path.isabs(value):
                moved.append((value, inner))
    return _stores(os.path.abspath(str(home)), tuple(moved))


def _store_label(real: str, home: Path) -> str:
    home_real = os.path.realpath(str(home))
    return display("~" + real[len(home_real):] if real.startswith(home_real + os.sep) else real)


def place_reason(path: Path, home: Path, env: Mapping[str, str]) -> str:
    """Why ``path`` is a credential file by its name or by what it really is (links resolved), else ""."""
    real = os.path.realpath(path)
    if is_credential_name(path) or is_credential_name(Path(real)):
        return "" if real == os.path.abspath(path) else f"it is {_store_label(real, home)}"
    real = os.path.normcase(real)
    for store, subtree in credential_stores(home, env):
        if is_within(Path(real), Path(store)) if subtree else real == store:
            return f"it is {_store_label(real, home)}, a credential store"
    return ""


def contains_secret(data: bytes) -> bool:
    """True when ``data`` holds any secret this process has loaded (exact bytes, any prefix form)."""
    return any(secret.encode("utf-8", "surrogatepass") in data for secret in redaction.loaded_secrets())


def _refuse(shown: str, why: str = "") -> QwenOpsError:
    return QwenOpsError(f"refusing to upload {shown}: it holds credentials" + (f" ({why})" if why else ""),
                        errors.INPUT_FILE)


def refuse_by_place(path: Path, shown: str, home: Path, env: Mapping[str, str], allow: bool = False) -> None:
    """Raise exit 10 for a credential file by name or real path; nothing is read (see the module docstring)."""
    if allow:
        return
    why = place_reason(path, home, env)
    if why or is_credential_name(path):
        raise _refuse(shown, why)


def refuse_credentials(path: Path, size: int, shown: str, allow: bool = False) -> None:
    """Raise exit 10 when the content of ``path`` must not be uploaded (see the module docstring)."""
    if not allow and is_credential_name(path):
        raise _refuse(shown)
    if size > SCAN_LIMIT:
        return
    # read_limited: a regular file only, never past SCAN_LIMIT; unreadable now -> the upload's own open says so
    data = read_limited(path, SCAN_LIMIT) or b""
    if contains_secret(data):
        raise _refuse(shown)
    if not allow and _PRIVATE_KEY.search(data):
        raise _refuse(shown, "a private key")
