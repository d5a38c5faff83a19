"""Exit codes and the one exception type every script turns into a one-line error.

The table below is the contract documented in README.md and SKILL.md; tests read
it from here so the documentation and the code cannot drift apart.
"""

from __future__ import annotations

import functools

from .redaction import one_line, redact

OK = 0
INTERNAL = 1          # a bug: reported in one line, never a traceback
USAGE = 2             # bad command-line arguments (argparse uses 2 as well)
NO_KEY = 3            # key not set, placeholder or malformed; nothing was sent
TOKEN_PLAN_KEY = 4    # an sk-sp- key where a standard key is needed; nothing was sent
AUTH_REJECTED = 5     # the service answered 401 or 403
RATE_LIMITED = 6      # the service answered 429
HTTP_ERROR = 7        # any other HTTP error from the service
NETWORK = 8           # connection refused/reset, DNS failure, timeout
CONFIG = 9            # bad QWEN_BASE_URL / QWEN_REGION / OSS settings / unreadable .env
INPUT_FILE = 10       # an input file is missing, a directory, empty, too large, unreadable
MISSING_DEPENDENCY = 11  # an optional package is needed but not installed (none is today: custom OSS needs no oss2)
REFUSED_WRITE = 12    # would write through a symlink or over user data

EXIT_CODES = {
    OK: "success",
    INTERNAL: "internal error (a bug; please report it)",
    USAGE: "bad command-line arguments",
    NO_KEY: "no usable API key (not set, placeholder or malformed); nothing was sent",
    TOKEN_PLAN_KEY: "Token Plan key (sk-sp-) where a standard key is needed; nothing was sent",
    AUTH_REJECTED: "key rejected by the service (HTTP 401/403)",
    RATE_LIMITED: "rate limited (HTTP 429)",
    HTTP_ERROR: "other HTTP error from the service",
    NETWORK: "network failure or timeout",
    CONFIG: "configuration error (endpoint, OSS settings, unreadable .env)",
    INPUT_FILE: "input file error (missing, directory, empty, too large, unreadable)",
    MISSING_DEPENDENCY: "optional dependency missing (reserved; no longer raised)",
    REFUSED_WRITE: "refused to write (symlink or existing user data)",
}


class QwenOpsError(Exception):
    """An expected failure: a one-line, secret-free message and an exit code.

    ``code`` is a service error code when there is one (``InvalidApiKey``,
    ``AccessDenied``...); ``status`` the HTTP status when a response arrived.
    """

    def __init__(self, message: str, exit_code: int = INTERNAL, *,
                 code: str = "", status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code
        self.status = status
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message


def exit_code_for_status(status: int) -> int:
    """Map an HTTP status to our exit code."""
    if 200 <= status < 300:
        return OK
    if status in (401, 403):
        return AUTH_REJECTED
    if status == 429:
        return RATE_LIMITED
    return HTTP_ERROR


# The stable names of the exit codes, for machine-readable errors (``--json``): the same words
# whatever the message says, so an agent can branch on them.
ERROR_NAMES = {
    INTERNAL: "internal", USAGE: "usage", NO_KEY: "no_key", TOKEN_PLAN_KEY: "token_plan_key",
    AUTH_REJECTED: "auth_rejected", RATE_LIMITED: "rate_limited", HTTP_ERROR: "http_error",
    NETWORK: "network", CONFIG: "config", INPUT_FILE: "input_file", MISSING_DEPENDENCY: "missing_dependency",
    REFUSED_WRITE: "refused_write",
}


def error_object(exit_code: int, message: str) -> dict:
    """The one JSON error shape of every script's ``--json`` output (the QianWen CLI's shape):
    ``{"error": {"code": "<stable name>", "message": "<one line>", "exit_code": N}}``.

    ``message`` is redacted and made one printable line here, whoever calls.
    """
    return {"error": {"code": ERROR_NAMES.get(exit_code, "internal"), "message": one_line(redact(message)),
                      "exit_code": exit_code}}


def detached(exc: QwenOpsError) -> QwenOpsError:
    """A fresh copy of ``exc``: same message and fields, no traceback, no ``__cause__`` or ``__context__``.

    What the library hands out (``Outcome.error``, every raised error): the frames below the point
    of failure hold request headers, and they must not travel with the error into the user's logs.
    """
    return QwenOpsError(exc.message, exc.exit_code, code=exc.code, status=exc.status, retryable=exc.retryable)


def bug_message(exc: BaseException) -> str:
    """How an unexpected exception (a bug) is reported, by scripts and library alike: its class only,
    never its text (which may hold a value)."""
    return f"internal error ({exc.__class__.__name__}); please report it"


def public(function):
    """Decorator for the library's entry points: errors leave through a boundary that keeps no frame.

    A ``QwenOpsError`` is re-raised as a ``detached`` copy, any other ``Exception`` (a bug) as a
    ``QwenOpsError`` naming only its class (exit 1, as the scripts report it), Ctrl-C as a fresh
    ``KeyboardInterrupt`` — each raised outside the ``except`` block, so the traceback starts here
    and holds neither the frames below (their locals hold ``Authorization`` headers) nor an
    exception chain. Tracebacks with locals (``traceback``'s ``capture_locals``, loguru's
    ``diagnose``, Sentry, IPython) then show this frame's locals only: the function, the error.

    Any other ``BaseException`` (``SystemExit`` from a signal handler, a timeout library's
    ``FunctionTimedOut`` or gevent's ``Timeout`` thrown into the call, ``asyncio.CancelledError``)
    belongs to the caller, who may know it by identity (``except Timeout as t: if t is not mine``),
    and some cannot be built again (trio's ``Cancelled``): the same instance is re-raised
    (``stripped``), with the frames below cleared of their locals, no traceback below this frame
    and no chain.
    """
    @functools.wraps(function)
    def boundary(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except QwenOpsError as exc:
            error: BaseException = detached(exc)
        except KeyboardInterrupt:
            error = KeyboardInterrupt()
        except TypeError as exc:
            error = _call_error(exc)
        except Exception as exc:
            error = QwenOpsError(bug_message(exc), INTERNAL)
        except BaseException as exc:  # noqa: B036 - re-raised below, as it is, without what it carried
            error = stripped(exc)
        del args, kwargs  # the caller's arguments (a Settings, an env mapping) stay out of the traceback
        raise error

    return boundary


class ArgumentTypeError(TypeError):
    """An argument of the wrong type given to a public function (``wrong_type``): the caller's mistake,
    which ``public`` raises as a plain, fresh ``TypeError`` with this message."""


def wrong_type(name: str, expected: str, value: object) -> ArgumentTypeError:
    """``<name> must be <expected>, not <type>``: names the parameter and the type, never the value."""
    return ArgumentTypeError(f"{name} must be {expected}, not {type(value).__name__}")


def _call_error(exc: TypeError) -> BaseException:
    """A call the function's parameters could not take (a missing or unknown argument, or one of the wrong
    type: ``wrong_type``) is the caller's mistake: a ``TypeError`` with Python's or ``wrong_type``'s
    message (names only, never a value), fresh. Any other ``TypeError`` from inside is a bug, reported
    as one. The binding failed in ``boundary``'s frame when its traceback goes no further."""
    if isinstance(exc, ArgumentTypeError) or (exc.__traceback__ is not None and exc.__traceback__.tb_next is None):
        return TypeError(str(exc))
    return QwenOpsError(bug_message(exc), INTERNAL)


def stripped(exc: BaseException) -> BaseException:
    """``exc`` itself without what it carried from below: the finished frames of its traceback cleared of
    their locals, then no traceback, no ``__cause__`` and no ``__context__`` (the chain is dropped, not
    cleared: an exception in it may be the caller's own)."""
    tb = exc.__traceback__
    while tb is not None:
        try:
            tb.tb_frame.clear()
        except RuntimeError:
            pass  # a frame still running (this boundary's own): it holds nothing from below
        tb = tb.tb_next
    exc.__traceback__ = None
    exc.__cause__ = None
    exc.__context__ = None
    return exc
