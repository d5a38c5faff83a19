"""One report of everything that decides whether QianWen authentication works."""

from __future__ import annotations

import importlib.util
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

from . import errors
from .credentials import STANDARD, TOKEN_PLAN, ApiKey, find_api_key, key_advice, key_candidates, key_exit_code
from .endpoints import KNOWN_HOSTS, REGION_ROOTS, Endpoint, is_loopback_host, resolve_endpoint
from .errors import QwenOpsError
from .evidence import evidence_dir
from .probe import probe_regions, run_probe
from .project import project_findings, skill_path
from .redaction import untrusted
from .settings import Settings

OSS_VARIABLES = ("QWEN_TMP_OSS_BUCKET", "QWEN_TMP_OSS_REGION", "QWEN_TMP_OSS_AK_ID", "QWEN_TMP_OSS_AK_SECRET",
                 "QWEN_TMP_OSS_PREFIX", "QWEN_TMP_OSS_ENDPOINT", "QWEN_TMP_OSS_URL_EXPIRES",
                 "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN")


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
        return {"ok": self.exit_code == errors.OK, "exit_code": self.exit_code, **self.facts, "checks": self.checks}


def bundle_version() -> str:
    from .update_prompt import find_update_skill

    sibling = find_update_skill()
    try:
        return json.loads((sibling / "version.json").read_text(encoding="utf-8"))["version"] if sibling else "unknown"
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def _check_key_and_endpoint(settings: Settings, report: Report, offline: bool, timeout: float) -> None:
    key = find_api_key(settings)
    report.facts.update(key_status=key.status, key_source=key.source)
    if key.status == STANDARD:
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
    _check_network(settings, report, endpoint)
    if key.status == TOKEN_PLAN and not endpoint.is_token_plan:
        guide = skill_path("references", "tokenplan.md", cwd=settings.cwd)
        report.add("key fits endpoint", "fail", "a Token Plan key (sk-sp-) on a standard host is rejected with 401; "
                   f"these scripts need a standard key (see {guide})")
    elif key.status == STANDARD and endpoint.is_token_plan:
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
        else:
            shown = f"HTTP {result.status}" if result.status is not None else "no answer"
            code = f" {result.error_code}" if result.error_code else ""
            report.add("probe", "fail", f"{shown}{code}: {result.error_message}")
            report.fail(result.exit_code)
            if result.status == 401 and endpoint.region in REGION_ROOTS:
                _check_other_regions(settings, report, key, endpoint, timeout)
    else:
        report.add("probe", "skip", "no usable key, no request sent")
    if key.status == STANDARD and report.exit_code == errors.OK:
        _check_users_code(report, key)


def _check_key_sources(settings: Settings, report: Report) -> None:
    """Say when the key in effect hides a different one (salted fingerprints, never values)."""
    import secrets

    candidates = key_candidates(settings, secrets.token_hex(8))
    if not candidates:
        return
    effective, told = candidates[0], set()
    for other in candidates[1:]:
        if other.fingerprint == effective.fingerprint or other.source in told:
            continue
        told.add(other.source)
        if "config.json" in other.source:
            report.add("key sources", "warn",
                       f"the Model Studio CLI's {other.source} holds a different key; the CLI (bl) prefers that "
                       f"file over DASHSCOPE_API_KEY while these scripts use {effective.source}: make them the "
                       "same key (or re-run `bl auth login`) to avoid two answers")
        elif effective.source.startswith("env:") and not other.source.startswith("env:"):
            name = effective.source[4:]
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
                   f"QWEN_BASE_URL overrides QWEN_REGION={untrusted(region.value, 40)} ({region.source}): the region "
                   f"is ignored; unset QWEN_BASE_URL ({base.source}) to use it")


def _check_network(settings: Settings, report: Report, endpoint: Endpoint) -> None:
    """The proxy and CA certificates the requests will use (process environment only; no password)."""
    from . import network

    try:
        proxy = network.proxy_for_url(endpoint.root, settings.env)
    except QwenOpsError as exc:
        report.failed("network", exc)
        return
    route = f"through {proxy.label}" if proxy else "direct (no proxy variable applies to this host)"
    report.add("network", "ok", f"{route}; CA certificates from {network.trust_setting(settings.env).source}")


def _check_documented_host(endpoint: Endpoint, report: Report) -> None:
    if endpoint.host in KNOWN_HOSTS:
        return
    if is_loopback_host(endpoint.host):
        report.add("endpoint host", "warn", "QWEN_BASE_URL points to this machine (loopback, e.g. the sandbox): "
                   "a 200 there proves nothing about DashScope; unset QWEN_BASE_URL to check the real service")
    else:
        report.add("endpoint host", "warn", f"{endpoint.host} is not a documented DashScope host: a 200 there "
                   "proves only that this host accepts the key; unset QWEN_BASE_URL to check DashScope itself")


def _check_other_regions(settings: Settings, report: Report, key: ApiKey, endpoint: Endpoint,
                         timeout: float) -> None:
    """After a 401 on a documented host: does another region accept this key?"""
    results = probe_regions(settings, timeout=timeout, key=key)
    report.facts["regions"] = {region: result.status for region, result in results}
    works = [region for region, result in results if result.exit_code == errors.OK]
    if works and endpoint.region not in works:
        report.add("region", "fail", f"your key works on {works[0]}: set QWEN_REGION={works[0]} "
                   f"(it was rejected on {endpoint.region}; keys belong to one region)")
    elif not works:
        shown = ", ".join(f"{r} {x.status if x.status is not None else '000'}" for r, x in results)
        report.add("region", "fail", f"no region accepted the key ({shown}); it may be revoked or mistyped: "
                   "create a new key in the console")


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
    else:
        detail = (f"the key is only in {key.source}: your own code sees it only if it loads that file "
                  "(python-dotenv's load_dotenv(), or `from qianwen_ops import api_settings`) or you export "
                  "DASHSCOPE_API_KEY")
    report.add("your code", "info", detail)


def _check_custom_oss(settings: Settings, report: Report, check_oss: bool, timeout: float = 15.0) -> None:
    from .custom_oss import load_config, round_trip
    from .upload_cache import cache_path

    sources = {}
    for name in OSS_VARIABLES:
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
        for step, ok, detail, exit_code in round_trip(config, cache_path(settings.env).parent, timeout=timeout,
                                                        env=settings.env):
            report.add(f"oss {step}", "ok" if ok else "fail", detail)
            if not ok:
                report.fail(exit_code)


def diagnose(settings: Settings, offline: bool = False, check_oss: bool = False, timeout: float = 15.0) -> Report:
    from .update_prompt import status as update_status

    report = Report()
    report.facts.update(version=bundle_version(), python=platform.python_version())
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
    return report
