"""Which host the key goes to: the one place that decides.

Order, first set wins (each from the environment, then the ``.env`` files):

1. ``QWEN_BASE_URL``: a host root, or one ending in ``/compatible-mode/v1`` or ``/api/v1``; both
   API bases are derived from its scheme, host and port. Plain ``http://`` only for loopback.
2. ``QWEN_REGION``: ``cn`` (``dashscope.aliyuncs.com``), ``intl``, ``us``, or a region id of the
   official SDK: ``cn-beijing`` (= ``cn``) or a MaaS region (``MAAS_REGIONS``), which needs
   ``DASHSCOPE_WORKSPACE_ID`` and gives ``https://{workspace}.{region}.maas.aliyuncs.com``.
3. The official ``dashscope`` SDK's own settings (``sdk_endpoint``), so the scripts test the host
   the user's SDK code calls: ``DASHSCOPE_HTTP_BASE_URL``, else ``DASHSCOPE_API_REGION`` with
   ``DASHSCOPE_WORKSPACE_ID`` (a MaaS region; ``cn-beijing`` and any other region stay on
   ``dashscope.aliyuncs.com``, as in the SDK).
4. The default, ``cn``.

``app_settings`` says what the user's own code must set to call the same host.

Values read from a ``.env`` file are judged by where they came from (``provenance``): such a file
may name only documented hosts (``is_documented_host``: DashScope's, the Token Plan and Coding Plan
hosts, the ``*.maas.aliyuncs.com`` family), and a ``.env`` that git tracks (a cloned repository's)
may not redirect anything at all. URLs are parsed by ``urls.parse_url``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .errors import CONFIG, QwenOpsError, public
from .named_tuple import NamedTuple
from .provenance import check_file_sourced_host, check_not_tracked
from .settings import Settings
from .urls import parse_url, valid_host

REGION_ROOTS = {
    "cn": "https://dashscope.aliyuncs.com",
    "intl": "https://dashscope-intl.aliyuncs.com",
    "us": "https://dashscope-us.aliyuncs.com",
}
# Plans for interactive tools (sk-sp- keys), references/tokenplan.md: Token Plan on the China site
# (cn-beijing) and the international site (ap-southeast-1, Singapore); Coding Plan's two hosts (path /v1).
TOKEN_PLAN_ROOTS = {
    "cn-beijing": "https://token-plan.cn-beijing.maas.aliyuncs.com",
    "ap-southeast-1": "https://token-plan.ap-southeast-1.maas.aliyuncs.com",
}
CODING_PLAN_ROOTS = ("https://coding.dashscope.aliyuncs.com", "https://coding-intl.dashscope.aliyuncs.com")
# The official SDK (dashscope 2.0.2, dashscope/common/env.py): DASHSCOPE_API_REGION in MAAS_REGIONS
# selects https://{DASHSCOPE_WORKSPACE_ID}.{region}.maas.aliyuncs.com; cn-beijing (its default) and any
# other region stay on dashscope.aliyuncs.com. Workspace ids and regions are checked as DNS labels
# with the SDK's own patterns.
SDK_DEFAULT_REGION = "cn-beijing"
MAAS_REGIONS = ("ap-southeast-1", "us-east-1", "cn-hongkong", "eu-central-1", "ap-northeast-1")
MAAS_SUFFIX = ".maas.aliyuncs.com"
_WORKSPACE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_REGION_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
COMPATIBLE_PATH = "/compatible-mode/v1"
NATIVE_PATH = "/api/v1"
_ALLOWED_PATHS = ("", "/", COMPATIBLE_PATH, NATIVE_PATH)


class Endpoint(NamedTuple):
    root: str            # scheme://host[:port], no path
    region: str          # cn / intl / us / custom
    source: str          # "QWEN_BASE_URL (env:...)", "QWEN_REGION", "default"

    @property
    def host(self) -> str:
        return urlsplit(self.root).hostname or ""

    @property
    def compatible_base(self) -> str:
        return self.root + COMPATIBLE_PATH

    @property
    def native_base(self) -> str:
        return self.root + NATIVE_PATH

    @property
    def is_token_plan(self) -> bool:
        return self.host.startswith("token-plan.") and self.host.endswith(MAAS_SUFFIX)

    @property
    def is_coding_plan(self) -> bool:
        return self.root in CODING_PLAN_ROOTS

    @property
    def workspace(self) -> str:
        """The workspace id of a MaaS host (``{workspace}.{region}.maas.aliyuncs.com``), else ""."""
        if self.host.endswith(MAAS_SUFFIX) and not self.is_token_plan:
            return self.host.split(".", 1)[0]
        return ""


def parse_base_url(raw: str, what: str = "QWEN_BASE_URL") -> str:
    """Validate an API base URL and return its ``scheme://host[:port]`` root."""
    return parse_url(raw, what, _ALLOWED_PATHS)[0]


KNOWN_HOSTS = frozenset(root.split("://", 1)[1] for root in (*REGION_ROOTS.values(), *TOKEN_PLAN_ROOTS.values(),
                                                             *CODING_PLAN_ROOTS))
DOCUMENTED_SUFFIXES = (MAAS_SUFFIX,)  # the MaaS gateways: {workspace}.{region}.maas.aliyuncs.com


def is_documented_host(host: str) -> bool:
    """A DashScope host from the documentation or the official SDK (the key may go there)."""
    host = host.lower()
    return host in KNOWN_HOSTS or (host.endswith(DOCUMENTED_SUFFIXES) and valid_host(host))


@public
def resolve_endpoint(settings: Settings) -> Endpoint:
    found = settings.get("QWEN_BASE_URL")
    if found is not None:
        check_not_tracked("QWEN_BASE_URL", found.source)  # first: a tracked file's value is refused for that alone
        root = parse_base_url(found.value)
        check_file_sourced_host("QWEN_BASE_URL", root, found.source, is_documented_host)
        return Endpoint(root, "custom", f"QWEN_BASE_URL ({found.source})")
    region_found = settings.get("QWEN_REGION")
    if region_found is None:
        return sdk_endpoint(settings)
    region = region_found.value.strip().lower()
    source = f"QWEN_REGION ({region_found.source})"
    if region in REGION_ROOTS:
        return Endpoint(REGION_ROOTS[region], region, source)
    if region == SDK_DEFAULT_REGION:
        return Endpoint(REGION_ROOTS["cn"], "cn", source)
    if region in MAAS_REGIONS:
        workspace = workspace_id(settings)
        if workspace is None:
            raise QwenOpsError(f"QWEN_REGION={region} ({region_found.source}) is a MaaS region: its host is "
                               f"https://<workspace>.{region}.maas.aliyuncs.com, so set DASHSCOPE_WORKSPACE_ID to "
                               "your workspace id (or use QWEN_REGION=intl)", CONFIG)
        return Endpoint(maas_root(workspace.value, region), region, f"{source} + DASHSCOPE_WORKSPACE_ID "
                        f"({workspace.source})")
    raise QwenOpsError(f"QWEN_REGION must be one of {', '.join((*REGION_ROOTS, SDK_DEFAULT_REGION, *MAAS_REGIONS))} "
                       f"(from {region_found.source})", CONFIG)


def maas_root(workspace: str, region: str) -> str:
    return f"https://{workspace}.{region}{MAAS_SUFFIX}"


def workspace_id(settings: Settings):
    """``DASHSCOPE_WORKSPACE_ID`` (a ``settings.SourcedValue``) checked as the SDK checks it, or None when unset.

    It chooses a host, so a git-tracked .env may not set it.
    """
    found = settings.get("DASHSCOPE_WORKSPACE_ID")
    if found is None:
        return None
    check_not_tracked("DASHSCOPE_WORKSPACE_ID", found.source)
    value = found.value.strip()
    if not _WORKSPACE_ID.fullmatch(value):
        raise QwenOpsError(f"DASHSCOPE_WORKSPACE_ID ({found.source}) must be a workspace id: letters, digits, '-' "
                           "and '_', at most 64, starting with a letter or digit", CONFIG)
    return found._replace(value=value)


def sdk_endpoint(settings: Settings) -> Endpoint:
    """The host the official ``dashscope`` SDK calls with these settings (the environment, and the .env
    files as ``load_dotenv()`` would add them), under the trust rules of ``QWEN_BASE_URL``."""
    found = settings.get("DASHSCOPE_HTTP_BASE_URL")
    if found is not None:
        check_not_tracked("DASHSCOPE_HTTP_BASE_URL", found.source)
        root = parse_base_url(found.value, "DASHSCOPE_HTTP_BASE_URL")
        check_file_sourced_host("DASHSCOPE_HTTP_BASE_URL", root, found.source, is_documented_host)
        return Endpoint(root, "custom", f"DASHSCOPE_HTTP_BASE_URL ({found.source})")
    region_found = settings.get("DASHSCOPE_API_REGION")
    if region_found is None:
        return Endpoint(REGION_ROOTS["cn"], "cn", "default")
    region = region_found.value.strip()
    if not _REGION_LABEL.fullmatch(region):
        raise QwenOpsError(f"DASHSCOPE_API_REGION ({region_found.source}) must be a region id such as "
                           "ap-southeast-1 (one DNS label)", CONFIG)
    if region not in MAAS_REGIONS:  # the SDK's default host, as for cn-beijing
        return Endpoint(REGION_ROOTS["cn"], "cn", f"DASHSCOPE_API_REGION={region} ({region_found.source})")
    workspace = workspace_id(settings)
    if workspace is None:
        raise QwenOpsError(f"DASHSCOPE_API_REGION={region} ({region_found.source}) needs DASHSCOPE_WORKSPACE_ID: "
                           f"the SDK's host is https://<workspace>.{region}.maas.aliyuncs.com", CONFIG)
    return Endpoint(maas_root(workspace.value, region), region,
                    f"DASHSCOPE_API_REGION ({region_found.source}) + DASHSCOPE_WORKSPACE_ID ({workspace.source})")


def region_endpoints(settings: Settings) -> list:
    """Every documented region host a key can be tried on (``probe.py --all-regions``).

    cn, intl and us always; the MaaS regions too when a workspace id is known (DASHSCOPE_WORKSPACE_ID).
    """
    endpoints = [Endpoint(root, region, "--all-regions") for region, root in REGION_ROOTS.items()]
    try:
        workspace = workspace_id(settings)
    except QwenOpsError:
        workspace = None  # malformed or from a tracked .env: no MaaS host is tried
    if workspace is not None:
        endpoints += [Endpoint(maas_root(workspace.value, r), r, "--all-regions") for r in MAAS_REGIONS]
    return endpoints


def app_settings(endpoint: Endpoint) -> dict:
    """What the user's own code must use to call ``endpoint``: both base URLs and the SDK's variables.

    ``sdk`` maps variable names to values for the official ``dashscope`` SDK (``DASHSCOPE_HTTP_BASE_URL``,
    or ``dashscope.base_http_api_url`` in code; for a MaaS region also the region + workspace pair);
    ``scripts`` is the setting for these scripts.
    """
    sdk = {"DASHSCOPE_HTTP_BASE_URL": endpoint.native_base}
    if endpoint.region in MAAS_REGIONS and endpoint.workspace:
        sdk.update(DASHSCOPE_API_REGION=endpoint.region, DASHSCOPE_WORKSPACE_ID=endpoint.workspace)
    if endpoint.region in REGION_ROOTS or endpoint.region in MAAS_REGIONS:
        scripts = {"QWEN_REGION": endpoint.region}
    else:
        scripts = {"QWEN_BASE_URL": endpoint.root}
    return {"base_url": endpoint.compatible_base, "native_base_url": endpoint.native_base, "sdk": sdk,
            "scripts": scripts}


def app_settings_lines(endpoint: Endpoint) -> list:
    """``app_settings`` as short items for a person or an agent (``probe.py --all-regions``, doctor)."""
    found = app_settings(endpoint)
    lines = [" ".join(f"{k}={v}" for k, v in found["scripts"].items()) + " (these scripts)",
             f"base_url {found['base_url']} (OpenAI-compatible clients)",
             f"DASHSCOPE_HTTP_BASE_URL={found['native_base_url']} (dashscope SDK, or dashscope.base_http_api_url)"]
    if "DASHSCOPE_API_REGION" in found["sdk"]:
        lines.append(f"DASHSCOPE_API_REGION={found['sdk']['DASHSCOPE_API_REGION']} DASHSCOPE_WORKSPACE_ID="
                     f"{found['sdk']['DASHSCOPE_WORKSPACE_ID']} (dashscope SDK, the same host)")
    return lines
