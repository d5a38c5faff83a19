#!/usr/bin/env python3
"""Check that the QianWen / DashScope API key works, printing only the HTTP status code.

Sends one minimal chat completion to <endpoint>/compatible-mode/v1/chat/completions
(<endpoint>: QWEN_BASE_URL when set, else the QWEN_REGION host: cn by default, intl, us)
and prints the status code (000 when no HTTP answer: nothing sent, or network
failure). The key is never printed. A non-secret record is saved under
<project>/output/qianwen-ops-auth/, <project> being the nearest folder holding .git
from the current directory up (else the current directory); doctor.py prints it.

--all-regions sends the same request to the documented hosts of cn, intl and us (and, when
DASHSCOPE_WORKSPACE_ID is set, to that workspace's MaaS hosts in the official SDK's regions
ap-southeast-1, us-east-1, cn-hongkong, eu-central-1, ap-northeast-1) and prints one line per
region, "<region> <status>" (000: no answer). When a region accepts the key, "use: ..." lines
follow: "unset QWEN_BASE_URL (<where it is set>)" when it is set (it wins over QWEN_REGION), the
setting for these scripts, and what your own code must use for that region (the
OpenAI-compatible base_url, and DASHSCOPE_HTTP_BASE_URL for the dashscope SDK). Exit 0 when any
region accepts the key, 5 when none does but one answered 401/403, 8 when no region answered
(network). It never sends the key to a QWEN_BASE_URL host. Proxies (HTTPS_PROXY,
NO_PROXY...) and CA certificates (SSL_CERT_FILE, REQUESTS_CA_BUNDLE...) come from the
environment only, never from a .env file.
"""

from qianwen_ops import cli, errors
from qianwen_ops.credentials import warn_if_key_is_tracked
from qianwen_ops.endpoints import app_settings, app_settings_lines
from qianwen_ops.evidence import write_record
from qianwen_ops.limits import REQUEST_TIMEOUT
from qianwen_ops.probe import DEFAULT_MODEL, probe_regions, regions_exit_code, run_probe
from qianwen_ops.redaction import safe_line
from qianwen_ops.settings import Settings

CODES = [errors.OK, errors.USAGE, errors.NO_KEY, errors.TOKEN_PLAN_KEY, errors.AUTH_REJECTED,
         errors.RATE_LIMITED, errors.HTTP_ERROR, errors.NETWORK, errors.CONFIG]


def main() -> int:
    parser = cli.ArgumentParser(prog="probe.py", description=__doc__, epilog=cli.exit_code_epilog(CODES))
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model to call (default {DEFAULT_MODEL})")
    parser.add_argument("--timeout", type=float, default=REQUEST_TIMEOUT,
                        help=f"seconds to wait for the answer (default {REQUEST_TIMEOUT:g})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the code")
    parser.add_argument("--all-regions", action="store_true",
                        help="try the key on the cn, intl and us hosts (and the MaaS regions when "
                             "DASHSCOPE_WORKSPACE_ID is set); one line per region, then what your code must use")
    args = parser.parse_args()
    if not 0 < args.timeout <= 600:
        parser.error("--timeout must be between 0 and 600 seconds")
    warn_if_key_is_tracked(Settings.from_process())
    if args.all_regions:
        return all_regions(args)
    try:
        result = run_probe(Settings.from_process(), model=args.model, timeout=args.timeout)
    except errors.QwenOpsError:  # a configuration error before any request: still no HTTP answer
        if not args.json:
            print("000")
        raise
    record = result.record()
    write_record("probe", {**record, "model": args.model})
    if args.json:
        cli.print_json(with_error(record, result.exit_code, result.error_message, result.error_code))
    else:
        print(result.status if result.status is not None else "000")
    if result.exit_code != errors.OK and not args.json:
        detail = f" ({result.error_code})" if result.error_code else ""
        cli.fail(f"{result.error_message or 'request failed'}{detail}")
    return result.exit_code


def all_regions(args) -> int:
    settings = Settings.from_process()
    results = probe_regions(settings, model=args.model, timeout=args.timeout)
    records = {region: result.record() for region, result in results}
    code = regions_exit_code(results)
    write_record("probe", {"all_regions": records, "exit_code": code, "model": args.model})
    accepted = next((result.endpoint for _, result in results if result.exit_code == errors.OK), None)
    overriding = settings.get("QWEN_BASE_URL")  # wins over QWEN_REGION: the region line alone would change nothing
    if args.json:
        found = {"exit_code": code, "regions": records}
        if accepted is not None:
            found["app"] = {"region": accepted.region, **app_settings(accepted)}
            if overriding is not None:
                found["app"]["unset"] = {"QWEN_BASE_URL": overriding.source}
        cli.print_json(with_error(found, code, regions_message(results)))
        return code
    for region, result in results:
        print(f"{region} {result.status if result.status is not None else '000'}")
    if accepted is not None:
        if overriding is not None:
            print(safe_line(f"use: unset QWEN_BASE_URL ({overriding.source}): it wins over QWEN_REGION"))
        for line in app_settings_lines(accepted):
            print(f"use: {line}")
    if code != errors.OK:
        cli.fail(regions_message(results))
    return code


def regions_message(results: list) -> str:
    """The one line that says why --all-regions failed."""
    first = next((r for _, r in results if r.exit_code != errors.OK), None)
    if first is None:
        return ""
    if all(r.status is None for _, r in results):
        return f"no region answered ({first.error_message or 'request failed'})"
    if first.status is None:
        return first.error_message or "request failed"
    return "no region accepted the key"


def with_error(record: dict, exit_code: int, message: str, service_code: str = "") -> dict:
    """``record`` plus the one JSON error object (errors.error_object) when ``exit_code`` is a failure."""
    if exit_code == errors.OK:
        return record
    detail = f" ({service_code})" if service_code else ""
    return {**record, **errors.error_object(exit_code, f"{message or 'request failed'}{detail}")}


if __name__ == "__main__":
    cli.run(main)
