"""Give a model a local file: ``resolve_file`` / ``upload_file`` / ``upload_many``.

Backend: the user's own bucket when ``QWEN_TMP_OSS_BUCKET`` is set (presigned
https URL, no extra header), else DashScope temporary storage (``oss://`` URL,
valid 48 h, needs ``X-DashScope-OssResourceResolve: enable``). With ``inline=True`` a
small file becomes a ``data:`` URL instead (``inline.py``: nothing is sent, no key is
needed). Remote inputs (``http(s)://``, ``oss://``, ``data:``) come back unchanged
without a request, unless they hold a secret (``secret_files.url_reason``: exit 10).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from . import errors
from .credentials import TOKEN_PLAN, find_api_key, key_advice, key_candidates, key_exit_code
from .endpoints import resolve_endpoint
from .errors import QwenOpsError, detached, public, wrong_type
from .inline import data_url
from .limits import UPLOAD_TIMEOUT
from .local_files import LocalFile, check_file, check_size, display, is_remote, local_path, looks_like_key
from .named_tuple import NamedTuple
from .oss_settings import load_config
from .redaction import known_secrets, nothing_to_redact, redact
from .secret_files import PlaceJudge, refuse_by_place, refuse_credentials, refuse_name, refuse_url
from .settings import Settings
from .upload_cache import UploadCache, cache_path, entry_key

RESOLVE_HEADER = "X-DashScope-OssResourceResolve"
# bench/run.py, 100 x 64 KiB over a 50 ms round trip: 1.92 s at 4 in flight, 1.32 s at 8, 1.03 s at 16 (and 16
# is no slower without latency). Large files gain nothing from more streams on one link, so at most
# LARGE_IN_FLIGHT of them go up at once whatever the concurrency (memory stays flat).
DEFAULT_CONCURRENCY = 16
LARGE_FILE_BYTES = 8 * 1024 * 1024
LARGE_IN_FLIGHT = 4
MAX_CONCURRENCY = 16
MAX_TIMEOUT = 3600.0
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class UploadBackend:
    """What every upload destination provides (``TempStorage``, ``CustomOss``); one instance per batch.

    A description for readers and type checkers (the backends do not inherit it)."""

    backend: str                   # "temp-storage" or "custom-oss": reported and cached with each URL
    needs_resolve_header: bool     # True: a model call must send X-DashScope-OssResourceResolve: enable

    def max_bytes(self, model: str) -> int | None:
        """The largest file this destination takes for ``model``; None for no limit."""

    def upload(self, local: LocalFile, model: str, progress: Callable[[int], None] | None = None,
               stable_id: str | None = None) -> tuple:
        """Upload one checked file; returns (URL, expires_at, sha256). Raises ``QwenOpsError``.

        ``stable_id`` (hex, derived from the file identity) may name the object so that an interrupted
        upload can resume; a backend without resumable uploads ignores it.
        """


class Upload(NamedTuple):
    url: str
    expires_at: float | None
    backend: str               # "temp-storage", "custom-oss", or "url" (passed through)
    size: int | None
    sha256: str | None
    needs_resolve_header: bool
    source: str = ""
    cached: bool = False

    def record(self) -> dict:
        return {"source": self.source, "url": self.url, "expires_at": self.expires_at,
                "backend": self.backend, "bytes": self.size, "sha256": self.sha256}


class Outcome(NamedTuple):
    source: str
    upload: Upload | None = None
    error: QwenOpsError | None = None


def request_headers_for(urls: Iterable[str]) -> dict:
    """Extra headers a DashScope call needs for these media URLs."""
    return {RESOLVE_HEADER: "enable"} if any(u.startswith("oss://") for u in urls) else {}


def _usable_key(settings: Settings):
    key = find_api_key(settings)
    if key_exit_code(key) != errors.OK:
        why = ("; Token Plan keys take media by URL only, so local files cannot be uploaded with them "
               "(nothing was sent)") if key.status == TOKEN_PLAN else ""
        raise QwenOpsError(key_advice(key) + why, key_exit_code(key))
    return key


def _custom_config(settings: Settings, temp_storage: bool = False):
    """The custom-OSS settings in effect, or None; ``temp_storage``: None whatever is set (one upload to
    temporary storage while a bucket is configured), its credentials still loaded so no file holding them
    is uploaded."""
    if not temp_storage:
        return load_config(settings)
    try:
        load_config(settings)
    except QwenOpsError:
        pass
    return None


def cache_scope(settings: Settings, temp_storage: bool = False) -> str:
    """Where this call's uploads go, as the reuse cache names it; checked before any request.

    Temporary storage: the endpoint and a salted fingerprint of the account's key; the user's bucket:
    endpoint, bucket, prefix and a fingerprint of the AccessKey ID. Never a secret. Cheap on purpose
    (no HTTP stack): a batch of cache hits never opens a backend.
    """
    custom = _custom_config(settings, temp_storage)
    if custom is not None:
        find_api_key(settings)  # not used here, but loaded so that a file holding it is never uploaded
        fingerprint = custom.access_key_id.fingerprint("oss")   # sha256 of "oss\0" and the ID, 16 hex digits
        return f"oss:{custom.endpoint}/{custom.bucket}/{custom.prefix}:{fingerprint}"
    return f"temp:{resolve_endpoint(settings).root}:{_usable_key(settings).secret.fingerprint()}"


def open_backend(settings: Settings, session, temp_storage: bool = False) -> UploadBackend:
    """The backend every local upload in this call goes to (``session``: an ``HttpSession``)."""
    custom = _custom_config(settings, temp_storage)
    if custom is not None:
        from .custom_oss import CustomOss  # deferred: a batch of cache hits opens no backend

        find_api_key(settings)  # not used here, but loaded so that a file holding it is never uploaded
        return CustomOss(custom, cache_path(settings.env).parent, timeout=session.timeout, env=settings.env,
                         session=session)
    from .temp_storage import TempStorage  # the HTTP stack: only when something is uploaded

    return TempStorage(resolve_endpoint(settings), _usable_key(settings).secret, session)


def check_options(model: str, concurrency: int = DEFAULT_CONCURRENCY, timeout: float = UPLOAD_TIMEOUT,
                  inline: bool = False) -> None:
    """The one place that checks a batch's options (library calls and upload_file.py alike).

    Inlined files are bound to no model, so with ``inline`` the model may be empty.
    """
    if inline and not model:
        pass
    elif not isinstance(model, str):
        raise wrong_type("model", "a model name (str)", model)
    elif not _MODEL.match(model):
        raise QwenOpsError("model must be a model name such as qwen-vl-plus", errors.USAGE)
    if not isinstance(concurrency, int):
        raise wrong_type("concurrency", "an int", concurrency)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise wrong_type("timeout", "a number of seconds", timeout)
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise QwenOpsError(f"concurrency must be between 1 and {MAX_CONCURRENCY}", errors.USAGE)
    if not 0 < timeout <= MAX_TIMEOUT:
        raise QwenOpsError(f"timeout must be between 0 and {MAX_TIMEOUT:g} seconds", errors.USAGE)


def _checked_source(source: object, name: str = "source") -> str:
    """``source`` (a path or URL: ``str`` or ``os.PathLike``) as a ``str``; a ``TypeError`` naming ``name``
    for anything else (a caller's mistake, never read as an input)."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)  # a bytes path stays one, refused below
    if not isinstance(source, str):
        raise wrong_type(name, "a path or URL (str or os.PathLike)", source)
    return source


def _checked_call(sources: object, settings: object, progress: object = None) -> list:
    """The library's arguments of a batch, type-checked: ``sources`` as a list of ``str``. A ``TypeError``
    naming the parameter for a wrong type (a ``str`` as ``sources`` would be one input per character)."""
    if isinstance(sources, (str, bytes, bytearray)) or not isinstance(sources, Sequence):
        raise wrong_type("sources", "a list of paths or URLs", sources)
    if settings is not None and not isinstance(settings, Settings):
        raise wrong_type("settings", "a qianwen_ops.Settings or None", settings)
    if progress is not None and not callable(progress):
        raise wrong_type("progress", "a function or None", progress)
    return [_checked_source(source, f"sources[{index}]") for index, source in enumerate(sources)]


class _Shown:
    """``display(source)``, made when a message is formatted with it: the checks that pass (every input of a
    rerun) show nothing, so they format nothing."""

    __slots__ = ("source",)

    def __init__(self, source: str):
        self.source = source

    def __str__(self) -> str:
        return display(self.source)


class _Batch:
    """Shared state of one call: backend (opened lazily), cache, HTTP session, files already done."""

    def __init__(self, settings: Settings, use_cache: bool, progress: Callable | None, timeout: float,
                 inline: bool = False, allow_credential_files: bool = False, temp_storage: bool = False):
        self.settings = settings
        self.inline = inline           # data: URLs instead of uploads (nothing sent)
        self.allow_credential_files = allow_credential_files
        self.temp_storage = temp_storage
        self.timeout = timeout
        self._session = None           # an HttpSession, made on the first upload (cache hits need none)
        self._scope: str | None = None
        self.cache = UploadCache(cache_path(settings.env), enabled=use_cache)
        self.progress = progress
        self._backend: UploadBackend | None = None
        self._backend_error: QwenOpsError | None = None
        self._lock = threading.Lock()
        self._per_file: dict = {}      # cache key -> lock: one upload per file identity in a batch
        self._done: dict = {}          # cache key -> Upload (this batch), cache or no cache
        self._large = threading.BoundedSemaphore(LARGE_IN_FLIGHT)
        self._checked: dict = {}       # source -> (LocalFile, cache key), checked by a cached_only call
        self.judge = PlaceJudge(settings.home, settings.env)   # the credential-file checks' shared work

    @property
    def session(self):
        with self._lock:
            if self._session is None:
                from .http_client import HttpSession  # deferred: cache hits need no HTTP stack

                self._session = HttpSession(timeout=self.timeout, env=self.settings.env)
            return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def load_secrets(self) -> None:
        """Load the key (and custom-OSS secrets) now, so redaction knows them before any input is shown
        and a file holding one is never sent or inlined."""
        if self.inline:  # nothing is sent, so the key need not be usable: every configured secret still counts
            for load in (lambda: key_candidates(self.settings, "inline"), lambda: load_config(self.settings)):
                try:
                    load()
                except QwenOpsError:
                    pass
            return
        try:
            self.scope()
        except QwenOpsError:
            pass  # raised again for the first local input that needs it

    def scope(self) -> str:
        """The cache scope (errors such as a missing key are raised here, once per batch)."""
        with self._lock:
            if self._scope is None and self._backend_error is None:
                try:
                    self._scope = cache_scope(self.settings, self.temp_storage)
                except QwenOpsError as exc:
                    self._backend_error = exc
            if self._backend_error is not None:
                raise self._backend_error
            return self._scope

    def backend(self) -> UploadBackend:
        session = self.session
        with self._lock:
            if self._backend is None and self._backend_error is None:
                try:
                    self._backend = open_backend(self.settings, session, self.temp_storage)
                except QwenOpsError as exc:
                    self._backend_error = exc
            if self._backend_error is not None:
                raise self._backend_error
            return self._backend

    def resolve(self, source: str, model: str, cached_only: bool = False) -> Upload | None:
        """The upload for ``source``; with ``cached_only``, None when that needs the network (the checks
        done so far are kept for the call that uploads it)."""
        if is_remote(source):
            refuse_url(source)   # a URL holding a secret is neither printed nor handed to the model
            return Upload(source, None, "url", None, None, source.startswith("oss://"), source)
        checked = self._checked.pop(source, None)
        if checked is None:
            local = check_file(local_path(source, self.settings.home))
            shown = _Shown(source)
            # by name, by what it really is (links resolved) or by identity, before the backend is opened: nothing
            # sent or read
            refuse_by_place(local, shown, self.settings.home, self.settings.env,
                            self.allow_credential_files, "inline" if self.inline else "upload", self.judge)
            if self.inline:
                return self._inline(source, local)
            refuse_name(local, shown)   # the name goes into the object's key and its URL
            checked = local, entry_key(local, model, self.scope())
        local, key = checked
        if cached_only:
            done = self._done.get(key) or self._hit(source, local, key)
            if done is None:
                self._checked[source] = checked
            return done if done is None or done.source == source else done._replace(source=source)
        with self._lock:
            file_lock = self._per_file.setdefault(key, threading.Lock())
        with file_lock:  # the same file named twice (path, ./path, absolute, file://) goes up once
            done = self._done.get(key)
            if done is not None:
                return done._replace(source=source)
            upload = self._upload(source, model, local, key)
            self._done[key] = upload
            return upload

    def _inline(self, source: str, local: LocalFile) -> Upload:
        """A ``data:`` URL (nothing sent, nothing cached); a file holding a configured secret is refused."""
        refuse_credentials(local, display(source), self.allow_credential_files, "inline")
        url, _, sha = data_url(local)
        return Upload(url, None, "inline", local.size, sha, False, source)

    def _hit(self, source: str, local: LocalFile, key: str) -> Upload | None:
        hit = self.cache.lookup(key)
        if hit is None:
            return None
        # the identity (device, inode, size, mtime, ctime) is unchanged: no re-read
        upload = Upload(hit["url"], hit["expires_at"], hit["backend"], local.size, hit.get("sha256"),
                        hit["needs_resolve_header"], source, cached=True)
        self._done[key] = upload
        return upload

    def _upload(self, source: str, model: str, local: LocalFile, key: str) -> Upload:
        hit = self._hit(source, local, key)
        if hit is not None:
            return hit
        backend = self.backend()
        # The backend has loaded this run's secrets by now; a small file holding one is never sent.
        refuse_credentials(local, display(source), self.allow_credential_files)
        check_size(local, backend.max_bytes(model))
        progress = (lambda sent: self.progress(source, sent, local.size)) if self.progress else None
        # A stable object id per file identity lets an interrupted multipart upload resume.
        if local.size >= LARGE_FILE_BYTES:
            with self._large:
                url, expires_at, sha = backend.upload(local, model, progress, stable_id=key[:32])
        else:
            url, expires_at, sha = backend.upload(local, model, progress, stable_id=key[:32])
        upload = Upload(url, expires_at, backend.backend, local.size, sha, backend.needs_resolve_header, source)
        self.cache.store({key: {"url": url, "expires_at": expires_at, "issued_at": time.time(),
                                "backend": backend.backend, "sha256": sha,
                                "needs_resolve_header": backend.needs_resolve_header}})
        return upload


def _in_parallel(run: Callable[[int], Outcome], count: int, workers: int,
                 first: Callable[[int], Outcome | None] | None = None) -> list:
    """``run(i)`` for every index on up to ``workers`` daemon threads; results in index order.

    ``first(i)``, when given, is tried in the calling thread for every index in turn: what it answers
    (cache hits, URLs, inputs refused up front) needs no worker; every other index is handed to the
    workers as soon as it is found, the first of them starting with the first such index (a batch
    that ``first`` answers whole starts none, and uploads never wait for the rest of the list).
    Daemon threads and a main thread that only waits in short slices: Ctrl-C returns at once
    (the workers are abandoned mid-retry) instead of waiting out every backoff, as a
    ThreadPoolExecutor's exit would.
    """
    results: list = [None] * count
    lock = threading.Lock()
    finished = threading.Event()
    state = {"left": 0, "fed": False, "error": None, "stop": False}
    todo = None
    threads = 0

    def worker() -> None:
        while True:
            index = todo.get()
            if index is None or state["stop"]:
                return
            try:
                results[index] = run(index)
            except BaseException as exc:  # a bug in one input must not hang the batch
                with lock:
                    state["error"], state["stop"] = exc, True
                finished.set()
                return
            with lock:
                state["left"] -= 1
                if state["left"] == 0 and state["fed"]:
                    finished.set()

    try:
        for index in range(count):
            if state["stop"]:
                break
            answered = first(index) if first is not None else None
            if answered is not None:
                results[index] = answered
                continue
            if todo is None:
                import queue

                todo = queue.SimpleQueue()
            with lock:
                state["left"] += 1
            todo.put(index)
            if threads < workers:
                threading.Thread(target=worker, name="upload", daemon=True).start()
                threads += 1
            time.sleep(0)   # the GIL to a worker whose answer came: this loop must not hold its uploads back
        with lock:
            state["fed"] = True
            waiting = state["left"] > 0 and state["error"] is None
        for _ in range(threads):
            todo.put(None)
        while waiting and not finished.wait(0.25):
            pass
    except BaseException:
        with lock:
            state["stop"] = True
        raise
    if state["error"] is not None:
        raise state["error"]
    return results


@public
def upload_many(sources: Sequence[str], model: str = "", settings: Settings | None = None,
                use_cache: bool = True, concurrency: int = DEFAULT_CONCURRENCY,
                progress: Callable | None = None, timeout: float = UPLOAD_TIMEOUT, inline: bool = False, *,
                allow_credential_files: bool = False, temp_storage: bool = False) -> list:
    """Resolve every input; one ``Outcome`` per input, in input order (errors do not stop the rest).

    ``sources``: a list (any sequence but a string) of paths, ``file://`` URIs or URLs, each a ``str`` or
    ``os.PathLike``. An argument of the wrong type raises ``TypeError`` naming it (a bad value of the
    right type: ``QwenOpsError``, exit 2).

    An input shaped like an API key is refused without being echoed; its ``Outcome.source`` is
    ``"<redacted>"`` (an input holding a loaded secret: that secret is ``<redacted>``). Each
    ``Outcome.error`` is a detached copy (no traceback, no chain). ``inline=True``: local files
    become ``data:`` URLs (``inline.py``), nothing is sent. ``allow_credential_files``: see
    ``secret_files``; ``temp_storage``: DashScope temporary storage even when a custom-OSS bucket
    is configured.
    """
    sources = _checked_call(sources, settings, progress)
    check_options(model, concurrency, timeout, inline)
    batch = _Batch(settings or Settings.from_process(), use_cache, progress, timeout, inline,
                   allow_credential_files, temp_storage)
    batch.load_secrets()  # before any input is shown in a message: redaction must know them
    # One scan of all the inputs instead of a redact per input; valid only while no secret is added.
    mark = known_secrets()
    clean = nothing_to_redact(sources)

    def run(index: int, cached_only: bool = False) -> Outcome | None:
        source = sources[index]
        if looks_like_key(source):
            return Outcome("<redacted>", error=QwenOpsError(
                f"input {index + 1} looks like an API key, not a file; it was not sent or shown (keys belong "
                "in .env or the environment)", errors.INPUT_FILE))
        # the input as given, minus any secret it holds
        shown_source = source if clean and known_secrets() == mark else redact(source)
        try:
            upload = batch.resolve(source, model, cached_only)
            if upload is None:
                return None
            return Outcome(shown_source, upload=upload if shown_source == source else
                           upload._replace(source=shown_source))
        except QwenOpsError as exc:
            if exc.exit_code == errors.INPUT_FILE and not exc.message.startswith(
                    (display(source), "refusing to upload ", "refusing to inline ")):
                exc = QwenOpsError(f"{display(source)}: {exc.message}", exc.exit_code, code=exc.code,
                                   status=exc.status)
            return Outcome(shown_source, error=detached(exc))

    try:
        if concurrency == 1 or len(sources) <= 1:
            return [run(i) for i in range(len(sources))]
        # What needs no request (cache hits, URLs, inputs refused up front) is answered in this thread;
        # the rest goes to worker threads as it is found.
        return _in_parallel(run, len(sources), min(concurrency, len(sources)),
                            first=(lambda i: run(i, cached_only=True)) if use_cache else None)
    finally:
        batch.cache.finish()
        batch.close()


@public
def upload_file(path: str | Path, model: str = "", settings: Settings | None = None,
                use_cache: bool = True, inline: bool = False, *, allow_credential_files: bool = False,
                temp_storage: bool = False) -> Upload:
    """Upload one local file (path or file:// URI); raises ``QwenOpsError`` on failure.

    ``inline=True``: no upload; ``.url`` is a ``data:`` URL (files up to about 7.5 MiB, see ``inline.py``).
    """
    # the unwrapped function: one boundary per call, so a caller's mistake found below stays a TypeError
    outcome = upload_many.__wrapped__([_checked_source(path, "path")], model, settings, use_cache, concurrency=1,
                                      inline=inline, allow_credential_files=allow_credential_files,
                                      temp_storage=temp_storage)[0]
    if outcome.error is not None:
        raise outcome.error
    return outcome.upload


@public
def resolve_file(source: str | Path, model: str = "", settings: Settings | None = None,
                 use_cache: bool = True, inline: bool = False, *, allow_credential_files: bool = False,
                 temp_storage: bool = False) -> str:
    """A model-ready URL for ``source``: remote URLs unchanged, local files uploaded (``inline=True``:
    returned as a ``data:`` URL, nothing sent; a file over the inline limit raises exit 10).
    ``model`` (the model that reads the file) is required unless ``inline``, as ``--model`` is."""
    return upload_file.__wrapped__(_checked_source(source), model, settings, use_cache, inline,
                                   allow_credential_files=allow_credential_files, temp_storage=temp_storage).url
