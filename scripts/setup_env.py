#!/usr/bin/env python3
"""Create or complete the .env that the QianWen / DashScope scripts read, never harming what is there.

Run it from your project. It writes the .env whose key is in effect, or else
<project>/.env: with no key in effect it adds DASHSCOPE_API_KEY=sk-your-key-here (a new
file is created with mode 0600); a key in effect is left unchanged, byte for byte.
Inside a git work tree it makes sure .env and output/qianwen-ops-auth/ are git-ignored.
Every write is atomic and keeps the file's mode; links and other special files are
refused; anything ambiguous is refused (exit 12) with the file untouched.

The key itself is never asked for or printed. --from-stdin exists only for a user who
insists on having the script write their key, in their own terminal (an agent never runs
it with a key: its commands are recorded): it replaces the placeholder in effect, never a
real key (to change one, edit .env). Typed at a hidden prompt, the key stays out of the
shell's history and of every process's command line (<skill-dir>: this skill's folder):
  bash, zsh:  read -rs K; printf '%s\\n' "$K" | python3 <skill-dir>/scripts/setup_env.py --from-stdin; unset K
  PowerShell: $s = Read-Host -AsSecureString; [System.Net.NetworkCredential]::new('', $s).Password |
              python <skill-dir>/scripts/setup_env.py --from-stdin; Remove-Variable s
  (or, with the key copied: Get-Clipboard | python <skill-dir>/scripts/setup_env.py --from-stdin)
--custom-oss adds the QWEN_TMP_OSS_* lines for uploads to your own bucket, with the
AccessKey lines as placeholders for you to fill in.
"""

import sys
from pathlib import Path

from qianwen_ops import cli, errors
from qianwen_ops.credentials import PLACEHOLDER, Secret
from qianwen_ops.dotenv_editor import API_KEYS_URL, PLACEHOLDER_VALUE, setup_env
from qianwen_ops.redaction import one_line
from qianwen_ops.skill_paths import script_command

CODES = [errors.OK, errors.USAGE, errors.NO_KEY, errors.CONFIG, errors.REFUSED_WRITE]
MAX_STDIN = 4096  # one key line; anything longer is not a key


def read_key_from_stdin(parser) -> Secret:
    if sys.stdin is None or sys.stdin.isatty():
        parser.error("--from-stdin needs the key piped on stdin")
    line = sys.stdin.buffer.readline(MAX_STDIN + 1)
    if len(line) > MAX_STDIN:
        raise errors.QwenOpsError(f"more than {MAX_STDIN} bytes on stdin; expected one line holding the key, "
                                  "nothing written", errors.USAGE)
    return Secret(line.decode("utf-8", "replace").rstrip("\r\n"))


def shown(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it, else absolute."""
    try:
        return one_line(str(path.resolve().relative_to(Path.cwd().resolve())))
    except ValueError:
        return one_line(str(path))


def main() -> int:
    parser = cli.ArgumentParser(prog="setup_env.py", description=__doc__, epilog=cli.exit_code_epilog(CODES))
    mode = parser.add_mutually_exclusive_group()
    parser.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    mode.add_argument("--from-stdin", action="store_true",
                      help="read a real key from stdin (one line, never from argv) and write it to .env")
    mode.add_argument("--custom-oss", action="store_true",
                      help="add the QWEN_TMP_OSS_* lines for your own bucket (needs --bucket and --region)")
    parser.add_argument("--bucket", metavar="NAME", help="with --custom-oss: your OSS bucket's name")
    parser.add_argument("--region", metavar="REGION", help="with --custom-oss: the bucket's region id, e.g. cn-beijing")
    args = parser.parse_args()
    if args.custom_oss and not (args.bucket and args.region):
        parser.error("--custom-oss needs --bucket NAME and --region REGION")
    if not args.custom_oss and (args.bucket or args.region):
        parser.error("--bucket and --region go with --custom-oss")
    key = read_key_from_stdin(parser) if args.from_stdin else None
    report = setup_env(Path.cwd(), dry_run=args.dry_run, key=key,
                       custom_oss=(args.bucket, args.region) if args.custom_oss else None)
    for line in report.lines:
        print(one_line(line))   # paths escaped: a folder name cannot forge a line
    if args.custom_oss:
        if report.oss_placeholders:
            print(f"Next: open {shown(report.target)} and replace your-accesskey-id and your-accesskey-secret with the "
                  "AccessKey pair of a RAM user allowed to upload to the bucket; do not paste them into a chat. "
                  f"Then check with: {script_command('doctor.py')} --check-oss")
        else:
            print(f"Next: check with: {script_command('doctor.py')} --check-oss")
    elif report.key_state == PLACEHOLDER and report.key_source.startswith("env:"):
        print(f"Next: set {report.key_source[4:]} to your API key from the QianWen console ({API_KEYS_URL}) "
              "in your own shell; do not paste the key into a chat.")
    elif report.key_state == PLACEHOLDER:
        print(f"Next: open {shown(report.target)} and replace {PLACEHOLDER_VALUE} with your API key from the "
              f"QianWen console ({API_KEYS_URL}); do not paste the key into a chat.")
    else:
        print(f"Next: verify the key with: {script_command('probe.py')}")
    return errors.OK


if __name__ == "__main__":
    cli.run(main)
