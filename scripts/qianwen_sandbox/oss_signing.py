"""OSS request authentication, written from the protocol description.

Verifies (never produces for clients) the four ways a request proves who sent it:
header signature v1 (``OSS ak:sig``), header signature v4 (``OSS4-HMAC-SHA256``),
presigned query v1 (``OSSAccessKeyId/Expires/Signature``) and presigned query v4
(``x-oss-signature-version`` ...), plus PostObject policies.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping, Sequence

MAX_SKEW_SECONDS = 15 * 60

# Query parameters that are part of the v1 canonical resource.
V1_SUBRESOURCES = frozenset({
    "acl", "uploads", "uploadId", "partNumber", "location", "logging", "website", "lifecycle",
    "referer", "cors", "delete", "append", "position", "security-token", "restore", "qos",
    "stat", "bucketInfo", "objectMeta", "symlink", "tagging", "versions", "versioning",
    "versionId", "policy", "sequential", "x-oss-process", "x-oss-traffic-limit",
    "response-content-type", "response-content-language", "response-expires",
    "response-cache-control", "response-content-disposition", "response-content-encoding",
    "continuation-token", "callback", "callback-var", "encryption", "comp", "live",
})


class OssError(Exception):
    """An OSS error response: HTTP status, code and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    secret: str
    buckets: frozenset          # buckets this key may use
    security_token: str = ""    # required when set (STS credentials)


CredentialLookup = Callable[[str], "Credential | None"]

SIGNATURE_MISMATCH = OssError(
    403, "SignatureDoesNotMatch",
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method.")


def _b64_hmac_sha1(secret: str, text: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), text, hashlib.sha1).digest()).decode()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _lower_headers(headers: Mapping[str, str]) -> dict:
    return {k.lower(): v.strip() for k, v in headers.items()}


def _credential(lookup: CredentialLookup, ak: str, bucket: str, token: str) -> Credential:
    cred = lookup(ak)
    if cred is None:
        raise OssError(403, "InvalidAccessKeyId",
                       "The OSS Access Key Id you provided does not exist in our records.")
    if cred.security_token and not _same(cred.security_token, token or ""):
        raise OssError(403, "InvalidSecurityToken", "The security token you provided is invalid.")
    if bucket and bucket not in cred.buckets:
        raise OssError(403, "AccessDenied", "You have no right to access this bucket.")
    return cred


# ---------------------------------------------------------------- v1

def v1_string_to_sign(method: str, headers: Mapping[str, str], bucket: str, key: str,
                      query: Sequence[tuple], date: str) -> bytes:
    h = _lower_headers(headers)
    oss_headers = sorted((k, v) for k, v in h.items() if k.startswith("x-oss-"))
    canon_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
    resource = f"/{bucket}/{key}" if bucket else "/"
    subs = sorted((k, v) for k, v in query if k in V1_SUBRESOURCES)
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    lines = [method, h.get("content-md5", ""), h.get("content-type", ""), date, canon_headers + resource]
    return "\n".join(lines).encode("utf-8")


# ---------------------------------------------------------------- v4

def v4_encode(text: str, keep_slash: bool) -> str:
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch.isascii() and (ch.isalnum() or ch in "_-~.") or (keep_slash and ch == "/"):
            out.append(ch)
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def v4_signing_key(secret: str, date: str, region: str, product: str = "oss") -> bytes:
    key = hmac.new(("aliyun_v4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, product, "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def v4_signature(secret: str, method: str, bucket: str, key: str, query: Sequence[tuple],
                 headers: Mapping[str, str], additional: Sequence[str], date_time: str,
                 scope: str) -> str:
    h = _lower_headers(headers)
    uri = v4_encode(f"/{bucket}/{key}" if bucket else "/", keep_slash=True)
    canon_query = "&".join(
        f"{k}={v}" if v else k
        for k, v in sorted((v4_encode(k, False), v4_encode(v, False)) for k, v in query))
    signed = {k: v for k, v in h.items()
              if k.startswith("x-oss-") or k in ("content-type", "content-md5") or k in additional}
    canon_headers = "".join(f"{k}:{v}\n" for k, v in sorted(signed.items()))
    payload = h.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
    canonical = "\n".join([method, uri, canon_query, canon_headers, ";".join(sorted(additional)), payload])
    string_to_sign = "\n".join(["OSS4-HMAC-SHA256", date_time, scope,
                                hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    date, region, product = scope.split("/")[:3]
    return hmac.new(v4_signing_key(secret, date, region, product), string_to_sign.encode(),
                    hashlib.sha256).hexdigest()


def _parse_v4_time(value: str) -> int:
    try:
        return calendar.timegm(time.strptime(value, "%Y%m%dT%H%M%SZ"))
    except (ValueError, TypeError):
        raise OssError(400, "InvalidArgument", "x-oss-date is not a valid date") from None


def _v4_scope(credential: str, region: str) -> tuple[str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aliyun_v4_request" or parts[3] != "oss":
        raise OssError(400, "InvalidArgument", "Invalid credential in the v4 signature.")
    if parts[2] != region:
        raise OssError(400, "InvalidArgument",
                       f"Invalid signing region in Authorization header; expected {region}.")
    return parts[0], "/".join(parts[1:])


def _parse_authorization_v4(value: str) -> dict:
    fields = {}
    for item in value[len("OSS4-HMAC-SHA256"):].split(","):
        name, _, val = item.strip().partition("=")
        fields[name] = val
    return fields


# ---------------------------------------------------------------- entry point

def authenticate(method: str, bucket: str, key: str, query: Sequence[tuple],
                 headers: Mapping[str, str], lookup: CredentialLookup, region: str,
                 now: float | None = None) -> Credential:
    """Check a bucket-API request; return the credential it was signed with or raise OssError."""
    now = time.time() if now is None else now
    h = _lower_headers(headers)
    params = dict(query)
    auth = h.get("authorization", "")
    if auth.startswith("OSS4-HMAC-SHA256"):
        fields = _parse_authorization_v4(auth)
        ak, scope = _v4_scope(fields.get("Credential", ""), region)
        cred = _credential(lookup, ak, bucket, h.get("x-oss-security-token", ""))
        date_time = h.get("x-oss-date", "")
        if abs(now - _parse_v4_time(date_time)) > MAX_SKEW_SECONDS:
            raise OssError(403, "RequestTimeTooSkewed", "The difference between the request time and "
                           "the current time is too large.")
        if not date_time.startswith(scope.split("/")[0]):
            raise SIGNATURE_MISMATCH
        additional = [a for a in fields.get("AdditionalHeaders", "").split(";") if a]
        expected = v4_signature(cred.secret, method, bucket, key, query, headers, additional, date_time, scope)
        if not _same(expected, fields.get("Signature", "")):
            raise SIGNATURE_MISMATCH
        return cred
    if auth.startswith("OSS "):
        ak, _, signature = auth[4:].strip().rpartition(":")
        cred = _credential(lookup, ak, bucket, h.get("x-oss-security-token", ""))
        date = h.get("x-oss-date") or h.get("date", "")
        try:
            sent = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            raise OssError(403, "AccessDenied", "Missing or invalid Date header.") from None
        if abs(now - sent) > MAX_SKEW_SECONDS:
            raise OssError(403, "RequestTimeTooSkewed", "The difference between the request time and "
                           "the current time is too large.")
        expected = _b64_hmac_sha1(cred.secret, v1_string_to_sign(method, headers, bucket, key, query, date))
        if not _same(expected, signature):
            raise SIGNATURE_MISMATCH
        return cred
    if params.get("x-oss-signature-version") == "OSS4-HMAC-SHA256":
        ak, scope = _v4_scope(params.get("x-oss-credential", ""), region)
        cred = _credential(lookup, ak, bucket, params.get("x-oss-security-token", ""))
        date_time = params.get("x-oss-date", "")
        expires = params.get("x-oss-expires", "")
        if not expires.isdigit() or not date_time.startswith(scope.split("/")[0]):
            raise SIGNATURE_MISMATCH
        signed_query = [(k, v) for k, v in query if k != "x-oss-signature"]
        additional = [a for a in params.get("x-oss-additional-headers", "").split(";") if a]
        expected = v4_signature(cred.secret, method, bucket, key, signed_query, headers, additional,
                                date_time, scope)
        if not _same(expected, params.get("x-oss-signature", "")):
            raise SIGNATURE_MISMATCH
        if now > _parse_v4_time(date_time) + int(expires):
            raise OssError(403, "AccessDenied", "Request has expired.")
        return cred
    if "Signature" in params and "OSSAccessKeyId" in params:
        cred = _credential(lookup, params["OSSAccessKeyId"], bucket, params.get("security-token", ""))
        expires = params.get("Expires", "")
        if not expires.isdigit():
            raise OssError(403, "AccessDenied", "Invalid Expires parameter.")
        expected = _b64_hmac_sha1(cred.secret, v1_string_to_sign(method, headers, bucket, key, query, expires))
        if not _same(expected, params["Signature"]):
            raise SIGNATURE_MISMATCH
        if now > int(expires):
            raise OssError(403, "AccessDenied", "Request has expired.")
        return cred
    raise OssError(403, "AccessDenied", "You have no right to access this object because of bucket acl.")


# ---------------------------------------------------------------- PostObject policy

def sign_policy(secret: str, policy_b64: str) -> str:
    """The PostObject signature: base64(HMAC-SHA1(secret, policy_b64))."""
    return _b64_hmac_sha1(secret, policy_b64.encode())


def _parse_expiration(value: str) -> float:
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return calendar.timegm(time.strptime(value, fmt))
        except (ValueError, TypeError):
            continue
    raise OssError(400, "InvalidPolicyDocument", "Invalid Policy: Invalid expiration.")


@dataclass
class PostPolicy:
    expiration: float
    conditions: list
    size_range: tuple          # (min, max) bytes, or (0, None)


def check_post_fields(fields: Mapping[str, str], bucket: str, lookup: CredentialLookup,
                      now: float | None = None) -> tuple[Credential, PostPolicy]:
    """Everything about a PostObject form that can be checked before the file arrives."""
    now = time.time() if now is None else now
    if not fields.get("key"):
        raise OssError(400, "InvalidArgument", "The key field is missing or comes after the file field.")
    policy_b64 = fields.get("policy", "")
    if not policy_b64:
        raise OssError(403, "AccessDenied", "Anonymous access is forbidden for this operation.")
    cred = _credential(lookup, fields.get("ossaccesskeyid", ""), bucket,
                       fields.get("x-oss-security-token", ""))
    if not _same(sign_policy(cred.secret, policy_b64), fields.get("signature", "")):
        raise SIGNATURE_MISMATCH
    try:
        doc = json.loads(base64.b64decode(policy_b64, validate=True))
        conditions = doc["conditions"]
        expiration = _parse_expiration(doc["expiration"])
    except (ValueError, KeyError, TypeError):
        raise OssError(400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.") from None
    if now > expiration:
        raise OssError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    size_range: tuple = (0, None)
    for cond in conditions:
        if isinstance(cond, dict):
            cond = ["eq", *next(iter(cond.items()))] if len(cond) == 1 else None
            if cond:
                cond[1] = "$" + cond[1]
        if not isinstance(cond, list) or len(cond) != 3:
            raise OssError(400, "InvalidPolicyDocument", "Invalid Policy: Invalid condition.")
        op = str(cond[0]).lower()
        if op == "content-length-range":
            size_range = (int(cond[1]), int(cond[2]))
            continue
        name = str(cond[1]).lstrip("$").lower()
        actual = bucket if name == "bucket" else fields.get(name, "")
        expected = str(cond[2])
        ok = actual == expected if op == "eq" else actual.startswith(expected) if op == "starts-with" else False
        if not ok:
            raise OssError(403, "AccessDenied",
                           f"Invalid according to Policy: Policy Condition failed: {json.dumps(cond)}")
    return cred, PostPolicy(expiration, conditions, size_range)
