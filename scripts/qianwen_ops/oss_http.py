"""oss2's HTTP under the bundle's rules: the same bounds on time and size as ``http_client``.

oss2 speaks through requests and urllib3, whose timeout bounds each wait for data, not an answer:
a server sending one byte per timeout could hold an upload for hours, and oss2 reads a success
body whole. ``session(oss2, pool_size)`` is an ``oss2.Session`` whose connections read through
``http_client``'s deadline socket, so, per request (its ``timeout`` is oss2's),

* the whole answer (status line, headers, body) must arrive within ``RESPONSE_DEADLINE_FACTOR`` x
  ``timeout`` of the request being sent, plus the request body's send time at ``MIN_UPLOAD_RATE``;
* at most ``MAX_BODY`` bytes are read (oss2's own error path reads 4 KiB).

Either failure surfaces as oss2's ``RequestError``, which ``custom_oss.map_error`` reports as a
network failure (exit 8). Proxies and CA certificates are decided elsewhere (``network``); a
plain-http endpoint through a proxy is refused before this adapter is ever used.
"""

from __future__ import annotations

import time

import requests.adapters
from urllib3 import connection, connectionpool

from .http_client import RESPONSE_DEADLINE_FACTOR, _Sock
from .limits import MIN_UPLOAD_RATE

MAX_BODY = 8 * 1024 * 1024   # ListParts of 10,000 parts is ~2 MiB of XML; everything else is far smaller


class _BoundedSock(_Sock):
    """``_Sock`` whose deadline and byte budget are those of the request its connection is sending."""

    def __init__(self, sock, owner):
        super().__init__(sock, owner.read_timeout)
        self.owner = owner

    def recv_into(self, buffer) -> int:
        self.deadline = self.owner.deadline
        count = super().recv_into(buffer)
        self.owner.received += count
        if self.owner.received > MAX_BODY + 64 * 1024:
            raise OSError("the OSS answer is larger than expected")
        return count


class _Bounded:
    """Mixed into urllib3's connections: a deadline from each ``request`` on, every read through it."""

    read_timeout = 60.0
    deadline: float | None = None
    received = 0

    def connect(self) -> None:
        super().connect()
        if self.timeout is not None and isinstance(self.timeout, (int, float)):
            self.read_timeout = self.timeout
        self.sock = _BoundedSock(self.sock, self)

    def request(self, method, url, body=None, headers=None, **kwargs):
        size = len(body) if hasattr(body, "__len__") else 0
        if isinstance(self.timeout, (int, float)):
            self.read_timeout = self.timeout
        self.deadline = time.monotonic() + RESPONSE_DEADLINE_FACTOR * self.read_timeout + size / MIN_UPLOAD_RATE
        self.received = 0
        return super().request(method, url, body=body, headers=headers, **kwargs)


class _Connection(_Bounded, connection.HTTPConnection):
    pass


class _TLSConnection(_Bounded, connection.HTTPSConnection):
    pass


class _Pool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_POOLS = {"http": _Pool, "https": _TLSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def session(oss2, pool_size: int):
    """An ``oss2.Session`` whose requests are bounded as above.

    oss2 turns a failure while the headers arrive into ``RequestError`` but lets one while it reads
    the body escape as a requests exception: the same failure, so it is turned into the same error.
    """

    class BoundedSession(oss2.Session):
        def do_request(self, req, timeout):
            response = super().do_request(req, timeout)
            read = response.read

            def bounded_read(amt=None):
                try:
                    return read(amt)
                except requests.RequestException as exc:
                    raise oss2.exceptions.RequestError(exc) from None

            response.read = bounded_read
            return response

    made = BoundedSession(pool_size=pool_size)
    for prefix in ("http://", "https://"):
        made.session.mount(prefix, _Adapter(pool_connections=pool_size, pool_maxsize=pool_size))
    return made

