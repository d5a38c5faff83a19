"""Shared plumbing for the entry scripts: one-line errors, exit codes, no tracebacks."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from .errors import EXIT_CODES, INTERNAL, USAGE, QwenOpsError
from .redaction import redact


def exit_code_epilog(codes: Sequence[int]) -> str:
    return "exit codes:\n" + "\n".join(f"  {c:>2}  {EXIT_CODES[c]}" for c in codes)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exits with USAGE."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(USAGE, f"{self.prog}: error: {redact(message)} (see --help)\n")


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def print_json(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=True, sort_keys=False))


def run(main: Callable[[], int]) -> None:
    """Run ``main`` and exit with its code; expected failures become one stderr line."""
    try:
        code = main()
    except QwenOpsError as exc:
        fail(redact(exc.message))
        code = exc.exit_code
    except KeyboardInterrupt:
        fail("interrupted")
        code = 130
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # a bug: still one line, never a traceback or a value
        fail(f"internal error ({exc.__class__.__name__}); please report it")
        code = INTERNAL
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.exit(code)
