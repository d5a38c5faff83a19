"""One report of everything that decides whether QianWen authentication works."""

from __future__ import annotations

import importlib.util
import platform
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import __version__, errors, network
from .credentials import (
    CLONED_KEY,
    STANDARD,
    TOKEN_PLAN,
    ApiKey,
    bailian_profile,
    find_api_key,
    is_sdk_key_source,
    key_advice,
    key_candidates,
    key_exit_code,
    key_file_is_tracked,
)
from .endpoints import (
    MAAS_REGIONS,
    REGION_ROOTS,
    Endpoint,
    app_settings,
    app_settings_lines,
    is_documented_host,
    resolve_endpoint,
    sdk_endpoint,
)
from .errors import QwenOpsError
from .evidence import evidence_dir
from .limits import REQUEST_TIMEOUT, TLS_CHECK_TIMEOUT
from .oss_settings import SDK_CREDENTIAL_NAMES, load_config
from .probe import probe_regions, run_probe
from .project_findings import project_findings
from .provenance import BUCKET_NAMES
from .redaction import safe_line
from .settings import Settings
from .skill_paths import skill_path
from .update_prompt import status as update_status
from .upload_cache import cache_path
from .urls import is_loopback_host, valid_host


@dataclass
class Report:
    checks: list = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    exit_code: int = errors.OK

    def add(self, name: str, state: str, detail: str) -> None:
        self.checks.append({"name": name, "status": state, "detail": detail})

    def fail(self, exit_code: int) -> None:
        if self.exit_code == errors.OK:
            self.exit_code = exit_code

    def failed(self, name: str, exc: QwenOpsError) -> None:
        self.add(name, "fail", exc.message)
        self.fail(exc.exit_code)

    def as_dict(self) -> dict:
        data = {"ok": self.exit_code == errors.OK, "exit_code": self.exit_code, **self.facts, "checks": self.checks}
        if self.exit_code != errors.OK:  # the one JSON error shape of every script (errors.error_object)
            failed = next((c for c in self.checks if c["status"] == "fail"), None)
            why = f"{failed['name']}: {failed['detail']}" if failed else errors.EXIT_CODES.get(self.exit_code, "")
            data.update(errors.error_object(self.exit_code, why))
        return data


def _check_key_and_endpoint(settings: Settings, report: Report, offline: bool, timeout: float) -> None:
    key = find_api_key(settings)
    report.facts.update(key_status=key.status, key_source=key.source)
    if key.status == STANDARD and key_file_is_tracked(settings, key.source):
        report.add("api key", "warn", f"standard key (sk-) from {key.source}, which git tracks: {CLONED_KEY}")
    elif key.status == STANDARD:
        report.add("api key", "ok", f"standard key (sk-) from {key.source}")
    else:
        report.add("api key", "fail", key_advice(key))
        report.fail(key_exit_code(key))
    _check_key_sources(settings, report)
    _check_region_override(settings, report)
    try:
        endpoint = resolve_endpoint(settings)
    except QwenOpsError as exc:
        report.failed("endpoint", exc)
        return
    report.facts.update(endpoint_host=endpoint.host)
    report.add("endpoint", "ok", f"{endpoint.root} ({endpoint.source})")
    _check_documented_host(endpoint, report)
    _check_app_hosts(settings, report, endpoint)
    _check_network(settings, report, endpoint)
    if key.status == TOKEN_PLAN and not (endpoint.is_token_plan or endpoint.is_coding_plan):
        guide = skill_path("references", "tokenplan.md", cwd=settings.cwd)
        report.add("key fits endpoint", "fail", "a Token Plan key (sk-sp-) on a standard host is rejected with 401; "
                   f"these scripts need a standard key (see {guide})")
    elif key.status == STANDARD and (endpoint.is_token_plan or endpoint.is_coding_plan):
        report.add("key fits endpoint", "fail", "a standard key on the Token Plan host is rejected; "
                   "unset QWEN_BASE_URL or use the standard host")
        report.fail(errors.CONFIG)
    elif key.status in (STANDARD, TOKEN_PLAN):
        report.add("key fits endpoint", "ok", "key type matches the host")
    if offline:
        report.add("probe", "skip", "--offline: no request sent (authentication not verified)")
    elif key.status == STANDARD:
        result = run_probe(settings, timeout=timeout, key=key, endpoint=endpoint)
        report.facts.update(probe_status=result.status)
        if result.exit_code == errors.OK:
            report.add("probe", "ok", f"HTTP {result.status} in {result.latency_ms} ms")
            _report_app_endpoint(report, endpoint, "info", "your application calls the same host with")
        else:
            shown = f"HTTP {result.status}" if result.status is not None else "no answer"
            code = f" {result.error_code}" if result.error_code else ""
            report.add("probe", "fail", f"{shown}{code}: {result.error_message}")
            report.fail(result.exit_code)
            if result.status == 401 and region_of(endpoint):
                _check_other_regions(settings, report, key, endpoint, timeout)
        _check_interception(settings, report, endpoint, timeout, result.status)
    else:
        report.add("probe", "skip", "no usable key, no request sent")
    if key.status == STANDARD and report.exit_code == errors.OK:
        _check_users_code(report, key)


def _check_key_sources(settings: Settings, report: Report) -> None:
    """Say when the key in effect hides a different one (salted fingerprints, never values)."""
    candidates = key_candidates(settings, secrets.token_hex(8))
    if not candidates:
        return
    effective, told = candidates[0], set()
    effective_tracked = not effective.source.startswith("env:") and key_file_is_tracked(settings, effective.source)
    for other in candidates[1:]:
        if other.fingerprint == effective.fingerprint or other.source in told:
            continue
        told.add(other.source)
        if effective_tracked:   # never advise making the user's own key the same as a clone's
            report.add("key sources", "warn",
                       f"the key in effect comes from {effective.source}, which git tracks (in a cloned repository, "
                       f"someone else's key), and hides a different key in {other.source}: to use yours, set "
                       "DASHSCOPE_API_KEY in the environment")
        elif is_sdk_key_source(other.source):
            report.add("key sources", "warn",
                       f"{effective.source} overrides a different key in {other.source}, which the dashscope SDK "
                       "uses when DASHSCOPE_API_KEY is not set: make them the same key, or delete the stale one")
        elif "config.json" in other.source:
            report.add("key sources", "warn",
                       f"the Model Studio CLI's {other.source} holds a different key; the CLI (bl) prefers that "
                       f"file over DASHSCOPE_API_KEY while these scripts use {effective.source}: make them the "
                       "same key (or re-run `bl auth login`) to avoid two answers")
        elif effective.source.startswith("env:") and not other.source.startswith("env:"):
            name = effective.source[4:]
            if key_file_is_tracked(settings, other.source):
                report.add("key sources", "info",
                           f"the environment variable {name} overrides a different key in {other.source}, which git "
                           "tracks (in a cloned repository, someone else's key): keep yours in the environment")
                continue
            report.add("key sources", "warn",
                       f"the environment variable {name} overrides a different key in {other.source}; if the "
                       f"file's key is the right one, unset {name} (and remove it where your shell sets it)")
        elif effective.source.startswith("env:"):
            report.add("key sources", "warn",
                       f"{effective.source[4:]} overrides a different key in {other.source[4:]} (the alias wins); "
                       "unset the one you do not want")
        else:
            report.add("key sources", "warn",
                       f"{effective.source} overrides a different key in {other.source} (the nearer .env wins); "
                       "remove the stale line")


def _check_region_override(settings: Settings, report: Report) -> None:
    """QWEN_REGION does nothing while QWEN_BASE_URL is set: say so, or "set QWEN_REGION" advice seems broken."""
    base, region = settings.get("QWEN_BASE_URL"), settings.get("QWEN_REGION")
    if base is not None and region is not None:
        report.add("region setting", "warn",
                   f"QWEN_BASE_URL overrides QWEN_REGION={safe_line(region.value, 40)} ({region.source}): the region "
                   f"is ignored; unset QWEN_BASE_URL ({base.source}) to use it")


def _check_network(settings: Settings, report: Report, endpoint: Endpoint) -> None:
    """The proxy and CA certificates the requests will use (process environment, or the Windows/macOS proxy
    settings; no password)."""
    try:
        proxy = network.proxy_for_url(endpoint.root, settings.env)
    except QwenOpsError as exc:
        report.failed("network", exc)
        return
    route = f"through {proxy.label}" if proxy else f"direct ({network.direct_reason()})"
    report.add("network", "ok", f"{route}; CA certificates from {network.trust_setting(settings.env).source}")


def _check_documented_host(endpoint: Endpoint, report: Report) -> None:
    if is_documented_host(endpoint.host):
        return
    if is_loopback_host(endpoint.host):
        report.add("endpoint host", "warn", "QWEN_BASE_URL points to this machine (loopback, e.g. the sandbox): "
                   "a 200 there proves nothing about DashScope; unset QWEN_BASE_URL to check the real service")
    else:
        report.add("endpoint host", "warn", f"{endpoint.host} is not a documented DashScope host: a 200 there "
                   "proves only that this host accepts the key; unset QWEN_BASE_URL to check DashScope itself")


def region_of(endpoint: Endpoint) -> str:
    """The region whose documented host ``endpoint`` is (named by region, or by URL such as
    ``QWEN_BASE_URL=https://dashscope.aliyuncs.com``), else ""."""
    if endpoint.region in REGION_ROOTS or endpoint.region in MAAS_REGIONS:
        return endpoint.region
    named = [region for region, root in REGION_ROOTS.items() if root == endpoint.root]
    if named:
        return named[0]
    labels = endpoint.host.split(".")
    if endpoint.workspace and len(labels) == 5 and labels[1] in MAAS_REGIONS:
        return labels[1]
    return ""


def _check_other_regions(settings: Settings, report: Report, key: ApiKey, endpoint: Endpoint,
                         timeout: float) -> None:
    """After a 401 on a documented region host: does another region accept this key?"""
    results = probe_regions(settings, timeout=timeout, key=key)
    report.facts["regions"] = {region: result.status for region, result in results}
    works = [region for region, result in results if result.exit_code == errors.OK]
    rejected_on = region_of(endpoint)
    if works and rejected_on not in works:
        base = settings.get("QWEN_BASE_URL")
        unset = f" and unset QWEN_BASE_URL ({base.source}), which wins over it" if base is not None else ""
        report.add("region", "fail", f"your key works on {works[0]}: set QWEN_REGION={works[0]}{unset} "
                   f"(it was rejected on {rejected_on}; keys belong to one region)")
        accepted = next(result.endpoint for region, result in results if region == works[0])
        _report_app_endpoint(report, accepted, "fail", f"your application must call {works[0]} too:")
    elif not works:
        shown = ", ".join(f"{r} {x.status if x.status is not None else '000'}" for r, x in results)
        report.add("region", "fail", f"no region accepted the key ({shown}); it may be revoked or mistyped: "
                   "create a new key in the console")


def _report_app_endpoint(report: Report, endpoint: Endpoint, state: str, lead: str) -> None:
    """What the user's own code must use to call ``endpoint`` (both base URLs, the SDK's variable)."""
    report.facts["app"] = app_settings(endpoint)
    report.add("app endpoint", state, f"{lead} " + "; ".join(app_settings_lines(endpoint)[1:]))


def _check_app_hosts(settings: Settings, report: Report, endpoint: Endpoint) -> None:
    """Would the user's SDK code (or the Model Studio CLI) call another host than these scripts?"""
    if is_loopback_host(endpoint.host):
        return  # the sandbox: the "proves nothing" warning already says the real host is elsewhere
    try:
        sdk = sdk_endpoint(settings)
    except QwenOpsError as exc:
        report.add("app host", "warn", f"the dashscope SDK's own settings are not usable: {exc.message}")
        sdk = None
    if sdk is not None and sdk.root != endpoint.root:
        report.add("app host", "warn", f"these scripts call {endpoint.host} ({endpoint.source}) but the dashscope SDK "
                   f"in your code calls {sdk.host} ({sdk.source}); to make your code call the same host set "
                   f"DASHSCOPE_HTTP_BASE_URL={endpoint.native_base} (or dashscope.base_http_api_url), and "
                   f"base_url={endpoint.compatible_base} for OpenAI-compatible clients")
    # read by the SDK, not by these scripts: its OpenAI-compatible base, and the v2 client's base URL
    for name, calls in (("DASHSCOPE_COMPATIBLE_BASE_URL", "the SDK's OpenAI-compatible calls"),
                        ("DASHSCOPE_BASE_URL", "the SDK's v2 client (dashscope.v2)")):
        found = settings.get(name)
        if found is None:
            continue
        try:
            host = urlsplit(found.value.strip()).hostname or ""
        except ValueError:
            host = ""
        if host != endpoint.host:
            report.add("app host", "warn", f"{name} ({found.source}) sends {calls} to "
                       f"{safe_line(host, 100) or 'an invalid URL'}, not {endpoint.host}")
    profile = bailian_profile(settings)
    base = profile[0].get("base_url") if profile is not None else None
    if isinstance(base, str):
        try:
            host = urlsplit(base.strip()).hostname or ""
        except ValueError:
            host = ""
        if valid_host(host) and host != endpoint.host:
            report.add("app host", "info", f"the Model Studio CLI's {profile[1]} has base_url host "
                       f"{safe_line(host, 100)}; these scripts call {endpoint.host} (the CLI's base_url is "
                       "reported, not used: set QWEN_BASE_URL or QWEN_REGION to follow it)")


def _check_users_code(report: Report, key: ApiKey) -> None:
    """The key works for these scripts; will the user's own program find it too?"""
    if key.source == "env:DASHSCOPE_API_KEY":
        return
    if key.source == "env:QIANWEN_API_KEY":
        detail = ("the key is in QIANWEN_API_KEY, which the DashScope SDK and OpenAI clients do not read: also "
                  "export DASHSCOPE_API_KEY, or pass the key from `from qianwen_ops import api_settings`")
    elif "config.json" in key.source:
        detail = (f"the key is only in {key.source}: your own code will not see it; export DASHSCOPE_API_KEY "
                  "or put it in your project's .env")
    elif is_sdk_key_source(key.source):
        detail = (f"the key is only in {key.source}: the dashscope SDK finds it there, OpenAI-compatible clients "
                  "do not: pass the key from `from qianwen_ops import api_settings`, or export DASHSCOPE_API_KEY")
    else:
        detail = (f"the key is only in {key.source}: your own code sees it only if it loads that file "
                  "(`from qianwen_ops import api_settings`, or python-dotenv's load_dotenv() for a .env git "
                  "ignores) or you export DASHSCOPE_API_KEY")
    report.add("your code", "info", detail)


def _check_custom_oss(settings: Settings, report: Report, check_oss: bool, timeout: float) -> None:
    sources = {}
    for name in BUCKET_NAMES + SDK_CREDENTIAL_NAMES:
        found = settings.get(name)
        sources[name] = f"set ({found.source})" if found else "not set"
    report.facts["custom_oss_variables"] = sources
    try:
        config = load_config(settings)
    except QwenOpsError as exc:
        report.failed("custom OSS", exc)
        return
    if config is None:
        report.add("custom OSS", "ok", "off: uploads use DashScope temporary storage (48 h oss:// URLs)")
        if check_oss:
            report.add("oss round trip", "fail", "--check-oss needs QWEN_TMP_OSS_BUCKET (custom OSS mode is off)")
            report.fail(errors.CONFIG)
        return
    report.add("custom OSS", "ok", f"on: bucket {config.bucket}, region {config.region}, prefix {config.prefix}/, "
               f"URLs valid {config.url_expires} s, credentials from {config.credential_source}")
    if check_oss:
        from .oss_check import round_trip  # oss2 and the HTTP stack: only for --check-oss

        for step, ok, detail, exit_code in round_trip(config, cache_path(settings.env).parent, timeout=timeout,
                                                        env=settings.env):
            report.add(f"oss {step}", "ok" if ok else "fail", detail)
            if not ok:
                report.fail(exit_code)


def diagnose(settings: Settings, offline: bool = False, check_oss: bool = False,
             timeout: float = REQUEST_TIMEOUT) -> Report:
    report = Report()
    report.facts.update(version=__version__, python=platform.python_version())
    _check_key_and_endpoint(settings, report, offline, timeout)
    _check_custom_oss(settings, report, check_oss, timeout)
    for finding in project_findings(settings):  # the project, its .env files: git-ignored? private?
        report.add(*finding)
    for package in ("dotenv",):   # custom OSS mode needs no package (oss_v4)
        installed = importlib.util.find_spec(package) is not None
        label = "python-dotenv" if package == "dotenv" else package
        need = {"dotenv": "optional; a stdlib .env parser is built in"}[package]
        state = "installed" if installed else "not installed"
        report.add(f"package {label}", "ok" if installed else "info", f"{state} ({need})")
    update = update_status(settings.env)
    report.facts["update_check"] = {k: update[k] for k in ("update_check_installed", "suppressed", "reason")}
    detail = "sibling skill installed" if update["update_check_installed"] else "sibling skill not installed"
    if update["suppressed"]:
        detail += f"; prompts suppressed ({update['reason']})"
    report.add("update check", "ok", detail)
    report.facts["evidence_dir"] = str(evidence_dir(Path(settings.cwd)))
    _add_verdict(report, offline)
    return report


def _check_interception(settings: Settings, report: Report, endpoint: Endpoint, timeout: float,
                        status: int | None) -> None:
    """After an answer over TLS: does the certificate chain to a public root, or can a proxy read the key?"""
    if status is None or not endpoint.root.startswith("https://"):
        return
    from .interception import inspect  # the TLS stack: only after an answer over TLS

    found = inspect(endpoint.root, settings.env, min(timeout, TLS_CHECK_TIMEOUT))
    report.facts["tls_intercepted"] = found.intercepted
    host, store = endpoint.host, _trust_source(settings)
    if found.intercepted is None:
        report.add("tls", "info", f"cannot tell whether TLS to {host} is intercepted: {found.why}")
    elif not found.intercepted:
        report.add("tls", "ok", f"the certificate of {host} chains to a public root ({found.compared_with}): "
                   "TLS is not intercepted")
    elif is_loopback_host(host):
        report.add("tls", "info", f"{host} is this machine and its certificate comes from a private CA "
                   f"({found.issuer}, trusted through {store}), as a local test server's does (the sandbox); "
                   "DashScope's own hosts use public CAs")
    elif is_documented_host(host):
        report.add("tls", "warn", f"TLS to {host} is intercepted: the certificate it presented was issued by "
                   f"{found.issuer}, which is not a public CA and is trusted only through {store}; whoever runs "
                   "that CA (usually a company proxy that inspects HTTPS) can read the API key in every request: "
                   "make sure it is your organisation's proxy")
    else:
        report.add("tls", "warn", f"the certificate of {host} was issued by {found.issuer}, which is not a "
                   f"public CA (trusted only through {store}): a private gateway, or TLS is intercepted by a "
                   "proxy that can read the API key")


def _trust_source(settings: Settings) -> str:
    try:
        return network.ssl_context(settings.env)[1]
    except QwenOpsError:
        return "the configured CA certificates"


def verdict(report: Report, offline: bool) -> tuple:
    """(verified, result line): what the exit code rests on, in words; never more than was checked."""
    facts = report.facts
    if report.exit_code != errors.OK:
        return "none", f"not ready (exit {report.exit_code})"
    if offline:
        return "settings", "settings look right; authentication not verified (--offline)"
    host = facts.get("endpoint_host") or "the endpoint"
    if is_loopback_host(host):
        text = f"authentication works on {host} (this machine, e.g. the sandbox); DashScope itself was not checked"
    elif is_documented_host(host):
        text = f"authentication works: {host} accepted the key"
    else:
        text = f"authentication works on {host}, which is not a documented DashScope host"
    if facts.get("tls_intercepted") and not is_loopback_host(host):
        text += "; TLS is intercepted on the way (whoever inspects it can read the key)"
    return "authentication", text


def _add_verdict(report: Report, offline: bool) -> None:
    verified, text = verdict(report, offline)
    report.facts.update(verified=verified, result=text)
