#!/usr/bin/env python3
"""Create a placeholder .env for the QianWen / DashScope API key in the current directory.

If .env has no key line, appends DASHSCOPE_API_KEY=sk-your-key-here (a new file is
created with mode 0600). If a key line exists, nothing changes, byte for byte.
Inside a git work tree, makes sure .env is git-ignored. Never writes through a
symlink. The key itself is never asked for or printed; --from-stdin exists only
for a user who insists on having the script write their key.
"""

import sys
from pathlib import Path

from qianwen_ops import cli, errors
from qianwen_ops.credentials import PLACEHOLDER, Secret
from qianwen_ops.envfile import API_KEYS_URL, PLACEHOLDER_VALUE, setup_env

CODES = [errors.OK, errors.USAGE, errors.NO_KEY, errors.CONFIG, errors.REFUSED_WRITE]


def main() -> int:
    parser = cli.ArgumentParser(prog="setup_env.py", description=__doc__, epilog=cli.exit_code_epilog(CODES))
    parser.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    parser.add_argument("--from-stdin", action="store_true",
                        help="read a real key from stdin (never from argv) and write it to .env")
    args = parser.parse_args()
    key = None
    if args.from_stdin:
        if sys.stdin is None or sys.stdin.isatty():
            parser.error("--from-stdin needs the key piped on stdin")
        key = Secret(sys.stdin.readline().rstrip("\r\n"))
    report = setup_env(Path.cwd(), dry_run=args.dry_run, key=key)
    prefix = "would " if args.dry_run else ""
    for action in report.actions:
        print(f"{prefix}{action}")
    if report.key_state == PLACEHOLDER:
        print(f"Next: open .env and replace {PLACEHOLDER_VALUE} with your API key from the QianWen console "
              f"({API_KEYS_URL}); do not paste the key into a chat.")
    else:
        print("Next: verify the key with: python3 scripts/probe.py")
    return errors.OK


if __name__ == "__main__":
    cli.run(main)
