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
from typing import Mapping
from urllib.parse import urlsplit

from . import network
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
        self._thread.join()
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
    """(host, port) of the first hop for ``url``: its proxy, else its host; None when not simple to tell.

    A configuration problem (an unreadable proxy variable, say) is not raised here: the request
    itself reports it, with the usual message.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or network.DEFAULT_PORTS[parts.scheme]
        host = parts.hostname or ""
        if not network.valid_host(host):
            return None
        proxy = network.proxy_for(parts.scheme, host, port, env)
    except (QwenOpsError, KeyError, ValueError):
        return None
    return (proxy.host, proxy.port) if proxy is not None else (host, port)


def open_first_hop(url: str, timeout: float, env: Mapping[str, str] | None = None) -> FirstHop | None:
    """Start opening the connection a request to ``url`` will use (see ``first_hop_address``)."""
    address = first_hop_address(url, env)
    return FirstHop(address, timeout) if address is not None else None
