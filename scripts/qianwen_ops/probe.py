"""Does the key work? One minimal chat completion, judged by its HTTP status."""

from __future__ import annotations

import json
import time
from typing import NamedTuple

from . import errors
from .credentials import MALFORMED, NOT_SET, PLACEHOLDER, STANDARD, TOKEN_PLAN, ApiKey, find_api_key
from .endpoints import Endpoint, resolve_endpoint
from .http_client import HttpSession, error_fields
from .settings import Settings

DEFAULT_MODEL = "qwen-turbo"
DEFAULT_TIMEOUT = 15.0

KEY_ADVICE = {
    NOT_SET: "no API key found; run scripts/setup_env.py and put your key in .env",
    PLACEHOLDER: "the API key is still the placeholder; replace it in {source} with your key from the console",
    MALFORMED: "the API key in {source} is malformed ({problem}); fix it there",
    TOKEN_PLAN: ("the API key in {source} is a Token Plan key (sk-sp-); Token Plan is for interactive "
                 "tools only and these scripts need a standard pay-as-you-go key (sk-)"),
}


class ProbeResult(NamedTuple):
    exit_code: int
    key: ApiKey
    endpoint: Endpoint | None = None
    status: int | None = None
    request_id: str = ""
    latency_ms: int | None = None
    error_code: str = ""
    error_message: str = ""
    sent: bool = False

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


def key_advice(key: ApiKey) -> str:
    return KEY_ADVICE[key.status].format(source=key.source or ".env", problem=key.problem)


def run_probe(settings: Settings, model: str = DEFAULT_MODEL, timeout: float = DEFAULT_TIMEOUT,
              session: HttpSession | None = None) -> ProbeResult:
    key = find_api_key(settings)
    endpoint = resolve_endpoint(settings)
    if key.status != STANDARD:
        code = errors.TOKEN_PLAN_KEY if key.status == TOKEN_PLAN else errors.NO_KEY
        return ProbeResult(code, key, endpoint, error_message=key_advice(key))
    body = json.dumps({"model": model, "max_tokens": 1,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"Authorization": f"Bearer {key.secret.reveal()}", "Content-Type": "application/json"}
    session = session or HttpSession(timeout=timeout)
    started = time.monotonic()
    try:
        response = session.request("POST", endpoint.compatible_base + "/chat/completions", headers, body)
    except errors.QwenOpsError as exc:
        return ProbeResult(exc.exit_code, key, endpoint, error_message=exc.message, sent=True)
    finally:
        session.close()
    latency = int((time.monotonic() - started) * 1000)
    code = message = request_id = ""
    if response.status != 200:
        code, message, request_id = error_fields(response)
    else:
        data = response.json() or {}
        request_id = str(data.get("request_id") or data.get("id") or "")
    return ProbeResult(errors.exit_code_for_status(response.status), key, endpoint, status=response.status,
                       request_id=request_id or response.header("x-request-id"), latency_ms=latency,
                       error_code=code, error_message=message, sent=True)
