"""Proxies and TLS trust for every HTTP path, decided from the process environment (and, for
proxies, the system settings on Windows and macOS) only.

Never from a ``.env`` file: a cloned repository must not be able to choose the proxy
that sees the traffic or the CA that vouches for the server. Callers pass the process
environment (``os.environ`` by default; the library passes ``Settings.env``, which leaves out the
values a git-tracked ``.env`` put there through ``load_dotenv()``, see ``provenance``);
``Settings`` is not consulted here.

Proxies (as curl and requests read them)
    For an ``https`` URL: ``https_proxy``, ``HTTPS_PROXY``, ``all_proxy``, ``ALL_PROXY``; for
    ``http``: ``http_proxy``, ``HTTP_PROXY`` (ignored when ``REQUEST_METHOD`` is set, the CGI
    "httpoxy" rule), ``all_proxy``, ``ALL_PROXY``. First non-empty wins; lower case before
    upper case. A value without a scheme means ``http://``; a missing port means 80 (as
    requests does). Only ``http://`` proxies are supported (``https://`` and ``socks`` proxies
    are refused with a one-line configuration error). ``user:password@`` in the URL is sent
    as ``Proxy-Authorization: Basic`` on the CONNECT request (or on each absolute-form
    request for a plain-http target) and is registered with ``redaction`` so it is never shown.

System settings (Windows, macOS)
    When no proxy variable is set at all (``NO_PROXY`` aside), the operating system's settings
    are used as ``urllib.request.getproxies()`` reads them: the registry on Windows, System
    Configuration on macOS. The same rules hold (``http://`` proxies only, credentials redacted,
    ``NO_PROXY`` applies) and so does the system's own bypass list (``urllib.request.proxy_bypass``
    semantics: ``<local>`` and the exceptions on Windows, the exceptions list on macOS). A proxy
    from there is labelled "from system settings". Unlike urllib, a ``NO_PROXY`` set alone narrows
    the system proxy instead of switching it off. PAC files and WPAD are not read.

``NO_PROXY`` / ``no_proxy`` (lower case first)
    Comma or space separated: ``*`` (everything), host names, domain suffixes
    (``example.com`` and ``.example.com`` both match ``example.com`` and ``a.example.com``;
    ``*.example.com`` is read as ``.example.com``), IPv4/IPv6 addresses (``[::1]`` or ``::1``),
    CIDR ranges (``10.0.0.0/8``), each optionally with ``:port``. Anything else is a
    configuration error naming the entry. Loopback is *not* bypassed implicitly (curl and
    requests do not either): list ``localhost,127.0.0.1,::1`` in ``NO_PROXY`` as usual.

TLS trust, first that is set wins (and why):
    1. ``SSL_CERT_FILE`` and/or ``SSL_CERT_DIR`` (both are loaded when both are set): OpenSSL's
       own variables, which Python's ``ssl`` and ``urllib`` already honour, so a bare urllib
       one-liner and these scripts trust the same CAs.
    2. ``REQUESTS_CA_BUNDLE``, then 3. ``CURL_CA_BUNDLE``: requests' own order (file or folder).
    4. The system store: the files this Python's OpenSSL was built to read
       (``ssl.get_default_verify_paths()``'s ``openssl_cafile`` and ``openssl_capath``, loaded by
       name) and, on Windows, the Windows "ROOT" and "CA" stores for server authentication, as
       ``load_default_certs()`` loads them. Never ``load_default_certs()`` or
       ``set_default_verify_paths()`` themselves: OpenSSL would read ``SSL_CERT_FILE`` and
       ``SSL_CERT_DIR`` from the real process environment there, including a value that this
       decision left out (a tracked ``.env``'s, copied by ``load_dotenv()``; ``provenance``).
    5. When the system store is empty (the python.org macOS build before "Install
       Certificates.command"): on macOS and Windows ``truststore`` if installed (it asks the operating
       system's own verifier, so a company CA pushed to the keychain works), else ``certifi`` if installed
       (Mozilla's roots; no company CAs), else the empty store (every site then fails with a
       line that says what to install or set).
    A variable that names a file or folder replaces the system store (as in curl and requests).
    One ``SSLContext`` per trust setting per process (creating one costs ~35 ms). No context of
    the bundle writes a TLS key log, whatever ``SSLKEYLOGFILE`` says (``client_context``).

Start-up: the probe loads this module before its one request, and ``first_hop`` opens the TCP
connection meanwhile; so ``ssl`` (and ``ipaddress``, ``urllib.request``) are imported inside the
functions that need them, overlapping that round trip instead of preceding it.

Every request of the bundle (custom OSS included) goes through ``http_client``, which asks here;
``check_update.py`` (stdlib only, a separate skill) repeats the CA order in a few lines.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
from collections.abc import Callable, Mapping
from urllib.parse import quote, unquote, urlsplit

from .errors import CONFIG, QwenOpsError
from .named_tuple import NamedTuple
from .redaction import remember, safe_line
from .skill_paths import skill_path
from .urls import DEFAULT_PORTS, NAME_CHARS, ip_or_none, is_loopback_host, valid_host

PROXY_VARIABLES = {
    "https": ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"),
    "http": ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"),
}
NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")
# Every variable that decides a proxy, for ``provenance``: the per-scheme ones (each once), then NO_PROXY.
ALL_PROXY_VARIABLES = tuple(dict.fromkeys(PROXY_VARIABLES["https"] + PROXY_VARIABLES["http"])) + NO_PROXY_VARIABLES
OPENSSL_CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")          # both are loaded when both are set
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")    # else the first set: a file or a folder
CA_VARIABLES = OPENSSL_CA_VARIABLES + CA_BUNDLE_VARIABLES


class Proxy(NamedTuple):
    """A forward proxy chosen for one URL. ``repr`` never shows the credentials."""

    host: str
    port: int
    variable: str              # which variable chose it, e.g. "HTTPS_PROXY"
    authorization: str = ""    # "Basic ..." or ""
    url: str = ""              # http://[user:password@]host:port (for requests)

    def __repr__(self) -> str:
        return f"Proxy(host={self.host!r}, port={self.port}, variable={self.variable!r})"

    __str__ = __repr__

    @property
    def label(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"proxy {shown}:{self.port} (from {self.variable})"


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _bad_proxy(variable: str, why: str) -> QwenOpsError:
    # never the value: it may hold a password
    if variable == SYSTEM_SETTINGS:
        return QwenOpsError(f"the proxy in the system settings is not usable here ({why}); set HTTPS_PROXY to an "
                            "http://[user:password@]host:port proxy, or NO_PROXY to this host to connect directly",
                            CONFIG)
    return QwenOpsError(f"{variable} is not a usable proxy URL ({why}); expected http://[user:password@]host:port",
                        CONFIG)


def parse_proxy(value: str, variable: str) -> Proxy:
    """Parse a proxy variable's value; a malformed one is a one-line CONFIG error."""
    value = value.strip()
    if not value.isprintable() or any(ch.isspace() for ch in value):
        raise _bad_proxy(variable, "spaces or control characters")
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _bad_proxy(variable, "bad port or address") from None
    scheme = parts.scheme.lower()
    if scheme.startswith("socks"):
        raise _bad_proxy(variable, "SOCKS proxies are not supported")
    if scheme == "https":
        raise _bad_proxy(variable, "https:// proxies are not supported")
    if scheme != "http":
        raise _bad_proxy(variable, "only http:// proxies are supported")
    host = (parts.hostname or "").lower()
    if not valid_host(host):
        raise _bad_proxy(variable, "no valid host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _bad_proxy(variable, "unexpected path or query")
    authorization = ""
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port or 80}"
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        remember(password)
        token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
        remember(token)
        authorization = f"Basic {token}"
        url = f"http://{quote(user, safe='')}:{quote(password, safe='')}@{shown_host}:{port or 80}"
        remember(quote(password, safe=""))
    return Proxy(host, port or 80, variable, authorization, url)


# -- NO_PROXY

class _Rule(NamedTuple):
    kind: str          # "all", "name", "ip", "net"
    value: object      # a name, an ip_address or an ip_network
    port: int | None


def _parse_rule(entry: str, variable: str) -> _Rule:
    bad = QwenOpsError(f"{variable} entry {safe_line(entry, 60)!r} is not a host name, domain, "
                       "IP address or CIDR range", CONFIG)
    text = entry.lower()
    if text == "*":
        return _Rule("all", None, None)
    port = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise bad
        text, port_text = host, rest[1:]
        if rest and not (port_text.isascii() and port_text.isdigit()):
            raise bad
        port = int(port_text) if rest else None
    elif text.count(":") == 1:
        text, _, port_text = text.partition(":")
        if not (port_text.isascii() and port_text.isdigit()):
            raise bad
        port = int(port_text)
    if port is not None and not 0 < port < 65536:
        raise bad
    if "/" in text:
        import ipaddress  # deferred: start-up, only for a NO_PROXY address rule

        try:
            return _Rule("net", ipaddress.ip_network(text, strict=False), port)
        except ValueError:
            raise bad from None
    if ":" in text or text.replace(".", "").isdigit():
        address = ip_or_none(text)
        if address is None:
            raise bad
        return _Rule("ip", address, port)
    if text.startswith("*."):
        text = text[1:]
    name = text.strip(".")
    if not name or not set(name) <= NAME_CHARS or ".." in name:
        raise bad
    return _Rule("name", name, port)


def no_proxy_rules(env: Mapping[str, str] | None = None) -> list:
    env = _env(env)
    for variable in NO_PROXY_VARIABLES:
        value = env.get(variable)
        if value and value.strip():
            entries = [e for e in value.replace(",", " ").split() if e]
            return [_parse_rule(e, variable) for e in entries]
    return []


def bypasses_proxy(host: str, port: int, rules: list) -> bool:
    """Whether ``host:port`` matches a NO_PROXY rule."""
    host = host.lower().strip("[]").rstrip(".")
    address = None
    for rule in rules:
        if rule.port is not None and rule.port != port:
            continue
        if rule.kind == "all":
            return True
        if rule.kind == "name":
            if host == rule.value or host.endswith("." + rule.value):
                return True
            continue
        if address is None:
            address = ip_or_none(host) if (":" in host or host.replace(".", "").isdigit()) else False
        if not address:
            continue
        if rule.kind == "ip" and address == rule.value:
            return True
        if rule.kind == "net" and address.version == rule.value.version and address in rule.value:
            return True
    return False


# -- the operating system's proxy settings (Windows registry, macOS System Configuration)

SYSTEM_SETTINGS = "system settings"   # Proxy.variable of a proxy that came from them


class SystemProxies(NamedTuple):
    """What the operating system says: ``proxies`` maps a scheme to a proxy URL (as
    ``urllib.request.getproxies()`` does) and ``bypass(host)`` is its exception list."""

    proxies: Mapping[str, str]
    bypass: Callable[[str], bool]


_system: list = []
INTERNET_SETTINGS = r"Software\Microsoft\Windows\CurrentVersion\Internet Settings"


def registry_proxies(winreg) -> dict:
    """Windows' proxy setting (``ProxyServer`` under HKCU ``Internet Settings`` while ``ProxyEnable`` is
    set) as a scheme -> URL map, read as ``urllib.request.getproxies_registry`` reads it: ``host:port``
    serves every scheme; ``http=h:p;https=h:p;socks=h:p`` one each; an address without ``scheme://`` is
    an http proxy (``socks://`` for socks), and a socks proxy serves http/https when they have none.
    ``winreg`` is the module (the tests pass a stand-in)."""
    try:
        key = winreg.OpenKey(winreg.HKEY_CURRENT_USER, INTERNET_SETTINGS)
    except OSError:
        return {}
    try:
        enabled = winreg.QueryValueEx(key, "ProxyEnable")[0]
        server = str(winreg.QueryValueEx(key, "ProxyServer")[0]) if enabled else ""
    except OSError:
        return {}
    finally:
        winreg.CloseKey(key)
    if not server.strip():
        return {}
    entries = server.split(";") if "=" in server or ";" in server else [f"{s}={server}" for s in ("http", "https")]
    proxies = {}
    for entry in entries:
        scheme, sep, address = entry.partition("=")
        scheme, address = scheme.strip().lower(), address.strip()
        if sep and scheme and address:
            default = "socks://" if scheme == "socks" else "http://"
            proxies[scheme] = address if "://" in address else default + address
    if "socks" in proxies:
        for scheme in ("http", "https"):
            proxies.setdefault(scheme, proxies["socks"])
    return proxies


def _bypass_registry(host: str) -> bool:
    import urllib.request  # deferred: only once a system proxy is in play

    return bool(urllib.request.proxy_bypass_registry(host))


def _bypass_macos(host: str) -> bool:
    import urllib.request  # deferred: only once a system proxy is in play

    return bool(urllib.request.proxy_bypass_macosx_sysconf(host))


def system_proxies() -> SystemProxies | None:
    """The system proxy settings, read once per process: the registry's Internet Settings on Windows
    (``ProxyServer``; ``ProxyOverride`` for the bypass list), System Configuration on macOS (the C module
    ``_scproxy``, which urllib uses); None elsewhere (Linux has no such store: its desktops export the
    variables). Proxy auto-configuration (PAC, WPAD) is not read. Reading costs no ``urllib.request``
    import; the bypass check, needed only when a proxy is set, imports it.
    """
    if not _system:
        found = None
        try:
            if os.name == "nt":
                import winreg  # Windows only

                found = SystemProxies(registry_proxies(winreg), _bypass_registry)
            elif sys.platform == "darwin":
                from _scproxy import _get_proxies  # macOS only (what urllib uses)

                found = SystemProxies(dict(_get_proxies() or {}), _bypass_macos)
        except Exception:  # noqa: BLE001 - a broken store means "no system proxy", as urllib treats it
            found = None
        _system.append(found)
    return _system[0]


def _system_proxy(scheme: str, host: str, port: int, env: Mapping[str, str], system) -> Proxy | None:
    """The proxy the system settings give ``scheme://host:port``; NO_PROXY and the system's own bypass
    list both apply. Used only when no proxy variable is set at all."""
    value = (system.proxies.get(scheme) or "") if system is not None else ""
    if not isinstance(value, str) or not value.strip():
        return None
    proxy = parse_proxy(value, SYSTEM_SETTINGS)
    if bypasses_proxy(host, port, no_proxy_rules(env)):
        return None
    shown = f"[{host}]" if ":" in host else host
    try:  # the host as urllib's ProxyHandler passes it: with the port only when it is not the default
        direct = bool(system.bypass(f"{shown}:{port}" if port != DEFAULT_PORTS.get(scheme) else shown))
    except Exception:  # noqa: BLE001 - an unreadable exception list: keep the proxy, as the system would
        direct = False
    return None if direct else proxy


def proxy_for(scheme: str, host: str, port: int | None = None,
              env: Mapping[str, str] | None = None, system: SystemProxies | None = None) -> Proxy | None:
    """The proxy to use for ``scheme://host:port``, or None for a direct connection.

    The variables decide; only when none of them is set (for any scheme) do the system settings,
    ``system_proxies()`` (``system`` stands in for them: the tests give Windows' or macOS' answers).
    """
    env = _env(env)
    scheme = scheme.lower()
    names = PROXY_VARIABLES.get(scheme, ())
    for name in names:
        if name == "HTTP_PROXY" and env.get("REQUEST_METHOD"):
            continue  # httpoxy: under CGI, HTTP_PROXY may come from a request header
        value = env.get(name)
        if value and value.strip():
            proxy = parse_proxy(value, name)
            if bypasses_proxy(host, port or DEFAULT_PORTS[scheme], no_proxy_rules(env)):
                return None
            return proxy
    if scheme not in DEFAULT_PORTS or any((env.get(n) or "").strip() for v in PROXY_VARIABLES.values() for n in v):
        return None  # a variable for another scheme is set: the environment alone decides, as in urllib
    return _system_proxy(scheme, host, port or DEFAULT_PORTS[scheme], env,
                         system_proxies() if system is None else system)


def credentials_hint(proxy: Proxy) -> str:
    """What to do when ``proxy`` answers 407 (never the credentials themselves)."""
    if proxy.variable == SYSTEM_SETTINGS:  # Windows sign-in (NTLM, Kerberos) is not spoken here
        return ("the system settings hold no user and password for it: set HTTPS_PROXY="
                "http://user:password@host:port (and NO_PROXY as needed)")
    return f"check the user and password in {proxy.variable}"


def direct_reason() -> str:
    """Why a request goes direct, for doctor: what was consulted and found not to apply."""
    consulted = "no proxy variable or system proxy setting" if system_proxies() is not None else "no proxy variable"
    return f"{consulted} applies to this host"


def proxy_for_url(url: str, env: Mapping[str, str] | None = None) -> Proxy | None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return proxy_for(parts.scheme, parts.hostname or "", port, env)


def plain_http_refusal(host: str, proxy: Proxy) -> QwenOpsError:
    """The one error for credentials that would cross a proxy in clear text (plain http, absolute-form)."""
    return QwenOpsError(f"refusing to send credentials over plain http through {proxy.label}; "
                        f"add {host} to NO_PROXY", CONFIG)


# -- TLS trust

class Trust(NamedTuple):
    cafile: str | None
    capath: str | None
    source: str          # a variable name (or two joined by "+"), "system", "truststore", "certifi"


def trust_setting(env: Mapping[str, str] | None = None) -> Trust:
    """Which CA certificates to trust, by the documented order (no file is opened here)."""
    env = _env(env)
    cafile, capath = (env.get(name) or None for name in OPENSSL_CA_VARIABLES)
    if cafile or capath:
        return Trust(cafile, capath, "+".join(n for n, v in zip(OPENSSL_CA_VARIABLES, (cafile, capath)) if v))
    for name in CA_BUNDLE_VARIABLES:
        value = env.get(name)
        if value:
            return Trust(None, value, name) if os.path.isdir(value) else Trust(value, None, name)
    return Trust(None, None, "system")


def check_readable(trust: Trust) -> None:
    """The configuration error for a CA file or folder that cannot be read (nothing is loaded here)."""
    for path, what in ((trust.cafile, "file"), (trust.capath, "folder")):
        if path is None:
            continue
        variable = trust.source.split("+")[0] if what == "file" else trust.source.split("+")[-1]
        try:
            if what == "file":
                with open(path, "rb") as handle:
                    handle.read(1)
            elif not os.path.isdir(path):
                raise NotADirectoryError(20, "not a folder")
        except OSError as exc:
            raise QwenOpsError(f"{variable} names a CA {what} that cannot be read "
                               f"({exc.strerror or exc.__class__.__name__}); fix or unset {variable}",
                               CONFIG) from None


def client_context(cafile: str | None = None, capath: str | None = None, cadata=None):
    """``ssl.create_default_context(cafile=, capath=, cadata=)`` without its two reads of the process
    environment: the default verify paths (item 4 of the module docstring loads the system store by
    name instead) and ``SSLKEYLOGFILE``, which would make it write every session secret (the key's
    too) to a file a ``.env`` copied by ``load_dotenv()`` names. So ``keylog_filename`` stays None.
    The same settings otherwise, as each Python version makes them: certificate and host name checked
    and, from Python 3.13, its stricter verify flags (``tests/test_network.py`` compares the two)."""
    import ssl  # deferred: start-up (module docstring)

    if sys.version_info >= (3, 10):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:  # Python 3.9 builds it from PROTOCOL_TLS (deprecated from 3.10), then asks for the same checks
        context = ssl.SSLContext(ssl.PROTOCOL_TLS)
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
    if sys.version_info >= (3, 13):
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT  # novm - only on 3.13+
    if cafile or capath or cadata:
        context.load_verify_locations(cafile, capath, cadata)
    return context


def _compiled_paths() -> tuple:
    """(file, folder) of CA certificates this Python's OpenSSL was built to read, each None when absent:
    the system store, named without asking the environment."""
    import ssl  # deferred: start-up (module docstring)

    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if paths.openssl_cafile and os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if paths.openssl_capath and os.path.isdir(paths.openssl_capath) else None
    return cafile, capath


def windows_store_certificates(enum_certificates=None) -> list:
    """DER certificates of the Windows "CA" and "ROOT" stores trusted for server authentication, as
    ``SSLContext.load_default_certs()`` selects them; [] elsewhere. ``enum_certificates`` stands in for
    ``ssl.enum_certificates`` (the tests give a store's answer)."""
    import ssl  # deferred: start-up (module docstring)

    enum = enum_certificates or getattr(ssl, "enum_certificates", None)
    if enum is None:
        return []
    found = []
    for store in ("CA", "ROOT"):
        try:
            entries = enum(store)
        except OSError:  # a store that cannot be enumerated counts as empty, as in load_default_certs
            continue
        found += [cert for cert, encoding, trust in entries
                  if encoding == "x509_asn" and (trust is True or ssl.Purpose.SERVER_AUTH.oid in trust)]
    return found


def system_context(enum_certificates=None):
    """An SSLContext trusting the system store (module docstring, item 4) and nothing the process
    environment names; its store is empty when this Python has none (``_has_roots``)."""
    import ssl  # deferred: start-up (module docstring)

    cafile, capath = _compiled_paths()
    extra = windows_store_certificates(enum_certificates)
    context = client_context()
    if cafile or capath:
        try:
            context.load_verify_locations(cafile, capath)
        except (ssl.SSLError, OSError, ValueError):
            pass  # a corrupt built-in bundle: as if absent
    for cert in extra:
        try:
            context.load_verify_locations(cadata=cert)
        except (ssl.SSLError, ValueError):
            continue  # one bad certificate in the store spoils nothing else (as load_default_certs)
    return context


def _has_roots(context) -> bool:
    if context.cert_store_stats().get("x509_ca", 0):
        return True
    capath = _compiled_paths()[1]   # a hashed folder is read lazily: its certificates are not counted yet
    try:
        return bool(capath) and any(True for _ in os.scandir(capath))
    except OSError:
        return False


def _fallback_context():
    """(context, source) for a Python without usable roots, or (None, "").

    ``truststore`` only on macOS and Windows, where it hands each chain to the operating system's
    verifier and reads no environment variable. On Linux it loads OpenSSL's default paths
    (``set_default_verify_paths``), which read ``SSL_CERT_FILE``/``SSL_CERT_DIR`` from the real
    environment, a value this trust decision may have left out (item 4 of the module docstring)."""
    if sys.platform in ("darwin", "win32"):
        try:
            import ssl  # deferred: start-up (module docstring)

            import truststore  # optional package: the OS verifier: Keychain / Windows store

            return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT), "truststore"
        except ImportError:
            pass
    try:
        import certifi  # optional package

        return client_context(cafile=certifi.where()), "certifi"
    except ImportError:
        return None, ""


_contexts: dict = {}
_lock = threading.Lock()


def ssl_context(env: Mapping[str, str] | None = None):
    """(SSLContext, trust source) for the environment's trust setting; made once per process."""
    trust = trust_setting(env)
    with _lock:
        cached = _contexts.get(trust)
        if cached is not None:
            return cached
        import ssl  # deferred: start-up (module docstring)

        if trust.source == "system":
            context, source = system_context(), "system"
            if not _has_roots(context):
                fallback, name = _fallback_context()
                if fallback is not None:
                    context, source = fallback, name
                else:
                    source = "system (empty)"
        else:
            check_readable(trust)
            try:
                context = client_context(cafile=trust.cafile, capath=trust.capath)
            except (ssl.SSLError, OSError, ValueError):
                raise QwenOpsError(f"{trust.source} names CA certificates that cannot be loaded "
                                   f"(not PEM certificates?); fix or unset {trust.source}", CONFIG) from None
            source = trust.source
        _contexts[trust] = (context, source)
        return context, source


def certificate_advice(host: str, source: str, reason: str, proxy: Proxy | None = None,
                       env: Mapping[str, str] | None = None) -> str:
    """One line for a certificate failure: the store in use, the likely cause and what fixes it.

    When a proxy carries the connection, or the host is not this machine and the issuer is unknown (a
    private or self-signed root), the likely cause is a TLS-inspecting company proxy: the line says so
    and names the fix, one bundle of the system CAs plus the company root, and the variable each common
    client reads (references/company-networks.md has the steps, named by a path that works from the
    working directory). A loopback host with an unknown issuer is a local server's own CA, not a proxy.
    """
    why = f" ({safe_line(reason, 120)})" if reason else ""
    store = trust_store_label(source, env)
    if source in ("system", "system (empty)", "truststore", "certifi"):
        head = f"the TLS certificate of {host} is not trusted{why} by {store}"
    else:
        head = (f"the TLS certificate of {host} is not trusted{why}: trust comes from {store}, which does not "
                "vouch for it")
    unknown_issuer = any(word in reason.lower() for word in ("issuer", "self signed", "self-signed"))
    if source == "system (empty)":
        fix = ("this Python has no root certificates: pip install certifi (or truststore), run the python.org "
               "'Install Certificates.command', or set SSL_CERT_FILE to a CA bundle")
    elif proxy is not None or (unknown_issuer and not is_loopback_host(host)):
        through = f"the connection goes through {proxy.label}: " if proxy is not None else ""
        fix = (f"{through}a company proxy that inspects HTTPS re-signs it with its own root CA; build one bundle of "
               "the system CAs plus that root and set SSL_CERT_FILE to it (Python requests reads REQUESTS_CA_BUNDLE, "
               "curl CURL_CA_BUNDLE, pip PIP_CERT, Node NODE_EXTRA_CA_CERTS); see "
               f"{skill_path('references', 'company-networks.md')}")
    elif unknown_issuer:
        fix = (f"{host} is this machine, serving a certificate from its own CA (a local test server?): set "
               "SSL_CERT_FILE to a bundle that holds that CA")
    elif source == "system":
        fix = ("if a proxy or company firewall re-signs TLS, set SSL_CERT_FILE to a bundle holding its CA "
               "certificate (PEM) and the system CAs")
    else:
        fix = f"point {source} at the right CA file or unset it"
    return f"{head}; {fix}"


def trust_store_label(source: str, env: Mapping[str, str] | None = None) -> str:
    """The CA certificates in use, as one short phrase: a variable and its path, or the built-in store."""
    if source in ("system", "system (empty)"):
        import ssl  # deferred: start-up (module docstring)

        cafile = ssl.get_default_verify_paths().openssl_cafile
        shown = f" ({safe_line(cafile, 120)})" if cafile and os.path.isfile(cafile) else ""
        return ("this Python's empty store" if source == "system (empty)" else "the system store") + shown
    if source == "truststore":
        return "the operating system's store (truststore)"
    if source == "certifi":
        return "certifi's public roots"
    trust = trust_setting(env)
    paths = [p for p in (trust.cafile, trust.capath) if p]
    return f"{source} ({safe_line(', '.join(paths), 160)})" if paths and trust.source == source else source
