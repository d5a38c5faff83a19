#!/usr/bin/env python3
"""Post-task update check for qianwen-ops-auth (stdlib only; never blocks, always exits 0).

No flag: if the sibling qianwen-update-check skill is installed next to this skill, run it
(without credentials in its environment) and print an [UPDATE_AVAILABLE] line when a newer
version exists, or one [UPDATE_CHECK_FAILED] line (why; it is tried again after the next task)
when the check could not complete; if it is not installed, print an [ACTION_REQUIRED] block
with three options (install now / skip for now / never remind me) and the exact command for
each. Nothing printed means nothing to tell the user now: up to date (checked now or in the
last 24 hours), a newer version already reported in the last 24 hours ([UPDATE_AVAILABLE] is
repeated once a day while it is pending), or prompts the user turned off (--dismiss,
--never-install). --status prints one JSON object whose "summary" starts with one
of: not installed, never checked, not recorded, up to date, update available, suppressed until <time>,
check failed: <why>. A broken or hostile state file never stops it: a state that cannot be
saved gives one "warning:" line on stderr, and the exit code is still 0. Choices stored in a
state file git tracks (a committed one) are not used, nor is its last check.
"""

import sys

from qianwen_ops import cli
from qianwen_ops.redaction import redact
from qianwen_ops.update_prompt import dismiss, never_install, post_task_check, status, tracked_state_warning


def warn_if_tracked() -> None:
    warning = tracked_state_warning()
    if warning:
        print(redact(warning), file=sys.stderr)


def main() -> int:
    parser = cli.ArgumentParser(prog="gossamer.py", description=__doc__)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--dismiss", action="store_true", help="no prompts for the next 24 hours")
    group.add_argument("--never-install", action="store_true", help="never offer the update-check skill again")
    group.add_argument("--status", action="store_true",
                       help="print one JSON object: update_check_installed, suppressed, reason, state_file, "
                            "next_prompt_at, last_check, update_pending, update_reported_at, choices_not_used, "
                            "summary")
    args = parser.parse_args()
    try:
        if args.status:
            cli.print_json(status())
        elif args.dismiss:
            dismiss()
            print("update prompts dismissed for 24 hours")
            warn_if_tracked()
        elif args.never_install:
            never_install()
            print("the update-check skill will not be offered again")
            warn_if_tracked()
        else:
            for line in post_task_check():
                print(line)
    except BrokenPipeError:
        pass  # the reader went away (e.g. `| head`): nothing to say, and nowhere to say it
    except OSError as exc:
        print(f"warning: update-prompt state not saved: {redact(exc.strerror or exc.__class__.__name__)}",
              file=sys.stderr)
    except Exception as exc:  # documented "always exits 0": a hostile state or environment only skips the prompt
        print(f"warning: update prompt skipped ({exc.__class__.__name__})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run(main)
