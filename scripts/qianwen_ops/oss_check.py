"""``doctor.py --check-oss``: one small object through the user's bucket, with the permissions uploads need.

Put, presign, GET through the presigned URL (by the bundle's own HTTP stack, as a model would
fetch it), delete: each step reports what failed and which RAM action is missing (``custom_oss``'s
advice). The test object is named ``<prefix>/doctor-check-<random>.txt`` and removed at the end.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from . import errors
from .custom_oss import GET, CustomOss
from .errors import QwenOpsError
from .http_client import HttpSession
from .oss_settings import CustomOssConfig


def round_trip(config: CustomOssConfig, checkpoint_dir: Path, timeout: float,
               env: Mapping[str, str] | None = None) -> list:
    """Put a tiny object, presign it, GET it back, delete it.

    One ``(step, ok, detail, exit_code)`` row per step; ``exit_code`` is ``errors.OK`` when it passed.
    """
    steps: list = []
    session = HttpSession(timeout=timeout, env=env)
    try:
        oss = CustomOss(config, checkpoint_dir, timeout=timeout, announce=False, env=env, session=session)
    except QwenOpsError as exc:
        session.close()
        return [("connect", False, exc.message, exc.exit_code)]
    key = f"{config.prefix}/doctor-check-{os.urandom(16).hex()}.txt"
    payload = f"qianwen-ops-auth doctor {os.urandom(16).hex()}".encode()
    step = "put"
    try:
        oss.put_bytes(key, payload, "OSS check")
        steps.append(("put", True, f"{len(payload)} bytes to {config.bucket}/{key}", errors.OK))
        step = "presign"
        url = oss.presigned_get(key, 60)
        steps.append(("presign", True, "V4 presigned GET URL, 60 s", errors.OK))
        step = "get"
        got = session.request("GET", url)
        if got.status in (401, 403):
            steps.append(("get", False, f"HTTP {got.status}: the presigned URL was refused; the RAM user needs "
                          f"{GET} on acs:oss:*:*:{config.bucket}/{config.prefix}/*", errors.AUTH_REJECTED))
        elif got.status != 200:
            steps.append(("get", False, f"HTTP {got.status}", errors.exit_code_for_status(got.status)))
        else:
            same = got.body == payload
            steps.append(("get", same, f"HTTP 200, {'same bytes' if same else 'different bytes'}",
                          errors.OK if same else errors.HTTP_ERROR))
        step = "delete"
        oss.delete(key, "OSS check")
        steps.append(("delete", True, "test object removed", errors.OK))
    except QwenOpsError as exc:
        steps.append((step, False, exc.message, exc.exit_code))
    finally:
        session.close()
    return steps
