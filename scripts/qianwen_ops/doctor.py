"""One report of everything that decides whether QianWen authentication works."""

from __future__ import annotations

import importlib.util
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

from . import errors
from .credentials import STANDARD, TOKEN_PLAN, find_api_key
from .endpoints import resolve_endpoint
from .errors import QwenOpsError
from .evidence import evidence_dir
from .probe import key_advice, run_probe
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
        report.fail(errors.TOKEN_PLAN_KEY if key.status == TOKEN_PLAN else errors.NO_KEY)
    try:
        endpoint = resolve_endpoint(settings)
    except QwenOpsError as exc:
        report.failed("endpoint", exc)
        return
    report.facts.update(endpoint_host=endpoint.host)
    report.add("endpoint", "ok", f"{endpoint.root} ({endpoint.source})")
    if key.status == TOKEN_PLAN and not endpoint.is_token_plan:
        report.add("key fits endpoint", "fail", "a Token Plan key (sk-sp-) on a standard host is rejected with 401; "
                   "these scripts need a standard key (see references/tokenplan.md)")
    elif key.status == STANDARD and endpoint.is_token_plan:
        report.add("key fits endpoint", "fail", "a standard key on the Token Plan host is rejected; "
                   "unset QWEN_BASE_URL or use the standard host")
        report.fail(errors.CONFIG)
    elif key.status in (STANDARD, TOKEN_PLAN):
        report.add("key fits endpoint", "ok", "key type matches the host")
    if offline:
        report.add("probe", "skip", "--offline: no request sent (authentication not verified)")
    elif key.status == STANDARD:
        result = run_probe(settings, timeout=timeout)
        report.facts.update(probe_status=result.status)
        if result.exit_code == errors.OK:
            report.add("probe", "ok", f"HTTP {result.status} in {result.latency_ms} ms")
        else:
            shown = f"HTTP {result.status}" if result.status is not None else "no answer"
            code = f" {result.error_code}" if result.error_code else ""
            report.add("probe", "fail", f"{shown}{code}: {result.error_message}")
            report.fail(result.exit_code)
    else:
        report.add("probe", "skip", "no usable key, no request sent")


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
        for step, ok, detail, exit_code in round_trip(config, cache_path(settings.env).parent, timeout=timeout):
            report.add(f"oss {step}", "ok" if ok else "fail", detail)
            if not ok:
                report.fail(exit_code)


def diagnose(settings: Settings, offline: bool = False, check_oss: bool = False, timeout: float = 15.0) -> Report:
    from .update_prompt import status as update_status

    report = Report()
    report.facts.update(version=bundle_version(), python=platform.python_version())
    _check_key_and_endpoint(settings, report, offline, timeout)
    _check_custom_oss(settings, report, check_oss, timeout)
    for package in ("oss2", "dotenv", "requests"):
        installed = importlib.util.find_spec(package) is not None
        label = "python-dotenv" if package == "dotenv" else package
        need = {"oss2": "needed only for custom OSS mode", "dotenv": "optional; a stdlib .env parser is built in",
                "requests": "optional"}[package]
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
