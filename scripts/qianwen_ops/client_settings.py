"""What the user's own program needs to call DashScope the way these scripts do.

``from qianwen_ops import api_settings`` then ``s = api_settings()``:

* ``s.base_url``: the OpenAI-compatible base (``.../compatible-mode/v1``), e.g. for
  ``OpenAI(base_url=s.base_url, api_key=s.api_key)``;
* ``s.native_base_url``: the DashScope native base (``.../api/v1``);
* ``s.headers``: ``{"Authorization": "Bearer ..."}`` for any HTTP client;
* ``s.key_status`` / ``s.key_source``: what the key chain found (``standard``, ``not set``,
  ``placeholder``...) and where, without the value.

Same chain as the scripts (environment, ``.env`` in the current directory, ``.env`` at the
project root, the dashscope SDK's key file, the Model Studio CLI's config) and the same host
(``QWEN_BASE_URL``, ``QWEN_REGION``, then the SDK's own region/workspace/base-URL settings), and
nothing is written to ``os.environ``. Installed with ``pip install <skill folder>``, or imported
with the skill's ``scripts`` folder on ``sys.path``.
``repr`` never shows the key; ``headers`` and ``api_key`` raise ``QwenOpsError`` (with the
advice doctor would give) when the key is not usable, rather than sending a request that
can only fail with 401.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .credentials import STANDARD, ApiKey, find_api_key, key_advice, key_exit_code
from .endpoints import Endpoint, resolve_endpoint
from .errors import QwenOpsError, public, wrong_type
from .redaction import Concealed
from .settings import Settings


class ApiSettings:
    """Base URLs, headers and key status for the user's code; the key itself stays hidden."""

    __slots__ = ("_key", "_endpoint")

    def __init__(self, key: ApiKey, endpoint: Endpoint):
        self._key = key
        self._endpoint = endpoint

    @property
    def base_url(self) -> str:
        return self._endpoint.compatible_base

    @property
    def native_base_url(self) -> str:
        return self._endpoint.native_base

    @property
    def region(self) -> str:
        return self._endpoint.region

    @property
    def key_status(self) -> str:
        return self._key.status

    @property
    def key_source(self) -> str:
        return self._key.source

    @property
    @public
    def api_key(self) -> str:
        if self._key.status != STANDARD:
            raise QwenOpsError(key_advice(self._key), key_exit_code(self._key))
        return Concealed(self._key.secret.reveal())  # the value; its repr shows nothing

    @property
    @public
    def headers(self) -> dict:
        return {"Authorization": Concealed(f"Bearer {self.api_key}")}

    def __repr__(self) -> str:
        return (f"ApiSettings(base_url={self.base_url!r}, native_base_url={self.native_base_url!r}, "
                f"key_status={self.key_status!r}, key_source={self.key_source!r})")

    __str__ = __repr__

    def __reduce__(self):  # a pickle would carry the key
        raise TypeError("ApiSettings cannot be pickled")


@public
def api_settings(cwd: str | Path | None = None, env: Mapping[str, str] | None = None) -> ApiSettings:
    """Resolve key and endpoint as the scripts do (``cwd``/``env`` default to this process's).

    ``cwd``: a ``str`` or ``os.PathLike`` folder; ``env``: a mapping of names to values. Another type
    raises ``TypeError`` naming the parameter."""
    if cwd is not None and not isinstance(cwd, (str, os.PathLike)):
        raise wrong_type("cwd", "a folder (str or os.PathLike) or None", cwd)
    if env is not None and not isinstance(env, Mapping):
        raise wrong_type("env", "a mapping of names to values or None", env)
    settings = Settings.from_process(cwd=Path(cwd) if cwd is not None else None, env=env)
    return ApiSettings(find_api_key(settings), resolve_endpoint(settings))
