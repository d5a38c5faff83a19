"""Which host the key goes to: the one place that decides.

``QWEN_REGION`` picks a documented host (``cn`` default, ``intl``, ``us``).
``QWEN_BASE_URL`` overrides it and may be a host root or end in
``/compatible-mode/v1`` or ``/api/v1``; both API bases are derived from its scheme,
host and port. Plain ``http://`` is accepted only for loopback hosts (the sandbox).
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from .errors import CONFIG, QwenOpsError
from .settings import Settings

REGION_ROOTS = {
    "cn": "https://dashscope.aliyuncs.com",
    "intl": "https://dashscope-intl.aliyuncs.com",
    "us": "https://dashscope-us.aliyuncs.com",
}
TOKEN_PLAN_ROOT = "https://token-plan.cn-beijing.maas.aliyuncs.com"  # noqa: S105 - a host
COMPATIBLE_PATH = "/compatible-mode/v1"
NATIVE_PATH = "/api/v1"
ANTHROPIC_PATH = "/apps/anthropic"
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

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (written out to keep ipaddress off the probe's start-up path)."""
    host = host.lower().strip("[]")
    if host in ("localhost", "::1", "0:0:0:0:0:0:0:1"):
        return True
    parts = host.split(".")
    return (len(parts) == 4 and parts[0] == "127"
            and all(p.isdigit() and p.isascii() and int(p) <= 255 for p in parts))


def parse_base_url(raw: str, what: str = "QWEN_BASE_URL") -> str:
    """Validate a base URL and return its ``scheme://host[:port]`` root."""
    raw = raw.strip()
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
    if parts.path.rstrip("/") not in _ALLOWED_PATHS:
        raise QwenOpsError(
            f"{what} path must be empty, {COMPATIBLE_PATH} or {NATIVE_PATH}", CONFIG)
    host = parts.hostname
    if parts.scheme == "http" and not is_loopback_host(host):
        raise QwenOpsError(f"{what} uses plain http:// to a remote host; use https://", CONFIG)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"


KNOWN_HOSTS = frozenset(root.split("://", 1)[1] for root in (*REGION_ROOTS.values(), TOKEN_PLAN_ROOT))


def check_file_sourced_host(name: str, host: str, source: str, trusted_suffixes: tuple = ()) -> None:
    """A .env file (possibly from a cloned repository) may not send credentials to an unknown host.

    Documented hosts and loopback are fine from anywhere; any other host must be set in the
    process environment, where only the user puts it.
    """
    if source.startswith("env:") or is_loopback_host(host) or host in KNOWN_HOSTS:
        return
    if trusted_suffixes and host.endswith(trusted_suffixes):
        return
    raise QwenOpsError(f"{name} in {source} points to {host}, which is not a documented host; "
                       "set it in the environment instead if you really mean it", CONFIG)


def resolve_endpoint(settings: Settings) -> Endpoint:
    found = settings.get("QWEN_BASE_URL")
    if found is not None:
        root = parse_base_url(found.value)
        check_file_sourced_host("QWEN_BASE_URL", urlsplit(root).hostname or "", found.source)
        return Endpoint(root, "custom", f"QWEN_BASE_URL ({found.source})")
    region_found = settings.get("QWEN_REGION")
    if region_found is None:
        return Endpoint(REGION_ROOTS["cn"], "cn", "default")
    region = region_found.value.strip().lower()
    if region not in REGION_ROOTS:
        raise QwenOpsError(
            f"QWEN_REGION must be one of {', '.join(REGION_ROOTS)} (from {region_found.source})", CONFIG)
    return Endpoint(REGION_ROOTS[region], region, f"QWEN_REGION ({region_found.source})")
