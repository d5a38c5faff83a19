"""Give a model a local file: ``resolve_file`` / ``upload_file`` / ``upload_many``.

Backend: the user's own bucket when ``QWEN_TMP_OSS_BUCKET`` is set (presigned
https URL, no extra header), else DashScope temporary storage (``oss://`` URL,
valid 48 h, needs ``X-DashScope-OssResourceResolve: enable``). Remote inputs
(``http(s)://``, ``oss://``, ``data:``) come back unchanged without a request.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from . import errors
from .credentials import TOKEN_PLAN, find_api_key, key_advice, key_exit_code
from .custom_oss import CustomOss, load_config
from .endpoints import resolve_endpoint
from .errors import QwenOpsError
from .http_client import HttpSession
from .local_files import check_file, check_size, display, is_remote, local_path, sha256_of
from .settings import Settings
from .temp_storage import TempStorage
from .upload_cache import UploadCache, cache_path, entry_key

RESOLVE_HEADER = "X-DashScope-OssResourceResolve"
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 60.0  # seconds without progress on one request
MAX_CONCURRENCY = 16
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


@dataclass(frozen=True)
class Upload:
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


@dataclass
class Outcome:
    source: str
    upload: Upload | None = None
    error: QwenOpsError | None = None


def request_headers_for(urls: Iterable[str]) -> dict:
    """Extra headers a DashScope call needs for these media URLs."""
    return {RESOLVE_HEADER: "enable"} if any(u.startswith("oss://") for u in urls) else {}


def open_backend(settings: Settings, session: HttpSession):
    """The backend every local upload in this call goes to (checked before any request)."""
    custom = load_config(settings)
    if custom is not None:
        return CustomOss(custom, cache_path(settings.env).parent, timeout=session.timeout, env=settings.env)
    key = find_api_key(settings)
    if key_exit_code(key) != errors.OK:
        why = ("; Token Plan keys take media by URL only, so local files cannot be uploaded with them "
               "(nothing was sent)") if key.status == TOKEN_PLAN else ""
        raise QwenOpsError(key_advice(key) + why, key_exit_code(key))
    return TempStorage(resolve_endpoint(settings), key.secret, session)


def _check_model(model: str) -> None:
    if not isinstance(model, str) or not _MODEL.match(model):
        raise QwenOpsError("model must be a model name such as qwen-vl-plus", errors.USAGE)


class _Batch:
    """Shared state of one call: backend (opened lazily), cache, HTTP session."""

    def __init__(self, settings: Settings, use_cache: bool, progress: Callable | None, timeout: float):
        self.settings = settings
        self.session = HttpSession(timeout=timeout)
        self.cache = UploadCache(cache_path(settings.env), enabled=use_cache)
        self.progress = progress
        self._backend = None
        self._backend_error: QwenOpsError | None = None
        self._lock = threading.Lock()

    def backend(self):
        with self._lock:
            if self._backend is None and self._backend_error is None:
                try:
                    self._backend = open_backend(self.settings, self.session)
                except QwenOpsError as exc:
                    self._backend_error = exc
            if self._backend_error is not None:
                raise self._backend_error
            return self._backend

    def one(self, source: str, model: str) -> Upload:
        if is_remote(source):
            return Upload(source, None, "url", None, None, source.startswith("oss://"), source)
        local = check_file(local_path(source, self.settings.home))
        backend = self.backend()
        key = entry_key(local, model, backend.cache_scope)
        hit = self.cache.lookup(key)
        if hit is not None and hit.get("sha256") == sha256_of(local):
            return Upload(hit["url"], hit["expires_at"], hit["backend"], local.size, hit["sha256"],
                          hit["needs_resolve_header"], source, cached=True)
        check_size(local, backend.max_bytes(model))
        progress = (lambda sent: self.progress(source, sent, local.size)) if self.progress else None
        # A stable object id per file identity lets an interrupted multipart upload resume.
        url, expires_at, sha = backend.upload(local, model, progress, stable_id=uuid.UUID(key[:32]).hex)
        upload = Upload(url, expires_at, backend.backend, local.size, sha,
                        backend.needs_resolve_header, source)
        self.cache.store({key: {"url": url, "expires_at": expires_at, "issued_at": time.time(),
                                "backend": backend.backend, "sha256": sha,
                                "needs_resolve_header": backend.needs_resolve_header}})
        return upload


def upload_many(sources: Sequence[str], model: str, settings: Settings | None = None,
                use_cache: bool = True, concurrency: int = DEFAULT_CONCURRENCY,
                progress: Callable | None = None, timeout: float = DEFAULT_TIMEOUT) -> list:
    """Resolve every input; one ``Outcome`` per input, in input order (errors do not stop the rest)."""
    _check_model(model)
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise QwenOpsError(f"concurrency must be between 1 and {MAX_CONCURRENCY}", errors.USAGE)
    if not 0 < timeout <= 3600:
        raise QwenOpsError("timeout must be between 0 and 3600 seconds", errors.USAGE)
    batch = _Batch(settings or Settings.from_process(), use_cache, progress, timeout)

    def run(source: str) -> Outcome:
        try:
            return Outcome(source, upload=batch.one(source, model))
        except QwenOpsError as exc:
            if exc.exit_code == errors.INPUT_FILE and not exc.message.startswith(display(source)):
                exc = QwenOpsError(f"{display(source)}: {exc.message}", exc.exit_code, code=exc.code,
                                   status=exc.status)
            return Outcome(source, error=exc)

    try:
        if concurrency == 1 or len(sources) <= 1:
            return [run(s) for s in sources]
        with ThreadPoolExecutor(max_workers=min(concurrency, len(sources))) as pool:
            return list(pool.map(run, sources))
    finally:
        batch.session.close()


def upload_file(path: str | Path, model: str, settings: Settings | None = None,
                use_cache: bool = True) -> Upload:
    """Upload one local file (path or file:// URI); raises ``QwenOpsError`` on failure."""
    outcome = upload_many([str(path)], model, settings, use_cache, concurrency=1)[0]
    if outcome.error is not None:
        raise outcome.error
    return outcome.upload


def resolve_file(source: str | Path, model: str, settings: Settings | None = None,
                 use_cache: bool = True) -> str:
    """A model-ready URL for ``source``: remote URLs unchanged, local files uploaded."""
    return upload_file(source, model, settings, use_cache).url
