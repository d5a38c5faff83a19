"""RAM policy enforcement for the sandbox's main AccessKey (``sandbox.py --ram-policy FILE``).

A RAM policy document is ``{"Version": "1", "Statement": [{"Effect", "Action", "Resource"}]}``;
``Action`` and ``Resource`` are a string or a list of strings, with the wildcards ``*`` (any run of
characters) and ``?`` (one character). An explicit Deny beats any Allow; a request that no
statement allows is denied. Actions compare case-insensitively, resources exactly.
``Condition``, ``NotAction``, ``NotResource`` and ``Principal`` are refused when the file is
loaded rather than silently ignored.

Which RAM action each OSS operation needs, from the OSS documentation's table
"OSS authorization syntax and elements" (Action section, bucket and object level),
https://www.alibabacloud.com/help/en/oss/user-guide/authorization-syntax-and-elements :
PutObject, PostObject, InitiateMultipartUpload, UploadPart and CompleteMultipartUpload need
``oss:PutObject``; ListParts ``oss:ListParts``; AbortMultipartUpload ``oss:AbortMultipartUpload``;
GetObject and HeadObject ``oss:GetObject``; DeleteObject ``oss:DeleteObject``;
ListMultipartUploads ``oss:ListMultipartUploads``; GetBucket (ListObjects) ``oss:ListObjects``.
A presigned URL carries the signer's permissions, so a presigned GET needs ``oss:GetObject``.
Object resources are ``acs:oss:{region}:{account}:{bucket}/{key}``, bucket resources
``acs:oss:{region}:{account}:{bucket}``; policies usually write ``acs:oss:*:*:bucket/prefix/*``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SANDBOX_ACCOUNT = "1000000000000000"   # the sandbox's pretend Alibaba Cloud account id
_KNOWN_KEYS = frozenset({"Effect", "Action", "Resource", "Sid"})
MAX_POLICY_BYTES = 64 * 1024            # RAM's own limit is 6,144 characters; stay generous


class PolicyError(ValueError):
    """The policy file is not a RAM policy document this sandbox can enforce."""


@dataclass(frozen=True)
class Statement:
    allow: bool
    actions: tuple      # compiled patterns, case-insensitive
    resources: tuple    # compiled patterns, case-sensitive


@dataclass(frozen=True)
class Policy:
    statements: tuple

    def allows(self, action: str, resource: str) -> bool:
        """Deny over Allow, default deny."""
        allowed = False
        for st in self.statements:
            if any(p.fullmatch(action) for p in st.actions) and any(p.fullmatch(resource) for p in st.resources):
                if not st.allow:
                    return False
                allowed = True
        return allowed


def _pattern(text: str, ignore_case: bool) -> re.Pattern:
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _strings(statement: dict, name: str, index: int) -> list:
    value = statement.get(name)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise PolicyError(f"Statement {index}: {name} must be a non-empty string or list of strings")
    return items


def parse_policy(data) -> Policy:
    if not isinstance(data, dict) or str(data.get("Version")) != "1":
        raise PolicyError('a RAM policy is a JSON object with "Version": "1"')
    raw = data.get("Statement")
    raw = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw, list) or not raw:
        raise PolicyError("Statement must be a non-empty list")
    statements = []
    for index, st in enumerate(raw):
        if not isinstance(st, dict):
            raise PolicyError(f"Statement {index} is not an object")
        unknown = sorted(set(st) - _KNOWN_KEYS)
        if unknown:
            raise PolicyError(f"Statement {index}: {', '.join(unknown)} is not supported by the sandbox")
        if st.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"Statement {index}: Effect must be Allow or Deny")
        statements.append(Statement(
            st["Effect"] == "Allow",
            tuple(_pattern(a, True) for a in _strings(st, "Action", index)),
            tuple(_pattern(r, False) for r in _strings(st, "Resource", index))))
    return Policy(tuple(statements))


def load_policy(path: Path) -> Policy:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path} is larger than {MAX_POLICY_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PolicyError(f"{path} is not valid UTF-8 JSON") from None
    return parse_policy(data)


def required_action(method: str, query: dict, key: str) -> str:
    """The RAM action the OSS documentation lists for this bucket-API request."""
    if not key:
        if method == "GET" and "uploads" in query:
            return "oss:ListMultipartUploads"
        return "oss:ListObjects" if method == "GET" else "oss:" + method.title() + "Bucket"
    if method == "GET" and "uploadId" in query:
        return "oss:ListParts"
    if method == "DELETE" and "uploadId" in query:
        return "oss:AbortMultipartUpload"
    if method in ("GET", "HEAD"):
        return "oss:GetObject"
    if method == "DELETE":
        return "oss:DeleteObject"
    return "oss:PutObject"   # PUT object or part, POST ?uploads, POST ?uploadId, PostObject


def resource_for(region: str, bucket: str, key: str) -> str:
    base = f"acs:oss:{region}:{SANDBOX_ACCOUNT}:{bucket}"
    return f"{base}/{key}" if key else base
