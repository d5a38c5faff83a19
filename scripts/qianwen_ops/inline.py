"""A small local file as a ``data:`` URL: no upload, no 48-hour expiry, no model or account binding.

DashScope's OpenAI-compatible API takes media inline as ``data:<mime>;base64,<bytes>`` (the MIME
prefix is required) and refuses a ``data:`` item over 10,485,760 bytes with 400 "Exceeded limit on
max bytes per data-uri item : 10485760" (references/sources.md, "Inline files"). The limit is
applied here to the whole URL, prefix included, so a URL this module makes is never over it; a
larger file is refused in one line (exit 10) before it is read. Nothing is sent.
"""

from __future__ import annotations

import base64
import os

from . import errors
from .errors import QwenOpsError
from .local_files import HashedReader, LocalFile, display, open_regular

MAX_DATA_URL_BYTES = 10 * 1024 * 1024   # DashScope's limit per data-uri item (the whole URL, here)

# By extension, so the answer is the same on every platform (``mimetypes`` reads the system's tables).
MIME_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
    ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff",
    ".heic": "image/heic", ".heif": "image/heif",
    ".mp4": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm", ".avi": "video/x-msvideo",
    ".mkv": "video/x-matroska",
    ".mp3": "audio/mpeg", ".wav": "audio/wav", ".m4a": "audio/mp4", ".aac": "audio/aac",
    ".flac": "audio/flac", ".ogg": "audio/ogg", ".opus": "audio/opus", ".amr": "audio/amr",
    ".pdf": "application/pdf", ".txt": "text/plain",
}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"BM", "image/bmp"), (b"%PDF", "application/pdf"))


def mime_type(local: LocalFile) -> str:
    """The MIME type by extension; without a known one, by the first bytes; else application/octet-stream."""
    known = MIME_TYPES.get(local.path.suffix.lower())
    if known:
        return known
    head = _first_bytes(local, 16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if head.startswith(magic)), "application/octet-stream")


def _first_bytes(local: LocalFile, count: int) -> bytes:
    """Up to ``count`` bytes from the start of the checked file (``open_regular``: never a read that blocks, never
    another file than the one checked); b"" on failure (reading the whole file then says why)."""
    try:
        fd = open_regular(local)
    except QwenOpsError:
        return b""
    try:
        return os.read(fd, count)
    except OSError:
        return b""
    finally:
        os.close(fd)


def max_inline_bytes(mime: str) -> int:
    """The largest file whose ``data:`` URL stays within ``MAX_DATA_URL_BYTES``."""
    prefix = len(f"data:{mime};base64,")
    return (MAX_DATA_URL_BYTES - prefix) // 4 * 3


def check_inline_size(local: LocalFile, mime: str) -> None:
    limit = max_inline_bytes(mime)
    if local.size > limit:
        raise QwenOpsError(f"{display(str(local.path))}: {local.size} bytes is too large to inline (at most {limit} "
                           f"bytes, a {MAX_DATA_URL_BYTES}-byte data: URL); upload it instead (without --inline)",
                           errors.INPUT_FILE)


def data_url(local: LocalFile) -> tuple:
    """(``data:`` URL, MIME type, sha256) of a checked local file; raises exit 10 when it is too large."""
    mime = mime_type(local)
    check_inline_size(local, mime)
    reader = HashedReader(local)
    parts = [f"data:{mime};base64,"]
    pending = b""
    for chunk in reader:  # the file is read once and hashed as read; a change meanwhile is refused
        pending += chunk   # a copy: the buffer behind ``chunk`` is refilled on the next step
        cut = len(pending) - len(pending) % 3
        parts.append(base64.b64encode(pending[:cut]).decode("ascii"))
        pending = pending[cut:]
    parts.append(base64.b64encode(pending).decode("ascii"))
    return "".join(parts), mime, reader.hexdigest()
