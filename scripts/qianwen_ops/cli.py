"""Shared plumbing for the entry scripts: one-line errors, exit codes, no tracebacks."""

from __future__ import annotations

import argparse
import json
import os
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
    """Run ``main`` and exit with its code; expected failures become one stderr line.

    Ctrl-C ends the process at once with 130: the main thread's ``finally`` blocks have run
    (the reuse cache is synced, every file is written whole or not at all), and threads still
    waiting on the network are not waited for, as the interpreter's own exit would.
    """
    try:
        code = main()
    except QwenOpsError as exc:
        fail(redact(exc.message))
        code = exc.exit_code
    except KeyboardInterrupt:
        fail("interrupted")
        _flush()
        os._exit(130)
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # a bug: still one line, never a traceback or a value
        fail(f"internal error ({exc.__class__.__name__}); please report it")
        code = INTERNAL
    _flush()
    sys.exit(code)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
