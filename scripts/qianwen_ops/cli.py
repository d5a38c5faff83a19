"""Shared plumbing for the entry scripts: one-line errors, exit codes, no tracebacks."""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Callable, Sequence

from .errors import EXIT_CODES, INTERNAL, USAGE, QwenOpsError, bug_message, error_object
from .redaction import one_line, redact

# True once a script's arguments asked for --json: failures then also print the one JSON error
# shape (errors.error_object) on stdout, besides the one stderr line.
_json_output = False


def exit_code_epilog(codes: Sequence[int]) -> str:
    return "exit codes:\n" + "\n".join(f"  {c:>2}  {EXIT_CODES[c]}" for c in codes)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's, measuring the terminal as ``shutil.get_terminal_size`` does without importing shutil
    (and with it zlib, bz2 and lzma): argparse makes one of these for every ``add_argument``."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "0"))
            except ValueError:
                width = 0
            if width <= 0:
                try:
                    width = os.get_terminal_size(sys.__stdout__.fileno()).columns
                except (AttributeError, ValueError, OSError):
                    width = 80
            width -= 2
        super().__init__(prog, indent_increment, max_help_position, width)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exits with USAGE."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if getattr(parsed, "json", False):
            json_output(True)
        return parsed

    def error(self, message: str):  # noqa: D401 - argparse API
        if "--json" in self._option_string_actions and _asks_for_json(sys.argv[1:]):
            print_json(error_object(USAGE, f"{self.prog}: {message}"))
        self.exit(USAGE, f"{self.prog}: error: {redact(message)} (see --help)\n")


def _asks_for_json(argv: Sequence[str]) -> bool:
    """``--json`` among the options (before a ``--``), even when the rest did not parse."""
    return "--json" in (argv[:argv.index("--")] if "--" in argv else argv)


def json_output(on: bool) -> None:
    """Say whether failures are also reported as the JSON error object (``--json``)."""
    global _json_output
    _json_output = on


def fail(message: str) -> None:
    """The one error line: escaped to one printable line (a path or name cannot forge another line)."""
    print(f"error: {one_line(message)}", file=sys.stderr)


def print_json(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=True, sort_keys=False))


class _Console:
    """stdout or stderr as every reader and terminal can take it, whatever happens to the reader.

    * A character the stream's encoding cannot show (a Chinese file name on a cp1252 console)
      is written as a backslash escape, never an error: a URL that was produced always gets out.
    * A reader that goes away (``| head``, an agent that stops reading) costs nothing: the rest of
      the output is dropped, the descriptor is pointed at the null device so the interpreter's
      last flush succeeds too, and the program's own exit code stands. (Without this, Python
      exits 120 with "Exception ignored ... BrokenPipeError" once the reader is gone.)
    """

    def __init__(self, stream):
        self._stream = stream
        self.reader_gone = False
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self._stream.write(text)
            except OSError as exc:
                self._lost(exc)
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except OSError as exc:
                self._lost(exc)

    def _lost(self, exc: OSError) -> None:
        # EPIPE: the reader closed its end; EINVAL: the same on Windows pipes
        if not isinstance(exc, BrokenPipeError) and exc.errno not in (errno.EPIPE, errno.EINVAL):
            raise exc
        self.reader_gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def guard_console() -> None:
    """Install ``_Console`` on stdout and stderr (once; every entry script does it through ``run``)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _Console):
            setattr(sys, name, _Console(stream))


def run(main: Callable[[], int]) -> None:
    """Run ``main`` and exit with its code; expected failures become one stderr line.

    Ctrl-C ends the process at once with 130: the main thread's ``finally`` blocks have run
    (the reuse cache is synced, every file is written whole or not at all), and threads still
    waiting on the network are not waited for, as the interpreter's own exit would. Output goes
    through ``guard_console``: any console encoding, and a reader that goes away changes nothing.
    """
    guard_console()
    try:
        code = main()
    except QwenOpsError as exc:
        fail(redact(exc.message))
        code = exc.exit_code
        _print_json_error(code, exc.message)
    except KeyboardInterrupt:
        fail("interrupted")
        _flush()
        os._exit(130)
    except BrokenPipeError:
        code = 0
    except Exception as exc:  # a bug: still one line, never a traceback or a value
        fail(bug_message(exc))
        code = INTERNAL
        _print_json_error(code, bug_message(exc))
    _flush()
    sys.exit(code)


def _print_json_error(code: int, message: str) -> None:
    if _json_output:
        try:
            print_json(error_object(code, message))
        except Exception:  # noqa: S110 - the stderr line already said it; never a second failure
            pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
