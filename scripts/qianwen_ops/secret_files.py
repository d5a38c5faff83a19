"""Files that must never be uploaded: credential files by name, and small files holding a secret.

An upload turns a file into a URL (in custom OSS mode a shareable presigned link), so a
``.env`` named by mistake would publish the key. Before any byte is sent, an input is refused
(exit 10, one line, never its content) when

* its name marks it as a credential file (``CREDENTIAL_NAMES``, ``CREDENTIAL_SUFFIXES``,
  ``.env.*``, ``config.json`` inside a ``.bailian`` folder, the dashscope SDK's ``.dashscope/api_key``), or
* it is at most ``SCAN_LIMIT`` bytes and its content holds a secret this process has loaded
  (the API key with or without its ``sk-`` prefix, an OSS AccessKey secret, an STS token: every
  value ``redaction.remember`` was given).
"""

from __future__ import annotations

from pathlib import Path

from . import errors, redaction
from .errors import QwenOpsError
from .fsutil import read_limited

SCAN_LIMIT = 1024 * 1024
CREDENTIAL_NAMES = frozenset({
    ".env", ".netrc", "_netrc", ".pgpass", ".npmrc", ".pypirc", ".git-credentials", "credentials",
    "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519",
})
CREDENTIAL_SUFFIXES = (".env", ".pem", ".key")


def is_credential_name(path: Path) -> bool:
    """True when the file's name (or ``.bailian/config.json``, ``.dashscope/api_key``) marks it as holding
    credentials."""
    name = path.name.lower()
    if name in CREDENTIAL_NAMES or name.startswith(".env.") or name.endswith(CREDENTIAL_SUFFIXES):
        return True
    return (name, path.parent.name.lower()) in (("config.json", ".bailian"), ("api_key", ".dashscope"))


def contains_secret(data: bytes) -> bool:
    """True when ``data`` holds any secret this process has loaded (exact bytes, any prefix form)."""
    return any(secret.encode("utf-8", "surrogatepass") in data for secret in redaction.loaded_secrets())


def refuse_credentials(path: Path, size: int, shown: str) -> None:
    """Raise exit 10 when ``path`` must not be uploaded (see the module docstring)."""
    # read_limited: a regular file only, never past SCAN_LIMIT; unreadable now -> the upload's own open says so
    if is_credential_name(path) or (size <= SCAN_LIMIT and contains_secret(read_limited(path, SCAN_LIMIT) or b"")):
        raise QwenOpsError(f"refusing to upload {shown}: it holds credentials", errors.INPUT_FILE)
