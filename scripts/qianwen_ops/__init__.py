"""qianwen-ops-auth's library: the API key, the endpoint, a probe, and local files turned into model URLs.

Public surface (each name loads its module on first use, so importing the package costs nothing)::

    from qianwen_ops import api_settings, ApiSettings   # base_url, native_base_url, headers, key_status,
                                                        # key_source for your own client (client_settings)
    from qianwen_ops import resolve_file, upload_file, upload_many, Upload, Outcome   # files -> URLs (uploads)
    from qianwen_ops import request_headers_for, RESOLVE_HEADER    # the header oss:// URLs need in a model call
    from qianwen_ops import find_api_key, resolve_endpoint, Settings   # the key chain and the host, as the
                                                                       # scripts see them
    from qianwen_ops import QwenOpsError   # every failure: a one-line, secret-free message and an exit code
    qianwen_ops.__version__                # the bundle's one version (pyproject.toml, version.json follow it)

Every public function is an error boundary (``errors.public``): what leaves it is a fresh ``QwenOpsError``
with no traceback frames below it and no exception chain. The scripts also use ``probe.run_probe`` and
``probe.probe_regions`` (boundaries too). Install with ``pip install <the skill folder or repository>``
(no dependency, custom OSS mode included).

The modules, in layers; each imports only from its own layer and the layers above it:

1. Foundations. ``errors`` (exit codes, ``QwenOpsError``), ``redaction`` (what may be shown),
   ``limits`` (timeouts), ``named_tuple`` (``typing.NamedTuple`` without ``typing``), ``fsutil``
   (reading and writing files safely), ``urls`` (parsing URLs and host names), ``network`` (proxies
   and TLS trust, from the process environment only), ``gitrun`` (asking git, safely),
   ``local_files`` (inputs: paths, ``file://`` URIs, checked files, their reading), ``skill_paths``
   (this skill's folder, hints), ``skill_state`` (update-prompt state, shared with the sibling
   skill), ``cli`` (the scripts' plumbing).
2. Where settings come from. ``project`` (which folder is the user's project), ``ownership`` (is a
   file the user's), ``dotenv_parser`` (reading ``.env``), ``provenance`` (trust by origin: what a
   ``.env``, a tracked one above all, may decide), ``settings`` (the environment, then the ``.env`` files).
3. What the settings mean. ``credentials`` (the key chain), ``endpoints`` (which host),
   ``oss_settings`` (custom-OSS mode), ``client_settings`` (for the user's own code).
4. Talking to services. ``http_client`` (with ``first_hop``), ``probe``, ``interception`` (is TLS
   re-signed?), ``temp_storage`` (DashScope temporary storage), ``custom_oss`` (the user's bucket, spoken
   by ``oss_v4``: OSS's signature V4).
5. Files to URLs. ``secret_files`` (never uploaded), ``inline`` (``data:`` URLs), ``upload_cache``
   (reuse), ``uploads`` (the batch).
6. Reports and edits. ``evidence`` (records under the project), ``project_findings`` and ``oss_check``
   (for ``doctor``), ``doctor``, ``dotenv_editor`` (``setup_env.py``), ``update_prompt``
   (``gossamer.py``), ``_build_backend`` (the wheel).
"""

from __future__ import annotations

__version__ = "1.0.0"  # the bundle's one version: pyproject.toml and the update check's version.json follow it

_PUBLIC = {
    "resolve_file": "uploads", "upload_file": "uploads", "upload_many": "uploads", "Upload": "uploads",
    "Outcome": "uploads", "request_headers_for": "uploads", "RESOLVE_HEADER": "uploads",
    "QwenOpsError": "errors", "Settings": "settings", "find_api_key": "credentials",
    "resolve_endpoint": "endpoints", "api_settings": "client_settings", "ApiSettings": "client_settings",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib  # the public names load their modules on first use (the probe imports none)

        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'qianwen_ops' has no attribute {name!r}")
