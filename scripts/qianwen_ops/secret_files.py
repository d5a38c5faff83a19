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
  (``HOME_STORES`` below the home folder, and the files the variables in ``ENV_STORES`` name,
  ``~/`` and relative values included), by real path or by identity (device and inode: the same
  file under another name, such as another letter case on a case-insensitive volume, a bind
  mount or a hard link), or
* it is at most ``SCAN_LIMIT`` bytes and holds a private key block (``-----BEGIN ... PRIVATE
  KEY-----``, a PuTTY key), or
* it is at most ``SCAN_LIMIT`` bytes and holds a secret this process has loaded (the API key with
  or without its ``sk-`` prefix, an OSS AccessKey secret, an STS token: every value
  ``redaction.remember`` was given), in UTF-8, UTF-16 or UTF-32 (either byte order).

``allow_credential_files=True`` (``upload_file.py --allow-credential-file``) lifts every rule but
the last: a user who really means to upload a key file may, but the secrets this very run uses
never leave.

The file judged is the file read: the checks judge the identity ``local_files.check_file``
recorded (the real path must still be that file), and every read goes through
``local_files.open_regular``, which refuses a file whose identity is not that one.

Two more rules keep a secret out of what is sent and printed besides the content: an input whose
*name* holds a loaded secret or a key shape (``KEY_SHAPE``) is not uploaded, since the name becomes
part of the object and its URL (``name_reason``); a URL handed to the model unchanged (``http(s)://``,
``oss://``, ``data:``) that holds one is refused (``url_reason``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

from . import errors, redaction
from .credentials import SDK_KEY_FILE_VARIABLE, sdk_key_file_named
from .errors import QwenOpsError
from .local_files import LocalFile, display, open_regular

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
# Credentials by their shape, whoever's they are: an API key (sk-, sk-sp-, sk-ws-) or an AccessKey ID (LTAI...).
KEY_SHAPE = r"(?<![A-Za-z0-9])(?:sk-(?:sp-|ws-)?[A-Za-z0-9]{16,}|LTAI[A-Za-z0-9]{12,})"
# Shapes with no prefix, for text that must hold no credential at all (the release tree): an AccessKey secret
# (30 letters and digits, mixed case) and an STS token (CAIS...).
UNPREFIXED_SHAPE = (r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9]{0,29}[A-Z])(?=[A-Za-z0-9]{0,29}[a-z])"
                    r"(?=[A-Za-z0-9]{0,29}[0-9])[A-Za-z0-9]{30}(?![A-Za-z0-9+/=])"
                    r"|(?<![A-Za-z0-9+/])CAIS[A-Za-z0-9+/=]{40,}")
_KEY_SHAPE = re.compile(KEY_SHAPE)
STORE_WALK_LIMIT = 4096    # files looked at below the folder stores (~/.ssh, ~/.gnupg...), for their identities
STORE_REFRESH_SECONDS = 60  # how long the stores found are trusted in one process
# A secret in these encodings is found in a file (PowerShell 5.1 writes UTF-16LE with a BOM).
SECRET_ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


def private_key_in(data: bytes) -> bool:
    """Does ``data`` hold a private key as the upload check judges it (a PEM block's header, whatever follows
    it: ``Proc-Type:`` lines, JSON's ``\\n`` escapes; a PuTTY key file)? Bytes as written, no decoding."""
    return _PRIVATE_KEY.search(data) is not None


def is_credential_name(path: Path) -> bool:
    """True when the file's name (or ``.bailian/config.json``, ``.dashscope/api_key``) marks it as holding
    credentials."""
    return _credential_name(path.name, path.parent.name)


def _credential_name(name: str, folder: str) -> bool:
    """``is_credential_name`` of a file ``name`` in a folder named ``folder``."""
    name = name.lower()
    if name in CREDENTIAL_NAMES or name.startswith(".env.") or name.endswith(CREDENTIAL_SUFFIXES):
        return True
    return (name, folder.lower()) in (("config.json", ".bailian"), ("api_key", ".dashscope"))


def _credential_path(path: str) -> bool:
    """``is_credential_name`` of a path as ``pathlib`` or ``realpath`` writes it (no ``.``, no doubled or
    trailing separator), without building path objects: the check runs for every input."""
    folder, name = os.path.split(path)
    return _credential_name(name, os.path.basename(folder))


@lru_cache(maxsize=8)
def _stores(home: str, moved: tuple, _period: int) -> tuple:
    """(real paths of the stores, the folder stores' real paths ending in a separator, {(device, inode): path} of
    every store file that exists), found once per home, variables and ``STORE_REFRESH_SECONDS``."""
    found = []
    for entry in HOME_STORES:
        subtree = entry.endswith("/*")
        found.append((_real(os.path.join(home, entry[:-2] if subtree else entry)), subtree))
    for value, inner in moved:
        subtree = inner == "/*"
        found.append((_real(os.path.join(value, "" if subtree else inner) if inner else value), subtree))
    files = frozenset(path for path, subtree in found if not subtree) | {path for path, subtree in found if subtree}
    below = tuple(path.rstrip(os.sep) + os.sep for path, subtree in found if subtree)
    return files, below, _identities(found)


def _identities(stores) -> dict:
    """{(device, inode): path} of the store files that exist, and of the files below the folder stores
    (links followed, at most ``STORE_WALK_LIMIT`` of them): the stores under any other name."""
    found: dict = {}
    budget = [STORE_WALK_LIMIT]

    def add(path: str) -> None:
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            return
        if stat.S_ISREG(info.st_mode) and info.st_ino:   # no inode number (some Windows volumes): no identity
            found.setdefault((info.st_dev, info.st_ino), path)

    def walk(folder: str, depth: int) -> None:
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                    if entry.is_dir(follow_symlinks=False):
                        if depth < 4:
                            walk(entry.path, depth + 1)
                    else:
                        add(entry.path)
        except OSError:
            return

    for path, subtree in stores:
        if subtree:
            walk(path, 0)
        else:
            add(path)
    return found


def _real(path) -> str:
    """The real path, links resolved, in the platform's case (Windows compares paths case-insensitively)."""
    return os.path.normcase(os.path.realpath(path))


def _named_path(value: str, home: str, cwd: str) -> str:
    """A path a variable holds, as its tool reads it: ``~/`` is the home folder, a relative path the working
    folder's (``cwd``; none known: "")."""
    if value == "~" or value.startswith(("~/", "~" + os.sep)):
        value = os.path.join(home, value[2:])
    if os.path.isabs(value):
        return os.path.normpath(value)
    return os.path.normpath(os.path.join(cwd, value)) if cwd else ""


_STORE_VARIABLES = tuple(dict.fromkeys(variable for variable, _ in ENV_STORES))


def _moved_stores(home: Path, env: Mapping[str, str]) -> tuple:
    """(absolute path, inner) of what each ``ENV_STORES`` variable set in ``env`` names."""
    values = tuple(env.get(variable) for variable in _STORE_VARIABLES)
    if not any(values):
        return ()
    try:
        cwd = os.getcwd()
    except OSError:   # the working folder is gone: relative values name nothing
        cwd = ""
    return _moved(str(home), values, cwd)


@lru_cache(maxsize=8)
def _moved(home: str, values: tuple, cwd: str) -> tuple:
    env = {variable: value for variable, value in zip(_STORE_VARIABLES, values) if value}
    moved = []
    for variable, inner in ENV_STORES:
        if variable == SDK_KEY_FILE_VARIABLE:   # the key chain's own rule for this path (credentials.py)
            named = sdk_key_file_named(env, Path(home))
            paths = [_named_path(str(named), home, cwd)] if named is not None else []
        else:
            paths = [_named_path(value, home, cwd) for value in
                     (env.get(variable) or "").split(os.pathsep if variable == "KUBECONFIG" else "\0") if value]
        moved.extend((path, inner) for path in paths if path)
    return tuple(moved)


def credential_stores(home: Path, env: Mapping[str, str]) -> tuple:
    """(stores, folder stores ending in a separator, {(device, inode): path}) of ``HOME_STORES`` below ``home``
    and of what ``ENV_STORES`` name in ``env``: real paths, in the platform's case (see ``_stores``)."""
    return _stores(os.path.abspath(str(home)), _moved_stores(home, env), int(time.monotonic() // STORE_REFRESH_SECONDS))


def _store_label(real: str, home: Path) -> str:
    home_real = os.path.realpath(str(home))
    return display("~" + real[len(home_real):] if real.startswith(home_real + os.sep) else real)


class _Changed(Exception):
    """The real path of an input is no longer the file checked (a link re-pointed meanwhile)."""


class PlaceJudge:
    """What ``place_reason`` needs, for the inputs of one batch: what they share is found once, not per input:
    the credential stores (``credential_stores``, refreshed as it is) and the real path of each folder the
    inputs are in (POSIX; Windows asks the system for each file's final path).

    A file's real path is its folder's real path and its name, when that name is no link (the ``lstat``
    the identity check needs anyway says so); a link, or a name such as ``..``, is resolved whole. A folder
    re-pointed while the batch runs changes nothing found: the identity check (device and inode of the
    checked file at the real path) and the stores' identities judge the file itself, not its path.
    """

    def __init__(self, home: Path, env: Mapping[str, str]):
        self.home, self.env = home, env
        self._folders: dict = {}       # folder as written -> (its real path, its name, its real name)
        self._stores: tuple = (None, None)   # (refresh period, credential_stores)

    def stores(self) -> tuple:
        period = int(time.monotonic() // STORE_REFRESH_SECONDS)
        if self._stores[0] != period:
            self._stores = (period, credential_stores(self.home, self.env))
        return self._stores[1]

    def locate(self, path: str) -> tuple:
        """(real path of ``path``, its ``lstat``, whether ``path`` is named like a credential file
        (``is_credential_name``), whether its real path is); OSError or ValueError when it cannot be examined."""
        if os.name != "nt":
            folder, name = os.path.split(path)
            if name not in ("", ".", ".."):
                known = self._folders.get(folder)
                if known is None:   # (real path, the folder's name as written, its real name)
                    real_folder = os.path.realpath(folder or os.curdir)
                    known = (real_folder, os.path.basename(folder), os.path.basename(real_folder))
                    self._folders[folder] = known
                real = os.path.join(known[0], name)
                info = os.lstat(real)
                if not stat.S_ISLNK(info.st_mode):
                    named = _credential_name(name, known[1])
                    return real, info, named, named if known[1] == known[2] else _credential_name(name, known[2])
        real = os.path.realpath(path)
        return real, os.lstat(real), _credential_path(path), _credential_path(real)


def place_reason(local: LocalFile, judge: PlaceJudge) -> tuple:
    """(named like a credential file, why the checked file ``local`` is a credential file by what it really is
    (links resolved) or by its identity (a store under another name), else ""). Raises ``_Changed`` when the
    real path no longer names the file ``check_file`` saw (then what was judged would not be what is read)."""
    path = str(local.path)
    try:
        real, info, named, real_named = judge.locate(path)
    except (OSError, ValueError):
        raise _Changed() from None
    if (info.st_dev, info.st_ino) != (local.device, local.inode):
        raise _Changed()
    if named or real_named:
        return named, "" if real == os.path.abspath(path) else f"it is {_store_label(real, judge.home)}"
    real = os.path.normcase(real)
    stores, below, identities = judge.stores()
    if real in stores or real.startswith(below):
        return False, f"it is {_store_label(real, judge.home)}, a credential store"
    store = identities.get((local.device, local.inode))
    if store is not None:
        return False, f"it is {_store_label(os.path.normcase(store), judge.home)}, a credential store"
    return False, ""


@lru_cache(maxsize=4)
def _needles(secrets: tuple) -> tuple:
    """Each secret in every ``SECRET_ENCODINGS`` (a form that holds a shorter one is covered by it)."""
    shortest = [s for s in secrets if not any(other != s and other in s for other in secrets)]
    return tuple({s.encode(encoding, "surrogatepass") for s in shortest for encoding in SECRET_ENCODINGS})


def contains_secret(data: bytes) -> bool:
    """True when ``data`` holds any secret this process has loaded (exact bytes, any prefix form, UTF-8, UTF-16
    or UTF-32 in either byte order, with or without a BOM)."""
    return any(needle in data for needle in _needles(tuple(sorted(redaction.loaded_secrets()))))


def name_reason(name: str) -> str:
    """Why a file must not be uploaded under ``name`` (it becomes part of the object and its URL): it holds a secret
    this process has loaded (or 12 characters of one, in any case: ``redaction.holds_secret``) or a key shape;
    else ""."""
    if redaction.holds_secret(name) or _KEY_SHAPE.search(name):
        return "its name holds an API key or a secret this run uses, and the name would be part of the URL"
    return ""


def url_reason(url: str) -> str:
    """Why a URL handed to the model unchanged must not be: it holds a secret this process has loaded or a key
    shape, as written, percent-decoded, or (a base64 ``data:`` URL up to ``SCAN_LIMIT``) in its content; else ""."""
    decoded = unquote(url) if "%" in url else url
    if any(redaction.holds_secret(text) or _KEY_SHAPE.search(text) for text in {url, decoded}):
        return "it holds an API key or a secret this run uses"
    head, comma, payload = url.partition(",")
    if head[:5].lower() == "data:" and comma and head.lower().endswith(";base64") and len(payload) <= SCAN_LIMIT * 2:
        try:
            data = base64.b64decode(unquote(payload), validate=False)
        except (binascii.Error, ValueError):
            data = b""
        if contains_secret(data) or _KEY_SHAPE.search(data.decode("latin-1")):
            return "its content holds an API key or a secret this run uses"
    return ""


def refuse_url(url: str) -> None:
    """Raise exit 10 for a URL that must not reach the model (``url_reason``); the URL is never echoed."""
    why = url_reason(url)
    if why:
        raise QwenOpsError(f"{display(url)}: {why}; refusing to pass it to the model (nothing was sent)",
                           errors.INPUT_FILE)


def _refuse(shown: str, why: str = "", verb: str = "upload") -> QwenOpsError:
    return QwenOpsError(f"refusing to {verb} {shown}: it holds credentials" + (f" ({why})" if why else ""),
                        errors.INPUT_FILE)


def refuse_by_place(local: LocalFile, shown: str, home: Path, env: Mapping[str, str], allow: bool = False,
                    verb: str = "upload", judge: PlaceJudge | None = None) -> None:
    """Raise exit 10 for a credential file by name, real path or identity; nothing is read (see the module
    docstring). ``verb``: what would be done with it ("upload", "inline"); ``judge``: the batch's
    ``PlaceJudge``."""
    if allow:
        return
    try:
        named, why = place_reason(local, judge or PlaceJudge(home, env))
    except _Changed:
        raise QwenOpsError(f"{shown}: file changed while it was being checked (a link re-pointed?); nothing of it "
                           "was sent", errors.INPUT_FILE) from None
    if why or named:
        raise _refuse(shown, why, verb)


def refuse_name(local: LocalFile, shown: str) -> None:
    """Raise exit 10 when the file's name must not be uploaded (``name_reason``); never echoed."""
    why = name_reason(local.name)
    if why:
        raise QwenOpsError(f"refusing to upload {shown}: {why}; rename the file", errors.INPUT_FILE)


def refuse_credentials(local: LocalFile, shown: str, allow: bool = False, verb: str = "upload") -> None:
    """Raise exit 10 when the content of the checked file ``local`` must not be uploaded (see the module
    docstring); read through ``open_regular``, so the content judged is that of the file checked."""
    if not allow and is_credential_name(local.path):
        raise _refuse(shown, verb=verb)
    if local.size > SCAN_LIMIT:
        return
    fd = open_regular(local)
    try:
        chunks, left = [], SCAN_LIMIT
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if contains_secret(data):
        raise _refuse(shown, verb=verb)
    if not allow and _PRIVATE_KEY.search(data):
        raise _refuse(shown, "a private key", verb)
