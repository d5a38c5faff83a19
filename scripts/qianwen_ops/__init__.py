"""qianwen-ops-auth's library: credentials, endpoints, probe and file uploads.

Public surface (imported lazily, so the probe stays fast)::

    from qianwen_ops import resolve_file, upload_file, upload_many, request_headers_for, Upload
    from qianwen_ops import api_settings   # base_url, native_base_url, headers, key_status for your code

Install it into an application with ``pip install <the skill folder or repository>`` (no required
dependency; ``[oss]`` adds oss2 for uploads to your own bucket).
"""

from __future__ import annotations

__version__ = "1.0.0"  # the bundle's one version: pyproject.toml and the update check's version.json follow it

_PUBLIC = {
    "resolve_file": "uploads", "upload_file": "uploads", "upload_many": "uploads",
    "request_headers_for": "uploads", "Upload": "uploads", "RESOLVE_HEADER": "uploads",
    "QwenOpsError": "errors", "Settings": "settings", "find_api_key": "credentials",
    "resolve_endpoint": "endpoints", "api_settings": "client_settings", "ApiSettings": "client_settings",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib  # the public names load their modules on first use (the probe imports none)

        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'qianwen_ops' has no attribute {name!r}")
