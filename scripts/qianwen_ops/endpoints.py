"""Which host the key goes to: the one place that decides.

``QWEN_REGION`` picks a documented host (``cn`` default, ``intl``, ``us``).
``QWEN_BASE_URL`` overrides it and may be a host root or end in
``/compatible-mode/v1`` or ``/api/v1``; both API bases are derived from its scheme,
host and port. Plain ``http://`` is accepted only for loopback hosts (the sandbox).

``parse_url`` is the one URL validator, for the API base and the custom-OSS endpoint alike.
Values read from a ``.env`` file are judged by where they came from: such a file may name only
documented hosts (DashScope for the API, ``*.aliyuncs.com`` for OSS), and a ``.env`` that git
tracks (a cloned repository's) may not redirect anything at all.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from . import network
from .errors import CONFIG, QwenOpsError
from .named_tuple import NamedTuple
from .settings import Settings

REGION_ROOTS = {
    "cn": "https://dashscope.aliyuncs.com",
    "intl": "https://dashscope-intl.aliyuncs.com",
    "us": "https://dashscope-us.aliyuncs.com",
}
TOKEN_PLAN_ROOT = "https://token-plan.cn-beijing.maas.aliyuncs.com"  # noqa: S105 - a host
COMPATIBLE_PATH = "/compatible-mode/v1"
NATIVE_PATH = "/api/v1"
_ALLOWED_PATHS = ("", "/", COMPATIBLE_PATH, NATIVE_PATH)


class Endpoint(NamedTuple):
    root: str            # scheme://host[:port], no path
    region: str          # cn / intl / us / custom
    source: str          # "QWEN_BASE_URL (env:...)", "QWEN_REGION", "default"

    @property
    def host(self) -> str:
        return urlsplit(self.root).hostname or ""

    @property
    def compatible_base(self) -> str:
        return self.root + COMPATIBLE_PATH

    @property
    def native_base(self) -> str:
        return self.root + NATIVE_PATH

    @property
    def is_token_plan(self) -> bool:
        return self.host.startswith("token-plan.") and self.host.endswith(".maas.aliyuncs.com")


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (written out to keep ipaddress off the probe's start-up path)."""
    host = host.lower().strip("[]")
    if host in ("localhost", "::1", "0:0:0:0:0:0:0:1"):
        return True
    parts = host.split(".")
    return (len(parts) == 4 and parts[0] == "127"
            and all(p.isdigit() and p.isascii() and int(p) <= 255 for p in parts))


def parse_url(raw: str, what: str, paths: tuple = ("", "/"), default_scheme: str = "") -> tuple:
    """Validate an endpoint URL; return ``(root, path)`` with root ``scheme://host[:port]``.

    ``paths`` are the paths allowed after the host (anything else is refused, never dropped);
    ``default_scheme`` lets a bare host name stand for ``default_scheme://host``.
    """
    raw = raw.strip()
    if default_scheme and "://" not in raw:
        raw = f"{default_scheme}://{raw}"
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise QwenOpsError(f"{what} is not a valid URL", CONFIG) from None
    if parts.scheme not in ("http", "https"):
        raise QwenOpsError(f"{what} must start with https:// (got a non-http(s) URL)", CONFIG)
    if not parts.hostname:
        raise QwenOpsError(f"{what} has no host name", CONFIG)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise QwenOpsError(f"{what} must not carry a user name or password", CONFIG)
    if parts.query or parts.fragment:
        raise QwenOpsError(f"{what} must not have a query string or fragment", CONFIG)
    host = parts.hostname
    if not network.valid_host(host):
        raise QwenOpsError(f"{what} has a malformed host name (an empty label, a label over 63 characters "
                           "or starting or ending with '-', characters other than letters, digits, '-' and '_', "
                           "or an IPv6 zone)", CONFIG)
    path = parts.path.rstrip("/")
    if path not in paths:
        shown = ", ".join(p for p in paths if p not in ("", "/"))
        raise QwenOpsError(f"{what} path must be empty" + (f", {shown}" if shown else "")
                           + " (other paths are not used, so they are refused)", CONFIG)
    if parts.scheme == "http" and not is_loopback_host(host):
        raise QwenOpsError(f"{what} uses plain http:// to a remote host; use https://", CONFIG)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}", path


def parse_base_url(raw: str, what: str = "QWEN_BASE_URL") -> str:
    """Validate an API base URL and return its ``scheme://host[:port]`` root."""
    return parse_url(raw, what, _ALLOWED_PATHS)[0]


KNOWN_HOSTS = frozenset(root.split("://", 1)[1] for root in (*REGION_ROOTS.values(), TOKEN_PLAN_ROOT))


def check_file_sourced_host(name: str, url: str, source: str, trusted_suffixes: tuple = ()) -> None:
    """A .env file (possibly from a cloned repository) may not send credentials to an unknown host.

    From a file only documented hosts pass (plus ``trusted_suffixes``), on the https port; loopback,
    any other host and any other port must be set in the process environment, where only the user
    puts it.
    """
    if source.startswith("env:"):
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not (host in KNOWN_HOSTS or (trusted_suffixes and host.endswith(trusted_suffixes))):
        kind = "a loopback host" if is_loopback_host(host) else "not a documented host"
        raise QwenOpsError(f"{name} in {source} points to {host}, which is {kind}; a .env file may only name "
                           "documented hosts: set it in the environment instead if you really mean it", CONFIG)
    if parts.port not in (None, 443):
        raise QwenOpsError(f"{name} in {source} names port {parts.port}; a .env file may only name documented "
                           "hosts on the https port: set it in the environment instead if you really mean it",
                           CONFIG)


@lru_cache(maxsize=16)
def is_git_tracked(path: Path) -> bool:
    """True when git tracks ``path`` (a committed file: whoever commits to that repository wrote it).

    Runs git only when asked, i.e. only when a redirecting value really came from a .env file.
    Without git, or outside a work tree, the answer is False. git runs through ``gitrun.run_git``,
    so a cloned repository's configuration cannot make this check run a program.
    """
    from .gitrun import run_git

    path = Path(path)
    done = run_git(path.parent, "ls-files", "--error-unmatch", "--", path.name)
    return done is not None and done.returncode == 0


def check_not_tracked(name: str, source: str) -> None:
    """Refuse a redirecting value (endpoint, bucket) that comes from a git-tracked .env file."""
    if source.startswith("env:") or not is_git_tracked(Path(source).absolute()):
        return
    raise QwenOpsError(f"{name} in {source} is not used: git tracks that file, so whoever commits to the "
                       f"repository would choose where your data goes; set {name} in the environment "
                       "(export it) or in a .env that git ignores", CONFIG)


def resolve_endpoint(settings: Settings) -> Endpoint:
    found = settings.get("QWEN_BASE_URL")
    if found is not None:
        root = parse_base_url(found.value)
        check_file_sourced_host("QWEN_BASE_URL", root, found.source)
        check_not_tracked("QWEN_BASE_URL", found.source)
        return Endpoint(root, "custom", f"QWEN_BASE_URL ({found.source})")
    region_found = settings.get("QWEN_REGION")
    if region_found is None:
        return Endpoint(REGION_ROOTS["cn"], "cn", "default")
    region = region_found.value.strip().lower()
    if region not in REGION_ROOTS:
        raise QwenOpsError(
            f"QWEN_REGION must be one of {', '.join(REGION_ROOTS)} (from {region_found.source})", CONFIG)
    return Endpoint(REGION_ROOTS[region], region, f"QWEN_REGION ({region_found.source})")
