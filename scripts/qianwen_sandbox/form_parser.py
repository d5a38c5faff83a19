"""Streaming request bodies: Content-Length or chunked, and multipart/form-data.

Nothing here holds a whole body in memory: file parts are handed to a sink in
chunks while the boundary is searched for.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Callable

CHUNK = 256 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_PART_HEADER_BYTES = 16 * 1024


class BadBody(Exception):
    """The body is not what its headers promise."""


class BodyReader:
    """Reads exactly the request body, whether sized or chunked."""

    def __init__(self, rfile: BinaryIO, content_length: str | None, transfer_encoding: str | None):
        self._rfile = rfile
        self._chunked = (transfer_encoding or "").lower() == "chunked"
        self._left = 0 if self._chunked else int(content_length or 0)
        self._chunk_left = 0
        self._done = not self._chunked and self._left == 0

    def _read_chunked(self, n: int) -> bytes:
        if self._chunk_left == 0:
            line = self._rfile.readline(1024)
            if not line:
                raise BadBody("connection closed inside a chunked body")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self._rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                self._done = True
                return b""
            self._chunk_left = size
        data = self._rfile.read(min(n, self._chunk_left))
        if not data:
            raise BadBody("connection closed inside a chunk")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self._rfile.readline(8)
        return data

    def read(self, n: int = CHUNK) -> bytes:
        if self._done:
            return b""
        if self._chunked:
            data = self._read_chunked(n)
        else:
            data = self._rfile.read(min(n, self._left))
            if not data:
                raise BadBody("connection closed before the body was complete")
            self._left -= len(data)
            self._done = self._left == 0
        return data

    def drain(self, limit: int) -> bool:
        """Discard the rest of the body (up to ``limit`` bytes); True when it all went."""
        while not self._done and limit > 0:
            limit -= len(self.read(min(CHUNK, limit)))
        return self._done


_DISPOSITION = re.compile(r'(\w+)\*?=(?:"((?:\\.|[^"\\])*)"|([^;\s]+))')


class MultipartReader:
    """Walks the parts of a multipart/form-data body in order."""

    def __init__(self, body: BodyReader, boundary: str):
        self._body = body
        self._delim = b"--" + boundary.encode("latin-1")
        self._needle = b"\r\n" + self._delim
        self._buf = b""
        self._started = False

    def _fill(self) -> bool:
        data = self._body.read(CHUNK)
        self._buf += data
        return bool(data)

    def next_part(self) -> dict | None:
        """Move to the next part; its headers (lowercase names, plus name/filename) or None at the end."""
        if not self._started:
            while self._delim not in self._buf:
                if len(self._buf) > MAX_PART_HEADER_BYTES or not self._fill():
                    raise BadBody("multipart body has no opening boundary")
            self._buf = self._buf[self._buf.index(self._delim) + len(self._delim):]
            self._started = True
        while len(self._buf) < 2 and self._fill():
            pass
        if self._buf.startswith(b"--"):
            return None
        if not self._buf.startswith(b"\r\n"):
            raise BadBody("malformed multipart boundary line")
        while b"\r\n\r\n" not in self._buf:
            if len(self._buf) > MAX_PART_HEADER_BYTES or not self._fill():
                raise BadBody("multipart part headers are malformed")
        head, self._buf = self._buf[2:].split(b"\r\n\r\n", 1)
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        for match in _DISPOSITION.finditer(headers.get("content-disposition", "")):
            value = match.group(2) if match.group(2) is not None else match.group(3)
            headers[match.group(1).lower()] = value.replace('\\"', '"')
        return headers

    def stream_part(self, sink: Callable[[bytes], None], limit: int | None = None) -> int:
        """Send the current part's bytes to ``sink``; returns the size. Stops past ``limit``."""
        size = 0
        keep = len(self._needle) - 1
        while True:
            idx = self._buf.find(self._needle)
            if idx >= 0:
                piece, self._buf = self._buf[:idx], self._buf[idx + len(self._needle):]
                size += len(piece)
                if piece:
                    sink(piece)
                return size
            if len(self._buf) > keep:
                piece, self._buf = self._buf[:-keep], self._buf[-keep:]
                size += len(piece)
                sink(piece)
                if limit is not None and size > limit:
                    return size
            if not self._fill():
                raise BadBody("multipart body ended inside a part")

    def read_field(self) -> str:
        parts: list = []
        size = self.stream_part(parts.append, MAX_FIELD_BYTES)
        if size > MAX_FIELD_BYTES:
            raise BadBody("a form field is too large")
        return b"".join(parts).decode("utf-8", "replace")
