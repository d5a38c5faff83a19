"""The DashScope side: chat (OpenAI-compatible and native), and temporary-storage policies."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from urllib.parse import urlsplit

from .oss_api import split_bucket_key
from .oss_signing import OssError, authenticate, sign_policy

KNOWN_MODELS = frozenset({
    "qwen-turbo", "qwen-plus", "qwen-max", "qwen-long", "qwen-flash", "qwen3-max", "qwen3.6-plus",
    "qwen-vl-plus", "qwen-vl-max", "qwen-vl-ocr", "qwen3-vl-plus", "qwen3-vl-flash",
    "qwen-omni-turbo", "qwen3-omni-flash", "qwen-audio-turbo", "qvq-max",
})
MEDIA_KEYS = ("image_url", "video_url", "audio_url", "input_audio", "image", "video", "audio")
RESOLVE_HEADER = "X-DashScope-OssResourceResolve"
# The service's limit on one inline item (its 400: "Exceeded limit on max bytes per data-uri item : 10485760")
MAX_DATA_URI_BYTES = 10 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


def authorize(h, state) -> tuple[str, str]:
    """Return (api key, account) or raise the 401 the real service gives."""
    auth = h.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[7:].strip():
        raise ApiError(401, "InvalidApiKey", "No API-key provided.")
    key = auth[7:].strip()
    account = state.api_keys.get(key)
    if account is None:  # unknown keys and Token Plan keys alike, as on the standard host
        raise ApiError(401, "InvalidApiKey", "Invalid API-key provided.")
    return key, account


# ---------------------------------------------------------------- getPolicy

def get_policy(h, state) -> None:
    state.count("getPolicy")
    if h.apply_fault("getPolicy"):
        return
    try:
        key, account = authorize(h, state)
        q = h.query_dict
        if q.get("action") != "getPolicy":
            raise ApiError(400, "InvalidParameter", "Unsupported action.")
        model = q.get("model", "")
        if not model:
            raise ApiError(400, "InvalidParameter", "Missing required parameter: model.")
        if not state.allow_rate(key, model):
            raise ApiError(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
    except ApiError as err:
        h.send_ds_error(err.status, err.code, err.message, retry_after=1 if err.status == 429 else None)
        return
    cfg = state.config
    upload_dir = f"dashscope-instant/{account}/{time.strftime('%Y-%m-%d')}/{uuid.uuid4().hex}"
    state.remember_upload_dir(upload_dir, account, model)
    max_bytes = cfg.max_file_mb * 1024 * 1024
    expiration = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(state.now() + cfg.policy_ttl))
    doc = {"expiration": expiration, "conditions": [
        {"bucket": cfg.temp_bucket},
        ["content-length-range", 0, max_bytes],
        ["starts-with", "$key", upload_dir + "/"],
        {"x-oss-object-acl": "private"},
        {"x-oss-forbid-overwrite": "true"},
    ]}
    policy = base64.b64encode(json.dumps(doc).encode()).decode()
    temp = state.named["temp"]
    data = {
        "policy": policy,
        "signature": sign_policy(temp.secret, policy),
        "upload_dir": upload_dir,
        "upload_host": cfg.upload_host or f"{state.oss_endpoint}/{cfg.temp_bucket}",
        "expire_in_seconds": cfg.policy_ttl,
        "max_file_size_mb": cfg.max_file_mb,
        "capacity_limit_mb": 999999999,
        "oss_access_key_id": temp.access_key_id,
        "x_oss_object_acl": "private",
        "x_oss_forbid_overwrite": "true",
    }
    h.send_json(200, {"request_id": h.request_id, "data": data})


# ---------------------------------------------------------------- chat

def _media_urls(node, found: list) -> None:
    """Collect media references from OpenAI-style and native message content."""
    if isinstance(node, list):
        for item in node:
            _media_urls(item, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in MEDIA_KEYS:
                if isinstance(value, dict):
                    value = value.get("url") or value.get("data")
                values = value if isinstance(value, list) else [value]
                found.extend((key, v) for v in values if isinstance(v, str))
            elif isinstance(value, (list, dict)):
                _media_urls(value, found)


def _describe_data_url(url: str) -> tuple[int, str, str]:
    """(size, sha256, "data") of an inline ``data:<mime>;base64,...`` item, or the service's 400."""
    if len(url.encode("utf-8")) > MAX_DATA_URI_BYTES:
        raise ApiError(400, "InvalidParameter", f"Exceeded limit on max bytes per data-uri item : {MAX_DATA_URI_BYTES}")
    header, comma, payload = url.partition(",")
    mime, _, encoding = header[len("data:"):].partition(";")
    if not comma or encoding != "base64" or "/" not in mime:
        raise ApiError(400, "InvalidParameter", "The data URL must be data:<mime type>;base64,<data>.")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "InvalidParameter", "The data URL is not valid base64.") from None
    return len(raw), hashlib.sha256(raw).hexdigest(), "data"


def _describe_media(h, state, url: str, account: str, model: str) -> tuple[int, str, str]:
    """(size, sha256, source kind) for one media reference, or ApiError."""
    if url.startswith("oss://"):
        if h.headers.get(RESOLVE_HEADER, "").lower() != "enable":
            raise ApiError(400, "invalid_parameter_error",
                           "The provided URL does not appear to be valid. Ensure it is correctly formatted. "
                           f"(oss:// URLs need the {RESOLVE_HEADER}: enable header)")
        meta = state.store.get(state.config.temp_bucket, url[len("oss://"):])
        if meta is None or not meta.extra:
            raise ApiError(400, "InvalidParameter", "The oss:// resource does not exist.")
        if state.now() > meta.extra["expires_at"]:
            raise ApiError(400, "InvalidParameter", "The oss:// resource has expired (48 hours).")
        if meta.extra["account"] != account:
            raise ApiError(400, "InvalidParameter", "The oss:// resource belongs to another account.")
        if meta.extra["model"] != model:
            raise ApiError(400, "InvalidParameter",
                           "The oss:// resource was uploaded for another model.")
        return meta.size, state.store.sha256(meta), "oss"
    if url.startswith("data:"):
        return _describe_data_url(url)
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and f"{parts.scheme}://{parts.netloc}" == state.oss_endpoint:
        bucket, key = split_bucket_key(parts.path)
        query = h.parse_query(parts.query)
        try:
            if bucket != state.config.bucket:
                raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.")
            authenticate("GET", bucket, key, query, {}, state.credentials.get, state.config.region,
                         now=state.now())
        except OssError as err:
            raise ApiError(400, "InvalidParameter",
                           f"Failed to download the media resource: {err.status} {err.code}") from None
        meta = state.store.get(bucket, key)
        if meta is None:
            raise ApiError(400, "InvalidParameter", "Failed to download the media resource: 404 NoSuchKey")
        return meta.size, state.store.sha256(meta), "presigned"
    raise ApiError(400, "InvalidParameter", "The sandbox cannot download media from outside hosts.")


def chat(h, state, native: bool) -> None:
    state.count("chat")
    if h.apply_fault("chat"):
        return
    try:
        _, account = authorize(h, state)
        try:
            request = json.loads(h.read_small_body() or b"{}")
        except ValueError:
            raise ApiError(400, "InvalidParameter", "The request body is not valid JSON.") from None
        if not isinstance(request, dict):
            raise ApiError(400, "InvalidParameter", "The request body must be a JSON object.")
        model = request.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "InvalidParameter", "Missing required parameter: model.")
        if model not in KNOWN_MODELS:
            raise ApiError(404, "ModelNotFound", f"Model not exist: {model[:64]}")
        messages = (request.get("input") or {}).get("messages") if native else request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "InvalidParameter", "messages must be a non-empty list.")
        media: list = []
        _media_urls(messages, media)
        lines = []
        for index, (kind, url) in enumerate(media):
            size, sha, source = _describe_media(h, state, url, account, model)
            lines.append(f"media[{index}] {kind} source={source} bytes={size} sha256={sha}")
    except ApiError as err:
        h.send_ds_error(err.status, err.code, err.message, compatible=not native)
        return
    text = "Hello from the qianwen-ops-auth sandbox." + ("\n" + "\n".join(lines) if lines else "")
    usage = {"input_tokens": 8, "output_tokens": 8, "total_tokens": 16}
    if native:
        body = {"request_id": h.request_id, "usage": usage, "output": {"choices": [{
            "finish_reason": "stop", "message": {"role": "assistant", "content": [{"text": text}]}}]}}
    else:
        body = {
            "id": f"chatcmpl-{h.request_id}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "request_id": h.request_id,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 8, "completion_tokens": 8, "total_tokens": 16},
        }
    h.send_json(200, body)
