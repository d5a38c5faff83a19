"""The TCP connection to the first hop, opened early in a thread.

A command that will send one request (probe.py) knows where it goes before it has loaded
the HTTP stack (``http.client``, ``ssl``, ``email``: tens of milliseconds). Opening the TCP
connection first lets its round trip overlap those imports. The first hop is exactly the
one ``http_client`` would open: the proxy the process environment names for this URL, else
the host itself. Nothing is sent on it here; the CONNECT exchange, TLS and the request
happen in ``http_client`` as for any other connection, and an error while opening is
raised there, at the same stage, as if the connection had been opened then.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping

from . import network, urls
from .errors import QwenOpsError


class FirstHop:
    """One TCP connection being opened to ``address`` (host, port); handed over at most once."""

    def __init__(self, address: tuple, timeout: float):
        self.address = address
        self._sock = None
        self._error: BaseException | None = None
        self._claimed = False   # take() or close() was called: nobody else gets the socket
        self._closed = False    # close() was called: a connection that comes up late is closed
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._open, args=(timeout,), name="first-hop", daemon=True)
        self._thread.start()

    def _open(self, timeout: float) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of take(), raised there
            self._error = exc
            return
        with self._lock:
            if self._closed:
                sock.close()
            else:
                self._sock = sock

    def take(self, address: tuple):
        """The connected socket when it goes to ``address``, else None (then open one as usual).

        Waits for the attempt to finish; raises the error it ended with.
        """
        with self._lock:
            if self._claimed or tuple(address) != self.address:
                return None
            self._claimed = True
        try:
            self._thread.join()
        except BaseException:  # interrupted while waiting: the connection, now or when up, is closed
            with self._lock:
                self._closed = True
                sock, self._sock = self._sock, None
            if sock is not None:
                sock.close()
            raise
        if self._error is not None:
            raise self._error
        return self._sock

    def close(self) -> None:
        """Close the connection when it was never taken (if it is still opening, as soon as it is up)."""
        with self._lock:
            if self._claimed:
                return
            self._claimed = self._closed = True
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def first_hop_address(url: str, env: Mapping[str, str] | None = None) -> tuple | None:
    """(host, port) of the first hop of a request to ``url`` that carries credentials: its proxy,
    else its host. None when ``http_client`` would refuse that request before connecting, or when
    that is not simple to tell: a plain-http URL through a proxy (credentials never go that way), a
    CA file or folder that cannot be read, a malformed host or proxy variable. The request then
    reports the problem itself, with the usual message. (A CA file that can be read but holds no
    certificate is found only when the TLS context is built, after the connection opened; nothing
    is sent on it.)
    """
    try:
        scheme, host, port, _ = urls.split_url(url)
        proxy = network.proxy_for(scheme, host, port, env)
        if scheme == "http" and proxy is not None:
            return None
        if scheme == "https":
            network.check_readable(network.trust_setting(env))
    except (QwenOpsError, ValueError):
        return None
    return (proxy.host, proxy.port) if proxy is not None else (host, port)


def open_first_hop(url: str, timeout: float, env: Mapping[str, str] | None = None) -> FirstHop | None:
    """Start opening the connection a request to ``url`` with credentials will use (``first_hop_address``)."""
    address = first_hop_address(url, env)
    return FirstHop(address, timeout) if address is not None else None
