#!/usr/bin/env python3
"""Turn local files into URLs a QianWen / DashScope model can read.

Prints one URL per successful input, in input order (failures are reported on
stderr, one line each, after all inputs were tried). Without QWEN_TMP_OSS_BUCKET
files go to DashScope temporary storage: oss:// URLs valid 48 hours, and the model
call must send the header X-DashScope-OssResourceResolve: enable. With it, files
go to your own bucket and the URL is a presigned https:// URL (no header needed).
http(s)://, oss:// and data: inputs are printed unchanged. An unchanged file is
not uploaded again while its URL is still valid (the reuse cache). Use -- before
a path that starts with '-'.
"""

import sys

from qianwen_ops import cli, errors
from qianwen_ops.evidence import append_records
from qianwen_ops.local_files import display
from qianwen_ops.uploads import DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT, MAX_CONCURRENCY, upload_many

CODES = [errors.OK, errors.USAGE, errors.NO_KEY, errors.TOKEN_PLAN_KEY, errors.AUTH_REJECTED,
         errors.RATE_LIMITED, errors.HTTP_ERROR, errors.NETWORK, errors.CONFIG, errors.INPUT_FILE,
         errors.MISSING_DEPENDENCY]
BAR_MIN_BYTES = 8 * 1024 * 1024


def progress_bar():
    if not sys.stderr.isatty():
        return None

    def show(source: str, sent: int, total: int) -> None:
        if total >= BAR_MIN_BYTES:
            done = int(30 * sent / total)
            end = "\n" if sent >= total else ""
            sys.stderr.write(f"\r{display(source)[-40:]:>40} [{'#' * done}{'.' * (30 - done)}] "
                             f"{100 * sent // total:3d}%{end}")
            sys.stderr.flush()
    return show


def main() -> int:
    parser = cli.ArgumentParser(prog="upload_file.py", description=__doc__,
                                epilog=cli.exit_code_epilog(CODES) + "\nWith several failed inputs, the exit "
                                "code is the first failed input's.")
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_URL", help="local paths, file:// URIs or URLs")
    parser.add_argument("--model", required=True, help="the model that will read the files, e.g. qwen-vl-plus")
    parser.add_argument("--json", action="store_true",
                        help="one JSON line per input: source, url, expires_at, backend, bytes, sha256 (or error)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"uploads in parallel, 1-{MAX_CONCURRENCY} (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--no-cache", action="store_true", help="upload again even if a cached URL is valid")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds to wait on a stalled request before retrying (default {DEFAULT_TIMEOUT:g})")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        parser.error(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
    if not 0 < args.timeout <= 3600:
        parser.error("--timeout must be between 0 and 3600 seconds")
    outcomes = upload_many(args.inputs, args.model, use_cache=not args.no_cache,
                           concurrency=args.concurrency, progress=progress_bar(), timeout=args.timeout)
    records = []
    exit_code = errors.OK
    for outcome in outcomes:
        if outcome.error is None:
            record = outcome.upload.record()
            if args.json:
                cli.print_json(record)
            else:
                print(outcome.upload.url)
            records.append({**record, "url": record["url"].split("?", 1)[0]})
        else:
            if args.json:
                cli.print_json({"source": outcome.source, "error": outcome.error.message})
            cli.fail(outcome.error.message)
            records.append({"source": display(outcome.source), "error": outcome.error.message})
            exit_code = exit_code or outcome.error.exit_code
    append_records("uploads", [dict(r, model=args.model) for r in records])
    return exit_code


if __name__ == "__main__":
    cli.run(main)
