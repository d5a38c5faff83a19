"""URLs and host names: the one place that parses them.

Two readings of a URL, for two questions:

* ``parse_url``: may this *setting* (``QWEN_BASE_URL``, ``DASHSCOPE_HTTP_BASE_URL``,
  ``QWEN_TMP_OSS_ENDPOINT``, a policy's ``upload_host``) name an endpoint? Strict: http(s) only,
  a valid host, no user name or password, no query or fragment, only the paths the caller allows,
  plain ``http://`` only to loopback. A refusal is a configuration error (exit 9).
* ``split_url``: where does this *request* go (``http_client``, ``first_hop``)? Scheme, host,
  port and the origin-form path; a URL that is not http(s) or whose host is malformed is refused
  before any connection.

Both judge host names with ``valid_host``; ``is_loopback_host`` says whether a host is this
machine (written out, so ``ipaddress`` stays off the probe's start-up path).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import CONFIG, NETWORK, QwenOpsError

DEFAULT_PORTS = {"http": 80, "https": 443}
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def valid_host(host: str) -> bool:
    """A DNS name (253 characters at most; labels of 1-63 letters, digits, '-' or '_', no '-' at either
    end; one trailing dot allowed) or an IP literal (IPv6 with or without brackets)."""
    if ":" in host:  # an IPv6 literal; a zone ("%eth0") names an interface, not a host
        return "%" not in host and ip_or_none(host.strip("[]")) is not None
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not set(name.lower()) <= NAME_CHARS:
        return False
    return all(0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-" for label in name.split("."))


def ip_or_none(text: str):
    """``text`` as an ``ipaddress`` address, or None when it is not one."""
    import ipaddress  # deferred: start-up (is_loopback_host is written out for the same reason)

    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (written out to keep ipaddress off the probe's start-up path)."""
    host = host.lower().strip("[]")
    if host in ("localhost", "::1", "0:0:0:0:0:0:0:1"):
        return True
    parts = host.split(".")
    return (len(parts) == 4 and parts[0] == "127"
            and all(p.isdigit() and p.isascii() and int(p) <= 255 for p in parts))


def parse_url(raw: str, what: str, paths: tuple = ("", "/"), default_scheme: str = "") -> tuple:
    """A setting that names an endpoint, validated: ``(root, path)`` with root ``scheme://host[:port]``.

    ``what`` names the setting in the error (exit 9).
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
    if not valid_host(host):
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


def split_url(url: str) -> tuple[str, str, int, str]:
    """Where a request goes: (scheme, host, port, origin-form path) of an http(s) URL; IPv6 literals
    without brackets. A URL that is not http(s) is refused (exit 8), a malformed host too (exit 9).
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise QwenOpsError("refusing to send a request to a non-http(s) URL", NETWORK)
    host = parts.hostname
    if not valid_host(host):
        shown = host if host.isascii() and host.isprintable() and len(host) <= 80 else "(not shown)"
        raise QwenOpsError(f"the host name {shown} is not valid (empty or over-long label, or unusual characters)",
                           CONFIG)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or DEFAULT_PORTS[parts.scheme], path
