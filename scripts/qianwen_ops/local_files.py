"""Local inputs: telling paths from URLs, and opening files safely.

A FIFO, a device or a directory is refused before anything is read (never a read
that blocks forever); the size is fixed when the file is checked, and a file that
changes while it is being sent is reported, never uploaded half-way.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import INPUT_FILE, QwenOpsError
from .named_tuple import NamedTuple
from .redaction import one_line

READ_CHUNK = 1024 * 1024    # fewer, larger reads and hand-offs to the hashing thread
PASS_THROUGH_SCHEMES = ("http", "https", "oss", "data")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
# An API key typed where a file name belongs: "sk-" (or "sk-sp-"/"sk-ws-") and 16+ key characters.
_KEY_LIKE = re.compile(r"^\s*(?:Bearer\s+)?sk-[A-Za-z0-9_\-]{16,}\s*$")


def display(source: str) -> str:
    """A one-line, printable form of an input for messages (no URL secrets, no control characters).

    Backslashes are doubled so an escaped control character (``\\n``) cannot be confused with a
    name that holds a backslash; bytes that were not UTF-8 (surrogate escapes) show as ``\\udcXX``.
    """
    text = source
    if "://" in source and not source.startswith("file:"):
        parts = urlsplit(source)
        text = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    text = one_line(text.replace("\\", "\\\\"))
    return text if len(text) <= 200 else text[:97] + "…" + text[-100:]


def looks_like_key(source: str) -> bool:
    """True when an input is shaped like an API key (pasted by mistake): it must never be echoed."""
    return bool(_KEY_LIKE.match(source))


def readable_name(name: str, budget: int) -> str:
    """The file name with anything URL-hostile replaced, cut to ``budget`` UTF-8 bytes (object keys)."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip("._") or "file"
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = name, ""
    ext = f".{ext}" if ext else ""
    while len((stem + ext).encode("utf-8")) > budget and stem:
        stem = stem[:-1]
    return (stem + ext) if stem else ext.lstrip(".")[: max(1, budget)] or "f"


def is_remote(source: str) -> bool:
    """True for inputs handed to the model unchanged (http(s)://, oss://, data:)."""
    scheme = source.split(":", 1)[0].lower() if ":" in source else ""
    if scheme == "data":
        return True
    if scheme not in PASS_THROUGH_SCHEMES or not source[len(scheme):].startswith("://"):
        return False
    if scheme in ("http", "https"):
        parts = urlsplit(source)
        if parts.username is not None or parts.password is not None:
            raise QwenOpsError(f"{display(source)}: the URL carries a user name or password; "
                               "refusing to pass credentials to the model", INPUT_FILE)
    return True


def _expand_home(path: str, home: Path | None) -> Path:
    if home is not None and (path == "~" or path.startswith("~/")):
        return home / path[2:]
    return Path(os.path.expanduser(path))


def local_path(source: str, home: Path | None = None) -> Path:
    """The path for a local input: a plain path (``~`` expanded) or a ``file://`` URI."""
    if source == "":
        raise QwenOpsError("an empty string is not a file", INPUT_FILE)
    if "\x00" in source:
        raise QwenOpsError(f"{display(source)}: path contains a NUL byte", INPUT_FILE)
    if source.lower().startswith("file:"):
        parts = urlsplit(source)
        if parts.query or parts.fragment:
            raise QwenOpsError(f"{display(source)}: file:// URI with a query or fragment; "
                               "percent-encode '?' as %3F and '#' as %23", INPUT_FILE)
        path = unquote(parts.path)
        if parts.netloc in ("~",) or parts.netloc.startswith("~"):
            path = parts.netloc + path
        elif parts.netloc not in ("", "localhost"):
            raise QwenOpsError(f"{display(source)}: file:// URI names a remote host", INPUT_FILE)
        if not path:
            raise QwenOpsError(f"{display(source)}: file:// URI has no path", INPUT_FILE)
        return _expand_home(path, home)
    if _SCHEME.match(source):
        raise QwenOpsError(f"{display(source)}: unsupported URL scheme", INPUT_FILE)
    return _expand_home(source, home)


class LocalFile(NamedTuple):
    """A checked input. ``identity`` changes whenever the content may have (ctime moves on any write,
    even when the writer restores mtime), so a cache can trust it without re-reading the file."""

    path: Path
    size: int
    mtime_ns: int
    inode: int
    device: int = 0
    ctime_ns: int = 0

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def identity(self) -> tuple:
        return (self.device, self.inode, self.size, self.mtime_ns, self.ctime_ns)


def check_file(path: Path) -> LocalFile:
    """Everything that can be wrong with an input, found before a byte is sent."""
    shown = display(str(path))
    try:
        info = os.stat(path)
    except FileNotFoundError:
        broken = os.path.islink(path)
        raise QwenOpsError(f"{shown}: {'broken symbolic link' if broken else 'no such file'}", INPUT_FILE) from None
    except OSError as exc:
        reason = "symbolic link loop" if exc.errno == 40 else (exc.strerror or "cannot access")
        raise QwenOpsError(f"{shown}: {reason}", INPUT_FILE) from None
    if stat.S_ISDIR(info.st_mode):
        raise QwenOpsError(f"{shown}: is a directory, not a file", INPUT_FILE)
    if not stat.S_ISREG(info.st_mode):
        raise QwenOpsError(f"{shown}: not a regular file (FIFO, socket or device)", INPUT_FILE)
    if info.st_size == 0:
        raise QwenOpsError(f"{shown}: file is empty (0 bytes)", INPUT_FILE)
    if not os.access(path, os.R_OK):
        raise QwenOpsError(f"{shown}: permission denied", INPUT_FILE)
    return LocalFile(path, info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev, info.st_ctime_ns)


def check_size(local: LocalFile, max_bytes: int | None) -> None:
    """The backend's size limit, checked on the size already read (no second stat)."""
    if max_bytes is not None and local.size > max_bytes:
        raise QwenOpsError(f"{display(str(local.path))}: {local.size} bytes is over the "
                           f"{max_bytes // (1024 * 1024)} MiB limit", INPUT_FILE)


def _open_regular(local: LocalFile) -> int:
    shown = display(str(local.path))
    try:
        fd = os.open(local.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise QwenOpsError(f"{shown}: {exc.strerror or 'cannot open'}", INPUT_FILE) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise QwenOpsError(f"{shown}: not a regular file (FIFO, socket or device)", INPUT_FILE)
    return fd


def read_chunks(local: LocalFile, hasher=None, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
    """Exactly ``local.size`` bytes in ``chunk_size`` pieces (the last may be shorter), each read once;
    ``hasher`` sees every byte in order. Raises when the file changes size or mtime meanwhile."""
    fd = _open_regular(local)
    left = local.size
    try:
        while left > 0:
            want = min(chunk_size, left)
            chunk = os.read(fd, want)
            while chunk and len(chunk) < want:  # short reads: rare on regular files, but allowed
                more = os.read(fd, want - len(chunk))
                if not more:
                    break
                chunk += more
            if not chunk:
                break
            left -= len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            yield chunk
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if left or after.st_size != local.size or after.st_mtime_ns != local.mtime_ns:
        raise QwenOpsError(f"{display(str(local.path))}: file changed while it was being read", INPUT_FILE)


THREAD_HASH_BYTES = 4 * 1024 * 1024   # below this, hashing inline costs less than a thread


class _InlineHasher:
    def __init__(self):
        self._hash = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        pass


class _ThreadedHasher:
    """sha256 in a worker thread, so hashing overlaps sending instead of capping its speed.

    ``hashlib`` releases the GIL on large buffers; the queue is bounded (at most 4 chunks, 4 MiB)
    so a slow hash holds back the reader rather than filling memory.
    """

    def __init__(self):
        import queue
        import threading

        self._hash = hashlib.sha256()
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()


def sha256_hasher(size: int):
    """A sha256 with ``update``/``hexdigest``/``close``: threaded for large inputs, inline for small ones."""
    return _ThreadedHasher() if size >= THREAD_HASH_BYTES else _InlineHasher()
