#!/usr/bin/env python3
"""Check that the QianWen / DashScope API key works, printing only the HTTP status code.

Sends one minimal chat completion to {endpoint}/compatible-mode/v1/chat/completions
and prints the status code (000 when no HTTP answer: nothing sent, or network
failure). The key is never printed. A non-secret record is saved under
./output/qianwen-ops-auth/ of the current directory.
"""

from qianwen_ops import cli, errors
from qianwen_ops.evidence import write_record
from qianwen_ops.probe import DEFAULT_MODEL, DEFAULT_TIMEOUT, run_probe
from qianwen_ops.settings import Settings

CODES = [errors.OK, errors.USAGE, errors.NO_KEY, errors.TOKEN_PLAN_KEY, errors.AUTH_REJECTED,
         errors.RATE_LIMITED, errors.HTTP_ERROR, errors.NETWORK, errors.CONFIG]


def main() -> int:
    parser = cli.ArgumentParser(prog="probe.py", description=__doc__, epilog=cli.exit_code_epilog(CODES))
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model to call (default {DEFAULT_MODEL})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds to wait for the answer (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the code")
    args = parser.parse_args()
    if not 0 < args.timeout <= 600:
        parser.error("--timeout must be between 0 and 600 seconds")
    result = run_probe(Settings.from_process(), model=args.model, timeout=args.timeout)
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


if __name__ == "__main__":
    cli.run(main)
