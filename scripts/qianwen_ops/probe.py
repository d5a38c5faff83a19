"""Does the key work? One minimal chat completion, judged by its HTTP status."""

from __future__ import annotations

import json
import time

from . import errors
from .credentials import ApiKey, find_api_key, key_advice, key_exit_code
from .endpoints import Endpoint, region_endpoints, resolve_endpoint
from .errors import public
from .limits import REQUEST_TIMEOUT
from .named_tuple import NamedTuple
from .redaction import Concealed, server_token
from .settings import Settings

TYPE_CHECKING = False   # as typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from .http_client import HttpSession

# http_client (http.client, ssl, email) is imported where a request is made: run_probe opens
# the TCP connection first, so that its round trip overlaps loading the HTTP stack.

DEFAULT_MODEL = "qwen-turbo"


class ProbeResult(NamedTuple):
    exit_code: int
    key: ApiKey
    endpoint: Endpoint | None = None
    status: int | None = None
    request_id: str = ""
    latency_ms: int | None = None
    error_code: str = ""
    error_message: str = ""

    def record(self) -> dict:
        """The non-secret fields, for --json and the evidence file."""
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "key_status": self.key.status,
            "key_source": self.key.source,
            "key_problem": self.key.problem,
            "endpoint_host": self.endpoint.host if self.endpoint else "",
            "endpoint_source": self.endpoint.source if self.endpoint else "",
            "request_id": self.request_id,
            "latency_ms": self.latency_ms,
            "error_code": self.error_code,
            "error_message": self.error_message,
        }


def probe_endpoint(key: ApiKey, endpoint: Endpoint, model: str, session: HttpSession) -> ProbeResult:
    """The tiny request with a usable key; every field taken from the answer is untrusted text."""
    from .http_client import error_fields  # deferred: see the note above DEFAULT_MODEL

    body = json.dumps({"model": model, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    # one request per connection: "close" also spares a keep-alive server's Nagle/delayed-ACK stall
    headers = {"Authorization": Concealed(f"Bearer {key.secret.reveal()}"), "Content-Type": "application/json",
               "Connection": "close"}
    started = time.monotonic()
    try:
        response = session.request("POST", endpoint.compatible_base + "/chat/completions", headers, body)
    except errors.QwenOpsError as exc:
        return ProbeResult(exc.exit_code, key, endpoint, error_message=exc.message)
    latency = int((time.monotonic() - started) * 1000)
    code = message = request_id = ""
    if response.status != 200:
        code, message, request_id = error_fields(response)
    else:
        data = response.json() or {}
        request_id = server_token(data.get("request_id") or data.get("id"))
    request_id = request_id or server_token(response.header("x-request-id"))
    return ProbeResult(errors.exit_code_for_status(response.status), key, endpoint, status=response.status,
                       request_id=request_id, latency_ms=latency, error_code=code, error_message=message)


@public
def run_probe(settings: Settings, model: str = DEFAULT_MODEL, timeout: float = REQUEST_TIMEOUT,
              session: HttpSession | None = None, key: ApiKey | None = None,
              endpoint: Endpoint | None = None) -> ProbeResult:
    """Probe the configured endpoint (``key``/``endpoint`` when the caller has resolved them)."""
    key = key or find_api_key(settings)
    endpoint = endpoint or resolve_endpoint(settings)
    if key_exit_code(key) != errors.OK:
        return ProbeResult(key_exit_code(key), key, endpoint, error_message=key_advice(key))
    if session is None:
        from .first_hop import open_first_hop  # deferred: see the note above DEFAULT_MODEL

        early = open_first_hop(endpoint.compatible_base, timeout, settings.env)  # before the imports below
        from .http_client import HttpSession  # after open_first_hop: the imports overlap its round trip

        session = HttpSession(timeout=timeout, env=settings.env, first_hop=early)
    try:
        return probe_endpoint(key, endpoint, model, session)
    finally:
        session.close()


@public
def probe_regions(settings: Settings, model: str = DEFAULT_MODEL, timeout: float = REQUEST_TIMEOUT,
                  key: ApiKey | None = None) -> list:
    """[(region, ProbeResult)] for the documented region hosts, in parallel; never a custom host.

    The key goes only to ``endpoints.region_endpoints``: cn, intl and us, and the SDK's MaaS regions
    when a workspace id is known, whatever QWEN_BASE_URL says.
    """
    from concurrent.futures import ThreadPoolExecutor  # deferred: only --all-regions runs threads

    key = key or find_api_key(settings)
    endpoints = region_endpoints(settings)
    if key_exit_code(key) != errors.OK:
        return [(e.region, ProbeResult(key_exit_code(key), key, e, error_message=key_advice(key)))
                for e in endpoints]
    from .http_client import HttpSession  # deferred: see the note above DEFAULT_MODEL

    session = HttpSession(timeout=timeout, env=settings.env)
    pool = ThreadPoolExecutor(max_workers=len(endpoints))
    try:
        results = list(pool.map(lambda e: probe_endpoint(key, e, model, session), endpoints))
    except BaseException:  # Ctrl-C: the requests in flight are abandoned, not waited for
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        session.close()
    pool.shutdown(wait=True)
    return [(e.region, r) for e, r in zip(endpoints, results)]


def regions_exit_code(results: list) -> int:
    """0 when any region accepted the key; else 5 when any rejected it; else the first failure's code."""
    codes = [r.exit_code for _, r in results]
    if errors.OK in codes:
        return errors.OK
    if errors.AUTH_REJECTED in codes:
        return errors.AUTH_REJECTED
    return codes[0] if codes else errors.INTERNAL
