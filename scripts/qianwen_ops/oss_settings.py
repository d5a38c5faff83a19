"""Custom-OSS mode's settings: the one place that reads and checks ``QWEN_TMP_OSS_*``.

``load_config`` turns the settings into a ``CustomOssConfig`` or a one-line configuration error
(exit 9), before any request and without oss2: the bucket name and region id (``valid_bucket``,
``valid_region``, also what ``setup_env.py --custom-oss`` accepts), the endpoint (by default
``https://oss-<region>.aliyuncs.com``; from a ``.env`` only an ``*.aliyuncs.com`` host), the prefix and
URL lifetime, and the AccessKey pair: ``QWEN_TMP_OSS_AK_ID``/``QWEN_TMP_OSS_AK_SECRET``, else the
names oss2's own ``EnvironmentVariableCredentialsProvider`` reads (``SDK_CREDENTIAL_NAMES``, with
``OSS_SESSION_TOKEN`` for STS). A placeholder or a value with spaces is refused. No
``QWEN_TMP_OSS_*`` value may come from a ``.env`` that git tracks (``provenance.BUCKET_NAMES``).
The uploads themselves are ``custom_oss``'s.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from . import errors
from .credentials import Secret, is_placeholder_secret, is_template_value
from .errors import QwenOpsError
from .named_tuple import NamedTuple
from .provenance import BUCKET_NAMES, check_file_sourced_host, check_not_tracked
from .settings import Settings, SourcedValue
from .skill_paths import skill_path
from .urls import parse_url

DEFAULT_PREFIX = "qianwen-uploads"
DEFAULT_EXPIRES = 86400
MAX_EXPIRES = 7 * 86400          # the longest a V4 presigned URL may live
OSS_HOST_SUFFIX = ".aliyuncs.com"
# The AccessKey names oss2 and the other OSS tools read (oss2.credentials.EnvironmentVariableCredentialsProvider).
SDK_CREDENTIAL_NAMES = ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN")
_REGION_ID = re.compile(r"^[a-z]{2,}(-[a-z0-9]+)+$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def valid_bucket(name: str) -> bool:
    """An OSS bucket name: 3-63 lowercase letters, digits and hyphens, a letter or digit at each end."""
    return bool(_BUCKET_NAME.match(name))


def valid_region(region: str) -> bool:
    """A region id such as ``cn-beijing`` (without the ``oss-`` prefix)."""
    return bool(_REGION_ID.match(region))


class CustomOssConfig(NamedTuple):
    bucket: str
    region: str
    endpoint: str            # scheme://host[:port]
    prefix: str
    url_expires: int
    credential_source: str   # which variables the pair came from (names only)
    access_key_id: Secret
    access_key_secret: Secret
    session_token: Secret | None
    bucket_source: str = ""  # "env" or the .env path QWEN_TMP_OSS_BUCKET came from

    @property
    def notice(self) -> str:
        """The one stderr line every custom-OSS upload prints: where the files go, and who said so."""
        return f"note: uploading to your bucket {self.bucket} (QWEN_TMP_OSS_BUCKET from {self.bucket_source})"


def _endpoint(raw: str, bucket: str, region: str) -> str:
    if not raw:
        return f"https://oss-{region}{OSS_HOST_SUFFIX}"
    root, _ = parse_url(raw, "QWEN_TMP_OSS_ENDPOINT", default_scheme="https")
    parts = urlsplit(root)
    host = parts.hostname or ""
    if host.startswith(bucket + "."):  # "my-bucket.oss-cn-beijing.aliyuncs.com" -> the region endpoint
        return root.replace(f"://{bucket}.", "://", 1)
    return root


def _check_credential(found: SourcedValue, name: str, token: bool = False) -> str:
    """A credential value that cannot be real is a configuration error, found before any request.

    A session token is base64, where any letters may occur: only unmistakable template marks count.
    """
    value, where = found.value, found.source
    if is_template_value(value) if token else is_placeholder_secret(value):
        raise QwenOpsError(f"{name} (from {where}) is still a placeholder; put the RAM user's AccessKey there "
                           f"(see {skill_path('references', 'custom-oss.md')})", errors.CONFIG)
    if value != value.strip() or any(ch.isspace() for ch in value):
        raise QwenOpsError(f"{name} (from {where}) contains whitespace; paste the value without spaces or "
                           "line breaks", errors.CONFIG)
    if not value.isascii() or not value.isprintable():
        raise QwenOpsError(f"{name} (from {where}) has non-ASCII or control characters", errors.CONFIG)
    return value


def _pair(settings: Settings, id_name: str, secret_name: str):
    ak, sk = settings.get(id_name), settings.get(secret_name)
    if bool(ak) != bool(sk):
        missing = secret_name if ak else id_name
        raise QwenOpsError(f"{id_name} and {secret_name} must be set together ({missing} is not set)",
                           errors.CONFIG)
    if not ak:
        return None
    return _check_credential(ak, id_name), _check_credential(sk, secret_name)


def load_config(settings: Settings) -> CustomOssConfig | None:
    """Custom-OSS settings, validated before any request; None when the mode is off."""
    bucket_found = settings.get("QWEN_TMP_OSS_BUCKET")
    if bucket_found is None:
        return None
    for name in BUCKET_NAMES:
        found = settings.get(name)
        if found is not None and not found.source.startswith("env:"):
            check_not_tracked(name, found.source)
    bucket = bucket_found.value.strip()
    if not valid_bucket(bucket):
        raise QwenOpsError("QWEN_TMP_OSS_BUCKET is not a valid bucket name (3-63 of a-z, 0-9, -)", errors.CONFIG)
    region = settings.value("QWEN_TMP_OSS_REGION").strip()
    if region.startswith("oss-"):
        region = region[4:]
    if not region:
        raise QwenOpsError("QWEN_TMP_OSS_REGION is required when QWEN_TMP_OSS_BUCKET is set (e.g. cn-beijing)",
                           errors.CONFIG)
    if not valid_region(region):
        raise QwenOpsError("QWEN_TMP_OSS_REGION is not a region id like cn-beijing", errors.CONFIG)
    raw_expires = settings.value("QWEN_TMP_OSS_URL_EXPIRES", str(DEFAULT_EXPIRES)).strip()
    if not raw_expires.isdigit() or not 60 <= int(raw_expires) <= MAX_EXPIRES:
        raise QwenOpsError(f"QWEN_TMP_OSS_URL_EXPIRES must be whole seconds from 60 to {MAX_EXPIRES}",
                           errors.CONFIG)
    prefix = settings.value("QWEN_TMP_OSS_PREFIX", DEFAULT_PREFIX).strip().strip("/")
    if not prefix or len(prefix.encode()) > 200 or any(ord(c) < 32 for c in prefix) or "\\" in prefix:
        raise QwenOpsError("QWEN_TMP_OSS_PREFIX must be 1-200 bytes of printable characters", errors.CONFIG)
    endpoint_found = settings.get("QWEN_TMP_OSS_ENDPOINT")
    endpoint = _endpoint(endpoint_found.value.strip() if endpoint_found else "", bucket, region)
    if endpoint_found is not None:
        check_file_sourced_host("QWEN_TMP_OSS_ENDPOINT", endpoint, endpoint_found.source,
                                lambda host: host.endswith(OSS_HOST_SUFFIX))
    token = None
    pair = _pair(settings, "QWEN_TMP_OSS_AK_ID", "QWEN_TMP_OSS_AK_SECRET")
    if pair:
        source = "QWEN_TMP_OSS_AK_ID/QWEN_TMP_OSS_AK_SECRET"
    else:
        pair = _pair(settings, "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET")
        if pair is None:
            raise QwenOpsError("custom OSS mode needs credentials: set QWEN_TMP_OSS_AK_ID and "
                               "QWEN_TMP_OSS_AK_SECRET, or OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET",
                               errors.CONFIG)
        source = "OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET"
        token_found = settings.get("OSS_SESSION_TOKEN")
        token = _check_credential(token_found, "OSS_SESSION_TOKEN", token=True) if token_found else None
    bucket_source = "env" if bucket_found.source.startswith("env:") else bucket_found.source
    return CustomOssConfig(bucket, region, endpoint, prefix, int(raw_expires), source,
                           Secret(pair[0]), Secret(pair[1]), Secret(token) if token else None, bucket_source)
