#!/usr/bin/env python3
"""Check that the QianWen / DashScope API key works, printing only the HTTP status code.

Sends one minimal chat completion to <endpoint>/compatible-mode/v1/chat/completions
(<endpoint>: QWEN_BASE_URL when set, else the QWEN_REGION host: cn by default, intl, us)
and prints the status code (000 when no HTTP answer: nothing sent, or network
failure). The key is never printed. A non-secret record is saved under
<project>/output/qianwen-ops-auth/, <project> being the nearest folder holding .git
from the current directory up (else the current directory); doctor.py prints it.

--all-regions sends the same request to the three documented hosts (cn, intl, us) and
prints one line per region, "<region> <status>" (000: no answer); exit 0 when any region
accepts the key, 5 when none does but one answered 401/403, 8 when no region answered
(network). It never sends the key to a QWEN_BASE_URL host. Proxies (HTTPS_PROXY,
NO_PROXY...) and CA certificates (SSL_CERT_FILE, REQUESTS_CA_BUNDLE...) come from the
environment only, never from a .env file.
"""

from qianwen_ops import cli, errors
from qianwen_ops.evidence import write_record
from qianwen_ops.probe import DEFAULT_MODEL, DEFAULT_TIMEOUT, probe_regions, regions_exit_code, run_probe
from qianwen_ops.settings import Settings

CODES = [errors.OK, errors.USAGE, errors.NO_KEY, errors.TOKEN_PLAN_KEY, errors.AUTH_REJECTED,
         errors.RATE_LIMITED, errors.HTTP_ERROR, errors.NETWORK, errors.CONFIG]


def main() -> int:
    parser = cli.ArgumentParser(prog="probe.py", description=__doc__, epilog=cli.exit_code_epilog(CODES))
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model to call (default {DEFAULT_MODEL})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds to wait for the answer (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the code")
    parser.add_argument("--all-regions", action="store_true",
                        help="try the key on the cn, intl and us hosts; one line per region")
    args = parser.parse_args()
    if not 0 < args.timeout <= 600:
        parser.error("--timeout must be between 0 and 600 seconds")
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
        cli.print_json(record)
    else:
        print(result.status if result.status is not None else "000")
    if result.exit_code != errors.OK and not args.json:
        detail = f" ({result.error_code})" if result.error_code else ""
        cli.fail(f"{result.error_message or 'request failed'}{detail}")
    return result.exit_code


def all_regions(args) -> int:
    results = probe_regions(Settings.from_process(), model=args.model, timeout=args.timeout)
    records = {region: result.record() for region, result in results}
    code = regions_exit_code(results)
    write_record("probe", {"all_regions": records, "exit_code": code, "model": args.model})
    if args.json:
        cli.print_json({"exit_code": code, "regions": records})
        return code
    for region, result in results:
        print(f"{region} {result.status if result.status is not None else '000'}")
    if code != errors.OK:
        first = next(r for _, r in results if r.exit_code != errors.OK)
        if all(r.status is None for _, r in results):
            cli.fail(f"no region answered ({first.error_message or 'request failed'})")
        elif first.status is None:
            cli.fail(first.error_message or "request failed")
        else:
            cli.fail("no region accepted the key")
    return code


if __name__ == "__main__":
    cli.run(main)
