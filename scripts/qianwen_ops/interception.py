"""Is TLS to the endpoint intercepted? The same server, verified again against public roots only.

A request that succeeded was verified with the configured trust (``network.ssl_context``: a CA
variable, or the system store, where a company may have installed its own root). ``inspect``
opens one more TLS connection to the same host, by the same route (proxy included), verified
against **public roots only**: certifi's bundle when installed, else the platform's default
OpenSSL files (never ``SSL_CERT_FILE`` and the other variables). No request is sent inside it,
so no key. When the configured trust accepts the certificate and the public roots do not, the
certificate chains to a private CA: for DashScope's hosts that means a proxy re-signs TLS and
can read every request, the key included. The issuer's name comes from a second handshake with
the configured trust (the certificate is shown only once a store accepts it).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from . import network
from .errors import QwenOpsError
from .http_client import tls_handshake
from .limits import TLS_CHECK_TIMEOUT
from .named_tuple import NamedTuple
from .redaction import safe_line


class Inspection(NamedTuple):
    intercepted: bool | None  # None: could not tell (``why`` says so)
    compared_with: str        # "certifi's public roots" or "the platform's default store"
    issuer: str = ""          # who issued the certificate the server presented (when intercepted)
    why: str = ""             # why it could not tell


def public_roots():
    """(SSLContext, label) that trusts public roots only, or (None, "")."""
    try:
        import certifi  # optional package

        return network.client_context(cafile=certifi.where()), "certifi's public roots"
    except ImportError:
        pass
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if paths.openssl_cafile and os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if paths.openssl_capath and os.path.isdir(paths.openssl_capath) else None
    if not (cafile or capath):
        return None, ""
    return network.client_context(cafile=cafile, capath=capath), "the platform's default store"


def issuer_name(cert: dict) -> str:
    """The issuer's common name (else organisation) from ``getpeercert()``, as untrusted text."""
    fields = {}
    for rdn in cert.get("issuer") or ():
        for pair in rdn:
            if len(pair) == 2:
                fields.setdefault(pair[0], pair[1])
    name = fields.get("commonName") or fields.get("organizationName") or fields.get("organizationalUnitName")
    return safe_line(name, 80) if name else "an unnamed CA"


def inspect(url: str, env: Mapping[str, str] | None = None, timeout: float = TLS_CHECK_TIMEOUT) -> Inspection:
    """Verify ``url``'s host against public roots only (see the module's text); never raises."""
    context, label = public_roots()
    if context is None:
        return Inspection(None, "", why="no public root store to compare with (pip install certifi)")
    try:
        configured, source = network.ssl_context(env)
    except QwenOpsError as exc:
        return Inspection(None, label, why=exc.message)
    if source == "certifi":  # the requests themselves trusted public roots only: nothing re-signed them
        return Inspection(False, "certifi's public roots")
    if label != "certifi's public roots" and source in ("system", "system (empty)"):
        return Inspection(None, label, why=f"the requests already trust {label} (pip install certifi to "
                                          "compare with the public roots)")
    try:
        tls_handshake(url, context, env, timeout)
        return Inspection(False, label)
    except ssl.SSLCertVerificationError:
        pass
    except QwenOpsError as exc:
        return Inspection(None, label, why=exc.message)
    except (ssl.SSLError, OSError) as exc:
        return Inspection(None, label, why=f"TLS failed ({exc.__class__.__name__})")
    try:
        cert = tls_handshake(url, configured, env, timeout)
    except (QwenOpsError, ssl.SSLError, OSError):
        return Inspection(None, label, why="the configured trust no longer accepts the certificate either")
    return Inspection(True, label, issuer_name(cert))
