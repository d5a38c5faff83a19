"""The OSS bucket API that custom OSS mode uses, signed with signature V4 and sent through ``http_client``.

Only what ``custom_oss`` needs: put an object, the multipart requests (initiate, upload a part,
complete, list parts, abort), delete, and a presigned GET. Requests go through ``http_client``,
so they obey the bundle's one set of rules (proxies and CA certificates from the environment, no
credential over plain http through a proxy, no redirect followed, answers bounded in time and
size) and stream their bodies (a part is read from the file as it is sent, never held whole).

Signature V4 as OSS defines it (and oss2, the test suite's judge, computes it): the canonical
request is the method, ``/bucket/key`` (RFC 3986 unreserved characters kept, ``/`` too), the
query sorted by encoded name (``name=value``, or ``name`` alone when empty), every ``x-oss-*``
header plus ``content-type`` and ``content-md5`` (lower-cased, sorted, ``name:value``), no
additional headers, and ``UNSIGNED-PAYLOAD``; it is signed with HMAC-SHA256 under a key derived
from ``"aliyun_v4" + secret`` over the date, the region, ``oss`` and ``aliyun_v4_request``. The
scope is ``date/region/oss/aliyun_v4_request``. Endpoints that are an IP address or ``localhost``
are addressed path-style (``/bucket/key``), all others as ``bucket.host``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlsplit

from .urls import ip_or_none

ALGORITHM = "OSS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_ALWAYS_SIGNED = ("content-type", "content-md5")


def encode(text: str, keep_slash: bool = False) -> str:
    """RFC 3986 encoding of UTF-8 bytes: letters, digits and ``-_.~`` kept (and ``/`` when asked)."""
    return quote(text, safe="/" if keep_slash else "")


def scope(date: str, region: str) -> str:
    return f"{date}/{region}/oss/aliyun_v4_request"


def signing_key(secret: str, date: str, region: str) -> bytes:
    key = hmac.new(("aliyun_v4" + secret).encode("utf-8"), date.encode(), hashlib.sha256).digest()
    for part in (region, "oss", "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret: str, region: str, method: str, bucket: str, key: str, query: dict, headers: dict,
              date_time: str) -> str:
    """The V4 signature of one request (``date_time``: ``YYYYMMDDTHHMMSSZ``, UTC)."""
    canonical_query = "&".join(f"{k}={v}" if v else k
                               for k, v in sorted((encode(k), encode(v)) for k, v in query.items()))
    signed = sorted((name.lower(), value) for name, value in headers.items()
                    if name.lower().startswith("x-oss-") or name.lower() in _ALWAYS_SIGNED)
    canonical = "\n".join([method, encode(f"/{bucket}/{key}", keep_slash=True), canonical_query,
                           "".join(f"{name}:{value}\n" for name, value in signed), "", UNSIGNED_PAYLOAD])
    to_sign = "\n".join([ALGORITHM, date_time, scope(date_time[:8], region),
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    return hmac.new(signing_key(secret, date_time[:8], region), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _path_style(host: str) -> bool:
    """oss2's rule: an IP address or ``localhost`` cannot carry the bucket in its name."""
    return host == "localhost" or ip_or_none(host) is not None


def _now() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


class OssV4:
    """Signed requests to one bucket through an ``http_client.HttpSession`` (one connection per thread)."""

    def __init__(self, endpoint: str, bucket: str, region: str, access_key_id, access_key_secret,
                 session_token, session):
        """``access_key_id``, ``access_key_secret``, ``session_token`` (or None): ``credentials.Secret``s."""
        parts = urlsplit(endpoint)
        self.bucket, self.region, self.session = bucket, region, session
        self._ak, self._sk, self._token = access_key_id, access_key_secret, session_token
        if _path_style(parts.hostname or ""):
            self._base = f"{parts.scheme}://{parts.netloc}/{bucket}/"
        else:
            self._base = f"{parts.scheme}://{bucket}.{parts.netloc}/"

    def url(self, key: str, query: dict) -> str:
        wire = "&".join(f"{encode(k)}={encode(v)}" if v else encode(k) for k, v in query.items())
        return self._base + encode(key, keep_slash=True) + (f"?{wire}" if wire else "")

    def request(self, method: str, key: str, query: dict | None = None, headers: dict | None = None, body=None):
        """Send one signed request; returns the ``http_client.Response`` whatever its status."""
        query = dict(query or {})
        headers = dict(headers or {})
        date_time = _now()
        headers["x-oss-date"] = date_time
        headers["x-oss-content-sha256"] = UNSIGNED_PAYLOAD
        if self._token is not None:
            headers["x-oss-security-token"] = self._token.reveal()
        signed = signature(self._sk.reveal(), self.region, method, self.bucket, key, query, headers, date_time)
        headers["Authorization"] = (f"{ALGORITHM} Credential={self._ak.reveal()}/{scope(date_time[:8], self.region)},"
                                    f" Signature={signed}")
        return self.session.request(method, self.url(key, query), headers, body)

    def presign(self, key: str, expires: int, method: str = "GET") -> str:
        """A URL that lets anyone ``method`` the object for ``expires`` seconds (query-string signature V4)."""
        date_time = _now()
        query = {}
        if self._token is not None:
            query["x-oss-security-token"] = self._token.reveal()
        query.update({"x-oss-date": date_time, "x-oss-expires": str(expires), "x-oss-signature-version": ALGORITHM,
                      "x-oss-credential": f"{self._ak.reveal()}/{scope(date_time[:8], self.region)}"})
        query["x-oss-signature"] = signature(self._sk.reveal(), self.region, method, self.bucket, key, query, {},
                                             date_time)
        return self.url(key, query)


def xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
