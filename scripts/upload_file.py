#!/usr/bin/env python3
"""Turn local files into URLs a QianWen / DashScope model can read.

Prints one URL per successful input, in input order (failures are reported on
stderr, one line each, after all inputs were tried). Without QWEN_TMP_OSS_BUCKET
files go to DashScope temporary storage: oss:// URLs valid 48 hours, and the model
call must send the header X-DashScope-OssResourceResolve: enable. With it, files
go to your own bucket and the URL is a presigned https:// URL (no header needed).
http(s)://, oss:// and data: inputs are printed unchanged (one holding an API key or a
secret this run uses is refused, exit 10, never echoed). An unchanged file is
not uploaded again while its URL is still valid (the reuse cache). Use -- before
a path that starts with '-'.

--inline sends nothing: each local file is printed as a data:<mime>;base64,... URL,
which a model call can carry itself (no upload, no 48-hour expiry, no model or
account binding, no header). A file whose data: URL would be over DashScope's
10,485,760-byte limit per data: item (about 7.5 MiB of file) is refused (exit 10).
--model is optional with --inline.

Credential files are never uploaded nor inlined (exit 10): .env files, private keys, ~/.ssh/*,
~/.aws/credentials, ~/.docker/config.json, ~/.kube/config and the other stores listed in
references/settings.md, judged by what a link really points to; files holding a private key;
files holding a secret this run loaded (UTF-8, UTF-16 or UTF-32). Only when the user explicitly
asks to upload such a file, --allow-credential-file lifts these rules except the last. A file
whose name holds an API key is not uploaded either (the name would be part of the URL).
"""

import sys

from qianwen_ops import cli, errors
from qianwen_ops.credentials import warn_if_key_is_tracked
from qianwen_ops.evidence import append_records
from qianwen_ops.limits import MIN_UPLOAD_RATE, RETRY_DEADLINE_FACTOR, UPLOAD_TIMEOUT
from qianwen_ops.local_files import display
from qianwen_ops.redaction import one_line
from qianwen_ops.settings import Settings
from qianwen_ops.uploads import DEFAULT_CONCURRENCY, MAX_CONCURRENCY, check_options, upload_many

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


def evidence_url(url: str) -> str:
    """The URL as the evidence file keeps it: no query string (signatures), no inlined file content."""
    if url.startswith("data:"):
        return url.split(",", 1)[0] + ",..."
    return url.split("?", 1)[0]


def main() -> int:
    parser = cli.ArgumentParser(prog="upload_file.py", description=__doc__,
                                epilog=cli.exit_code_epilog(CODES) + "\nWith several failed inputs, the exit "
                                "code is the first failed input's.")
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_URL", help="local paths, file:// URIs or URLs")
    parser.add_argument("--model",
                        help="the model that will read the files, e.g. qwen-vl-plus (needed unless --inline)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON line per input: source, url, expires_at, backend, bytes, sha256, or source "
                             "and the error object {code, message, exit_code}")
    parser.add_argument("--inline", action="store_true",
                        help="print small local files as data: URLs instead of uploading them (nothing is sent)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help=f"uploads in parallel, 1-{MAX_CONCURRENCY} (default {DEFAULT_CONCURRENCY})")
    parser.add_argument("--no-cache", action="store_true", help="upload again even if a cached URL is valid")
    parser.add_argument("--timeout", type=float, default=UPLOAD_TIMEOUT,
                        help=f"seconds to wait on a stalled request before retrying (default {UPLOAD_TIMEOUT:g}); "
                        f"the retries of one request end within {RETRY_DEADLINE_FACTOR:g} x this, plus the "
                        f"time to send the file at {MIN_UPLOAD_RATE // 1024} KiB/s")
    parser.add_argument("--temp-storage", action="store_true",
                        help="send these files to DashScope temporary storage even when QWEN_TMP_OSS_BUCKET is set")
    parser.add_argument("--allow-credential-file", action="store_true",
                        help="upload a credential file (by name, link target or private-key content) the user "
                        "explicitly asked for; a file holding a secret this run loaded is still refused")
    args = parser.parse_args()
    if not args.model and not args.inline:
        parser.error("the following arguments are required: --model (or use --inline)")
    try:
        check_options(args.model or "", args.concurrency, args.timeout, args.inline)
    except errors.QwenOpsError as exc:
        parser.error(f"--{exc.message}")
    settings = Settings.from_process()   # one for the warning and the batch: the project and .env files found once
    if not args.inline:
        warn_if_key_is_tracked(settings)
    outcomes = upload_many(args.inputs, args.model or "", settings=settings, use_cache=not args.no_cache,
                           concurrency=args.concurrency,
                           progress=progress_bar(), timeout=args.timeout, inline=args.inline,
                           allow_credential_files=args.allow_credential_file, temp_storage=args.temp_storage)
    records = []
    exit_code = errors.OK
    for outcome in outcomes:
        # Names are shown as one escaped line: no control characters reach the terminal, and bytes that
        # were not UTF-8 cannot stop the batch (the other inputs' URLs are always printed).
        if outcome.error is None:
            record = outcome.upload.record()
            if args.json:
                cli.print_json({**record, "source": one_line(outcome.source)})  # redacted by upload_many
            else:
                print(one_line(outcome.upload.url))
            # the records are redacted as a whole by append_records: the names need no pass of their own
            records.append({**record, "source": display(outcome.source, redacted=False),
                            "url": evidence_url(record["url"])})
        else:
            message = one_line(outcome.error.message)
            if args.json:
                cli.print_json({"source": one_line(outcome.source),
                                **errors.error_object(outcome.error.exit_code, message)})
            cli.fail(message)
            records.append({"source": display(outcome.source, redacted=False), "error": message})
            exit_code = exit_code or outcome.error.exit_code
    append_records("uploads", [dict(r, model=args.model or "") for r in records])
    return exit_code


if __name__ == "__main__":
    cli.run(main)
