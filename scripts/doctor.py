#!/usr/bin/env python3
"""One report of everything that decides whether QianWen / DashScope authentication works.

Key status, type and source; endpoint; a live probe (skipped with --offline); whether
TLS to the endpoint is intercepted (its certificate verified again against public roots
only; no key sent); whether the key type fits the endpoint; custom-OSS settings and where
each comes from (never their values); optional packages; update-check state. The last
line says what was verified: "result: authentication works: <host> accepted the key", or
with --offline "result: settings look right; authentication not verified (--offline)"
(nothing is sent), or "result: not ready (exit N)"; --json carries the same as "verified"
(authentication, settings or none) and "result". Exit 0 only when auth works (with
--offline: when the key and settings look right).
"""

from qianwen_ops import cli, errors
from qianwen_ops.doctor import diagnose
from qianwen_ops.evidence import write_record
from qianwen_ops.limits import REQUEST_TIMEOUT
from qianwen_ops.redaction import one_line
from qianwen_ops.settings import Settings

CODES = [errors.OK, errors.USAGE, errors.NO_KEY, errors.TOKEN_PLAN_KEY, errors.AUTH_REJECTED,
         errors.RATE_LIMITED, errors.HTTP_ERROR, errors.NETWORK, errors.CONFIG, errors.MISSING_DEPENDENCY]
MARKS = {"ok": "[ok]  ", "fail": "[FAIL]", "skip": "[skip]", "info": "[info]", "warn": "[warn]"}


def main() -> int:
    parser = cli.ArgumentParser(prog="doctor.py", description=__doc__, epilog=cli.exit_code_epilog(CODES))
    parser.add_argument("--json", action="store_true", help="print one JSON object (for agents)")
    sends = parser.add_mutually_exclusive_group()
    sends.add_argument("--offline", action="store_true", help="send no request (skip the probe)")
    sends.add_argument("--check-oss", action="store_true",
                        help="custom OSS mode: put a tiny object, presign, GET and delete it")
    parser.add_argument("--timeout", type=float, default=REQUEST_TIMEOUT,
                        help=f"probe timeout in seconds (default {REQUEST_TIMEOUT:g})")
    args = parser.parse_args()
    if not 0 < args.timeout <= 600:
        parser.error("--timeout must be between 0 and 600 seconds")
    report = diagnose(Settings.from_process(), offline=args.offline, check_oss=args.check_oss, timeout=args.timeout)
    data = report.as_dict()
    write_record("doctor", {"ok": data["ok"], "exit_code": data["exit_code"], "version": data["version"],
                            "key_status": data.get("key_status"), "key_source": data.get("key_source"),
                            "endpoint_host": data.get("endpoint_host"), "checks": data["checks"],
                            "verified": data["verified"]})
    if args.json:
        cli.print_json(data)
    else:
        # every line escaped as server text is: a path or a value cannot forge a verdict line
        print(one_line(f"qianwen-ops-auth {data['version']} doctor (Python {data['python']})"))
        for check in data["checks"]:
            print(one_line(f"{MARKS.get(check['status'], '[?]')} {check['name']}: {check['detail']}"))
        print(one_line(f"evidence: {data['evidence_dir']}"))
        print(one_line(f"result: {data['result']}"))
    return report.exit_code


if __name__ == "__main__":
    cli.run(main)
