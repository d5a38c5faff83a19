"""Local inputs: telling paths from URLs, and opening files safely.

A FIFO, a device or a directory is refused before anything is read (never a read
that blocks forever); the size is fixed when the file is checked, and a file that
changes while it is being sent is reported, never uploaded half-way. The file read
is the file checked: every read opens it through ``open_regular``, which compares the
open file's identity (device, inode, size, mtime, ctime) with the checked one.
"""

from __future__ import annotations

import io
import os
import re
import stat
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import INPUT_FILE, QwenOpsError
from .fsutil import UnsafeTarget, open_for_reading
from .named_tuple import NamedTuple
from .redaction import one_line, redact

READ_CHUNK = 1024 * 1024    # fewer, larger reads and hand-offs to the hashing thread
PASS_THROUGH_SCHEMES = ("http", "https", "oss", "data")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)
# An API key typed where a file name belongs: "sk-" (or "sk-sp-"/"sk-ws-") and 16+ key characters.
_KEY_LIKE = re.compile(r"^\s*(?:Bearer\s+)?sk-[A-Za-z0-9_\-]{16,}\s*$")


def display(source: str, *, redacted: bool = True) -> str:
    """A one-line, printable, redacted form of an input or path for messages: the one place that shows one.

    No URL secrets, no control characters, and redacted as server text is (``redaction.redact``):
    an input that holds the loaded key (``DASHSCOPE_API_KEY=sk-...``, ``./sk-...``, the key without
    ``sk-``) never echoes it. Backslashes are doubled so an escaped control character (``\\n``)
    cannot be confused with a name that holds a backslash; bytes that were not UTF-8 (surrogate
    escapes) show as ``\\udcXX``. Long names keep their start and end (each redacted on its own).
    ``redacted=False``: the same form unredacted, only for text that is redacted whole before it is kept
    (the records ``evidence.append_records`` writes).
    """
    text = source
    if "://" in source and not source.startswith("file:"):
        try:
            parts = urlsplit(source)
            text = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
        except ValueError:
            text = source.split("://", 1)[0] + "://(not shown)"
    text = one_line(text.replace("\\", "\\\\"))
    hide = redact if redacted else str
    return hide(text) if len(text) <= 200 else hide(text[:97]) + "…" + hide(text[-100:])


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


def _expand_home(path: str, home, pathmod) -> str:
    seps = ("/", pathmod.sep)
    if home is not None and (path == "~" or (path[:1] == "~" and path[1:2] in seps)):
        rest = path[2:]
        return pathmod.join(str(home), rest) if rest else str(home)
    return pathmod.expanduser(path)


_DRIVE = re.compile(r"^[A-Za-z]:")


def _file_uri_text(source: str, pathmod) -> str:
    r"""The path a ``file:`` URI names, spelled for ``pathmod`` (``posixpath`` or ``ntpath``).

    Windows (``urllib.request.url2pathname``, i.e. ``nturl2path``, semantics): ``file:///C:/x``,
    ``file://localhost/C|/x`` and the common misspelling ``file://C:/x`` give ``C:\x``; a host,
    ``file://server/share/x``, or an empty host and four slashes, ``file:////server/share/x``, give
    the UNC path ``\\server\share\x``. Elsewhere a host other than ``localhost`` is refused.
    ``file://~/x`` means ``~/x`` on both.
    """
    parts = urlsplit(source)
    if parts.query or parts.fragment:
        raise QwenOpsError(f"{display(source)}: file:// URI with a query or fragment; "
                           "percent-encode '?' as %3F and '#' as %23", INPUT_FILE)
    host = parts.netloc
    if host.startswith("~"):
        return unquote(host + parts.path)
    if host.lower() == "localhost":
        host = ""
    if pathmod.sep == "\\":
        from nturl2path import url2pathname  # what urllib.request.url2pathname is on Windows

        if re.match(r"^[A-Za-z][:|]$", host):  # file://C:/x, a common misspelling of file:///C:/x
            host, parts = "", parts._replace(path="/" + host + parts.path)

        try:
            path = url2pathname(parts.path)
        except OSError:  # e.g. a second drive letter
            raise QwenOpsError(f"{display(source)}: not a valid Windows file:// URI", INPUT_FILE) from None
        if host:
            return "\\\\" + host + path if path.startswith("\\") else ""
        return path
    if host:
        raise QwenOpsError(f"{display(source)}: file:// URI names a remote host", INPUT_FILE)
    return unquote(parts.path)


def local_path_text(source: str, home=None, pathmod=os.path) -> str:
    """``local_path`` as text for the path flavour ``pathmod``: ``os.path`` here, or ``ntpath`` /
    ``posixpath`` to see what another platform makes of ``source`` (the tests do)."""
    if source == "":
        raise QwenOpsError("an empty string is not a file", INPUT_FILE)
    if "\x00" in source:
        raise QwenOpsError(f"{display(source)}: path contains a NUL byte", INPUT_FILE)
    if source.lower().startswith("file:"):
        path = _file_uri_text(source, pathmod)
        if not path:
            raise QwenOpsError(f"{display(source)}: file:// URI has no path", INPUT_FILE)
        return _expand_home(path, home, pathmod)
    if _SCHEME.match(source) and not (pathmod.sep == "\\" and _DRIVE.match(source)):  # C://x is a drive
        raise QwenOpsError(f"{display(source)}: unsupported URL scheme", INPUT_FILE)
    return _expand_home(source, home, pathmod)


def local_path(source: str, home: Path | None = None) -> Path:
    """The path for a local input: a plain path (``~`` expanded) or a ``file:`` URI (on Windows with a
    drive letter or a UNC host)."""
    return Path(local_path_text(source, home))


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
    try:  # the usual case first, without formatting a name that only an error would show
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode) and info.st_size and os.access(path, os.R_OK):
            return LocalFile(path, info.st_size, info.st_mtime_ns, info.st_ino, info.st_dev, info.st_ctime_ns)
    except OSError:
        pass
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


def identity_of(info: os.stat_result) -> tuple:
    """``LocalFile.identity`` of a ``stat`` or ``fstat`` result."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def open_regular(local: LocalFile) -> int:
    """A read-only descriptor of a checked file (``fsutil.open_for_reading``); the caller closes it.

    The file opened must be the file checked: the same identity (device, inode, size, mtime, ctime), so
    a link re-pointed, or a file replaced or written, since ``check_file`` is refused (exit 10) before a
    byte of it is read. Every read of an input goes through here (``HashedReader``, ``FileSlice``,
    ``sha256_of``, ``secret_files``' content check), so what was judged is what is sent.
    """
    try:
        fd = open_for_reading(local.path)
    except UnsafeTarget:
        raise QwenOpsError(f"{display(str(local.path))}: not a regular file (FIFO, socket or device)",
                           INPUT_FILE) from None
    except OSError as exc:
        raise QwenOpsError(f"{display(str(local.path))}: {exc.strerror or 'cannot open'}", INPUT_FILE) from None
    try:
        same = identity_of(os.fstat(fd)) == local.identity
    except OSError:
        same = False
    if not same:
        os.close(fd)
        raise QwenOpsError(f"{display(str(local.path))}: file changed after it was checked (a link re-pointed or the "
                           "file replaced or written); nothing of it was sent", INPUT_FILE)
    return fd


def check_unchanged(local: LocalFile, fd: int) -> None:
    """Raise exit 10 when the open file ``fd`` no longer has ``local``'s identity (it was written while read)."""
    try:
        same = identity_of(os.fstat(fd)) == local.identity
    except OSError:
        same = False
    if not same:
        raise QwenOpsError(f"{display(str(local.path))}: file changed while it was being read", INPUT_FILE)


THREAD_HASH_BYTES = 4 * 1024 * 1024   # below this, hashing inline costs less than a thread


class HashedReader:
    """A checked file's bytes, read once and in order into a few reusable buffers, hashed (sha256) as read.

    Iterating yields memoryviews of ``chunk_size`` bytes (the last may be shorter); each stays valid
    only until the next one is asked for, when its buffer may be refilled: send (or copy) it first.
    No chunk is allocated per read (a fresh 1 MiB object per read cost a page fault per 4 KiB and a
    system call to give it back). Large files are hashed on a worker thread fed the same buffers
    (``hashlib`` releases the GIL), so hashing overlaps sending; a buffer is refilled only once the
    hash has taken it, so ``buffers`` x ``chunk_size`` bounds the memory. Raises when the file opened is
    not the file checked, or its identity (size, mtime, ctime...) changes meanwhile; ``hexdigest()``
    once the iteration has ended.
    """

    def __init__(self, local: LocalFile, chunk_size: int = READ_CHUNK, buffers: int = 4):
        self._local = local
        self._chunk_size = min(chunk_size, local.size) or 1
        self._buffers = buffers if local.size >= THREAD_HASH_BYTES else 1
        import hashlib  # deferred: a rerun of cached files hashes none (and loads no OpenSSL)

        self._hash = hashlib.sha256()
        self._digest: str | None = None

    def __iter__(self) -> Iterator[memoryview]:
        threaded = self._buffers > 1
        if threaded:
            import queue  # deferred: only a large file is hashed beside its reading; a cache hit never is

            free: queue.Queue = queue.Queue()
            todo: queue.Queue = queue.Queue()
            for _ in range(self._buffers):
                free.put(bytearray(self._chunk_size))

            def hash_them() -> None:
                while True:
                    item = todo.get()
                    if item is None:
                        return
                    self._hash.update(item)
                    free.put(item.obj)

            worker = threading.Thread(target=hash_them, name="sha256", daemon=True)
            worker.start()
        else:
            single = bytearray(self._chunk_size)
        fd = open_regular(self._local)
        raw = io.FileIO(fd, closefd=False)
        left = self._local.size
        try:
            while left > 0:
                buffer = free.get() if threaded else single
                view = memoryview(buffer)[:min(self._chunk_size, left)]
                got = 0
                while got < len(view):  # short reads: rare on regular files, but allowed
                    n = raw.readinto(view[got:])
                    if not n:
                        break
                    got += n
                if not got:
                    break
                view = view[:got]
                left -= got
                if threaded:
                    todo.put(view)
                else:
                    self._hash.update(view)
                yield view
            if left:
                raise QwenOpsError(f"{display(str(self._local.path))}: file changed while it was being read",
                                   INPUT_FILE)
            check_unchanged(self._local, fd)
        finally:
            os.close(fd)
            if threaded:
                todo.put(None)
                worker.join()
        self._digest = self._hash.hexdigest()

    def hexdigest(self) -> str:
        if self._digest is None:
            raise RuntimeError("the file has not been read to its end")
        return self._digest


SLICE_CHUNK = 256 * 1024   # what one part upload holds at a time


class FileSlice:
    """``size`` bytes of a checked file from ``offset``: an HTTP body that reads its own part of the file.

    ``len()`` and iteration (as requests and ``http_client`` take a body), ``length`` and ``chunks()``
    (``http_client``'s names): every iteration opens the file, reads the slice through one reusable
    buffer of ``chunk_size`` and yields memoryviews of it, each valid until the next is asked for. So
    a multipart upload holds one small buffer per part in flight, never the part; the slices of one
    file can be sent in parallel. Raises when the file ends early (it changed).
    """

    def __init__(self, local: LocalFile, offset: int, size: int, chunk_size: int = SLICE_CHUNK, fd: int | None = None):
        """``fd``: a descriptor of the file (``open_regular``) that the slices of one upload share, read with
        ``os.preadv`` (no seek, so threads can share it); without one (or without ``os.preadv``), each
        iteration opens the file itself."""
        self.local, self.offset, self.size = local, offset, size
        self._chunk_size = max(1, min(chunk_size, size))
        self._fd = fd if hasattr(os, "preadv") else None

    def __len__(self) -> int:
        return self.size

    @property
    def length(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[memoryview]:
        shared = self._fd is not None
        fd = self._fd if shared else open_regular(self.local)
        try:
            raw = None if shared else io.FileIO(fd, closefd=False)
            if raw is not None:
                raw.seek(self.offset)
            buffer = memoryview(bytearray(self._chunk_size))
            position, left = self.offset, self.size
            while left > 0:
                view = buffer[:min(left, self._chunk_size)]
                got = 0
                while got < len(view):
                    n = os.preadv(fd, [view[got:]], position + got) if shared else raw.readinto(view[got:])
                    if not n:
                        raise QwenOpsError(f"{display(str(self.local.path))}: file changed while it was being read",
                                           INPUT_FILE)
                    got += n
                position += got
                left -= got
                yield view
        finally:
            if not shared:
                os.close(fd)

    chunks = __iter__

    def md5(self) -> str:
        """The slice's MD5 in hex (an OSS part's ETag), read through the same small buffer."""
        import hashlib

        digest = hashlib.md5(usedforsecurity=False)
        for view in self:
            digest.update(view)
        return digest.hexdigest()


def sha256_of(local: LocalFile, stop=None, fd: int | None = None, chunk_size: int = READ_CHUNK) -> str | None:
    """The sha256 of a checked file, read in order through one reusable buffer (``FileSlice``; ``fd`` as there),
    while other threads may send slices of it. ``stop`` (a ``threading.Event``) abandons the work: then None
    is returned. Raises when the file ends early; its caller checks it is unchanged once all is sent."""
    import hashlib

    digest = hashlib.sha256()
    for view in FileSlice(local, 0, local.size, chunk_size, fd=fd):
        if stop is not None and stop.is_set():
            return None
        digest.update(view)
    return digest.hexdigest()
