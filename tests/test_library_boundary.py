"""The library inside the user's process: no secret in an exception, its chain, its frames' locals, or any repr
(traceback with locals, loguru, Sentry), whatever entry point fails."""

from __future__ import annotations

import functools
import io
import json
import os
import sys
import traceback

import pytest

from conftest import (
    CANARY_KEY,
    CANARY_OSS_SECRET,
    MODEL,
    leaks,
    oss_env,
    sandbox_env,
)
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.settings import Settings


def _texts(value, depth: int = 0):
    """Every string reachable from a local: containers walked, other objects by their repr."""
    if depth > 5:
        return
    if isinstance(value, (str, bytes)):
        yield value if isinstance(value, str) else value.decode("latin-1")
        if type(value) not in (str, bytes):
            yield repr(value)
    elif isinstance(value, dict):
        for k, v in list(value.items()):
            yield from _texts(k, depth + 1)
            yield from _texts(v, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in list(value):
            yield from _texts(item, depth + 1)
    else:
        yield repr(value)


def _chain(exc: BaseException):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _everything_shown(exc: BaseException) -> str:
    """The exception as every tool a user might run shows it: with locals, frame by frame, via loguru."""
    parts = ["".join(traceback.TracebackException(type(exc), exc, exc.__traceback__, capture_locals=True).format())]
    for link in _chain(exc):
        parts += [str(link), repr(link), repr(link.args)]
        tb = link.__traceback__
        while tb is not None:
            for name, value in tb.tb_frame.f_locals.items():
                parts.append(name)
                parts.extend(_texts(value))
            tb = tb.tb_next
    from loguru import logger

    sink = io.StringIO()
    logger.remove()   # the default handler would print to stderr
    handler = logger.add(sink, diagnose=True, backtrace=True, colorize=False)
    try:
        try:
            raise exc
        except BaseException:
            logger.exception("failed")
    finally:
        logger.remove(handler)
        logger.add(sys.stderr)
    parts.append(sink.getvalue())
    assert "QwenOpsError" in parts[-1]
    from sentry_sdk.consts import DEFAULT_OPTIONS
    from sentry_sdk.utils import event_from_exception

    options = dict(DEFAULT_OPTIONS, include_local_variables=True, max_value_length=100000)
    event, _ = event_from_exception((type(exc), exc, exc.__traceback__), client_options=options)
    assert event["exception"]["values"][-1]["stacktrace"]["frames"][-1]["vars"]
    parts.append(json.dumps(event, default=repr))
    return "\n".join(parts)


def _raised(call):
    """The error ``call`` raises, caught in a frame that holds nothing but ``call``."""
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - the exception is what is examined
        return exc
    raise AssertionError("no exception")


def _entry_points(box, env, project) -> list:
    from qianwen_ops import api_settings, resolve_file, upload_file, upload_many
    from qianwen_ops.probe import probe_regions, run_probe

    (project / "f.png").write_bytes(b"a picture")
    rejected = Settings.from_process(cwd=project, env=dict(sandbox_env(env, box), DASHSCOPE_API_KEY=CANARY_KEY))
    oss_wrong = Settings.from_process(cwd=project, env=dict(
        sandbox_env(env, box), QWEN_TMP_OSS_BUCKET=box.info["oss_bucket"], QWEN_TMP_OSS_REGION=box.info["oss_region"],
        QWEN_TMP_OSS_ENDPOINT=box.info["oss_endpoint"], QWEN_TMP_OSS_AK_ID=box.info["oss_access_key_id"],
        QWEN_TMP_OSS_AK_SECRET=CANARY_OSS_SECRET, DASHSCOPE_API_KEY=CANARY_KEY))
    bad_host = Settings.from_process(cwd=project, env=dict(env, DASHSCOPE_API_KEY=CANARY_KEY, QWEN_BASE_URL="ftp://x"))
    path = str(project / "f.png")

    def outcome_error():
        raise upload_many([path], MODEL, settings=rejected, use_cache=False)[0].error

    return [
        ("resolve_file 401", functools.partial(resolve_file, path, MODEL, settings=rejected, use_cache=False)),
        ("upload_file 401", functools.partial(upload_file, path, MODEL, settings=rejected, use_cache=False)),
        ("upload_file custom OSS 403", functools.partial(upload_file, path, MODEL, settings=oss_wrong,
                                                        use_cache=False)),
        ("upload_many outcome", outcome_error),
        ("api_settings().headers, Token Plan key", lambda: api_settings(cwd=project).headers),
        ("api_settings().api_key, Token Plan key", lambda: api_settings(cwd=project).api_key),
        ("api_settings() bad host", lambda: api_settings(cwd=project, env={"QWEN_BASE_URL": "ftp://x",
                                                                           "DASHSCOPE_API_KEY": CANARY_KEY})),
        ("run_probe bad host", functools.partial(run_probe, bad_host)),
        ("probe_regions, a bug inside", functools.partial(probe_regions, object())),
    ]


def test_no_secret_survives_in_exceptions_chains_or_frames(sb, env, project, monkeypatch):
    monkeypatch.chdir(project)
    for name in [k for k in os.environ if k.startswith(("DASHSCOPE_", "QIANWEN_", "QWEN_", "OSS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-sp-" + CANARY_KEY[3:])   # a Token Plan key: headers refuse it
    checked = []
    for name, call in _entry_points(sb, env, project):
        exc = _raised(call)
        assert isinstance(exc, QwenOpsError), (name, exc)
        assert exc.__traceback__ is not None and exc.__cause__ is None and exc.__context__ is None, name
        shown = _everything_shown(exc)
        assert leaks(shown, (CANARY_KEY, CANARY_OSS_SECRET)) == [], (name, leaks(shown))
        checked.append((name, exc.exit_code))
    codes = dict(checked)
    assert codes["resolve_file 401"] == 5 and codes["upload_file custom OSS 403"] == 5
    assert codes["api_settings().headers, Token Plan key"] == 4 and codes["run_probe bad host"] == 9
    assert codes["api_settings() bad host"] == 9 and codes["probe_regions, a bug inside"] == 1


def test_upload_many_errors_carry_no_traceback(sb, env, project):
    from qianwen_ops.uploads import upload_many

    (project / "f.png").write_bytes(b"a picture")
    settings = Settings.from_process(cwd=project, env=dict(sandbox_env(env, sb), DASHSCOPE_API_KEY=CANARY_KEY))
    for outcome in upload_many([str(project / "f.png"), "missing.png"], MODEL, settings=settings, use_cache=False):
        error = outcome.error
        assert error is not None and error.__traceback__ is None
        assert error.__cause__ is None and error.__context__ is None


def test_header_values_hide_in_any_repr():
    from qianwen_ops.redaction import Concealed

    value = Concealed(f"Bearer {CANARY_KEY}")
    headers = {"Authorization": value}
    assert leaks(repr(headers) + repr([value]) + f"{value!r}", (CANARY_KEY,)) == []
    assert str(value) == f"Bearer {CANARY_KEY}" and f"{value}" == str(value) and value.encode() == str(value).encode()
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(value)


def test_api_settings_headers_hold_a_concealed_value(env, project, monkeypatch):
    from qianwen_ops import api_settings

    monkeypatch.chdir(project)
    monkeypatch.setenv("DASHSCOPE_API_KEY", CANARY_KEY)
    monkeypatch.delenv("QWEN_BASE_URL", raising=False)
    settings = api_settings(cwd=project)
    assert leaks(repr(settings.headers) + repr(settings.api_key), (CANARY_KEY,)) == []
    assert settings.headers["Authorization"] == f"Bearer {CANARY_KEY}" and settings.api_key == CANARY_KEY


class FunctionTimedOut(BaseException):
    """As func_timeout defines it: thrown into the call by a timeout library, not an Exception."""


def _frames(exc: BaseException) -> list:
    found, tb = [], exc.__traceback__
    while tb is not None:
        found.append(tb.tb_frame)
        tb = tb.tb_next
    return found


@pytest.mark.parametrize("raised", [FunctionTimedOut("timed out after 1 s"), SystemExit(3)],
                         ids=["FunctionTimedOut", "SystemExit"])
@pytest.mark.parametrize("mode", ["temporary storage", "custom OSS with STS"])
def test_a_base_exception_thrown_into_an_upload_leaves_without_the_frames_below(sb, env, project, monkeypatch,
                                                                               raised, mode):
    """The caller's own exception comes back as the same instance (a timeout library knows its own by identity),
    with no frame below the boundary, no chain, and no local of the frames it crossed left holding a secret: the
    request's Authorization header (the key; custom OSS: the V4 signature) and the STS token."""
    from qianwen_ops import http_client, resolve_file

    info = sb.info
    (project / "f.png").write_bytes(b"a picture")
    variables = (dict(sandbox_env(env, sb), DASHSCOPE_API_KEY=CANARY_KEY) if mode == "temporary storage" else
                 oss_env(env, sb, pair="sts", DASHSCOPE_API_KEY=CANARY_KEY))
    settings = Settings.from_process(cwd=project, env=variables)
    below: list = []

    def interrupted(self, *args, **kwargs):
        import sys

        below.extend(f.f_code.co_name for f in _frame_chain(sys._getframe()))
        raise raised

    monkeypatch.setattr(http_client._Connection, "endheaders", interrupted)
    exc = _raised(functools.partial(resolve_file, str(project / "f.png"), MODEL, settings=settings, use_cache=False))
    assert exc is raised and "request" in below                        # thrown from under the HTTP request
    assert exc.__cause__ is None and exc.__context__ is None
    frames = _frames(exc)
    assert [f.f_code.co_name for f in frames] == ["_raised", "boundary"]  # nothing below errors.public
    shown = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    shown += "".join(t for f in frames for value in f.f_locals.values() for t in _texts(value))
    secrets = (CANARY_KEY, info["oss_sts_access_key_secret"], info["oss_session_token"])
    assert leaks(shown, secrets) == [] and "OSS4-HMAC-SHA256" not in shown and "Bearer" not in shown


def _frame_chain(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back


def test_settings_keep_the_environment_out_of_reach(env, project):
    """vars(), __dict__, pickle and copy are how an app logs or ships an object: none of them gets a value."""
    import copy
    import pickle

    (project / ".env").write_text(f"QWEN_TMP_OSS_AK_SECRET={CANARY_OSS_SECRET}\n")
    settings = Settings.from_process(cwd=project, env=dict(env, DASHSCOPE_API_KEY=CANARY_KEY))
    assert settings.get("QWEN_TMP_OSS_AK_SECRET").value == CANARY_OSS_SECRET    # the .env has been read
    with pytest.raises(TypeError):
        vars(settings)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError):
            attempt(settings)
    shown = repr(settings) + "".join(repr(getattr(settings, name, None)) for name in Settings.__slots__)
    assert leaks(shown, (CANARY_KEY, CANARY_OSS_SECRET)) == [], shown


WRONG_TYPES = {
    "api_settings(cwd=123)": (lambda q, f: q.api_settings(cwd=123), "cwd must be a folder"),
    "api_settings(env=[...])": (lambda q, f: q.api_settings(env=["HOME"]), "env must be a mapping"),
    "upload_many('abc')": (lambda q, f: q.upload_many("abc", inline=True), "sources must be a list of paths or URLs, "
                                                                          "not str"),
    "upload_many([None])": (lambda q, f: q.upload_many([f, None], "qwen-vl-plus"), r"sources\[1\] must be a path"),
    "resolve_file(settings=42)": (lambda q, f: q.resolve_file(f, "qwen-vl-plus", settings=42), "settings must be"),
    "resolve_file(123)": (lambda q, f: q.resolve_file(123, "qwen-vl-plus"), "source must be a path"),
    "upload_file(b'...')": (lambda q, f: q.upload_file(os.fsencode(f), "qwen-vl-plus"), "path must be a path"),
    "resolve_file(model=5)": (lambda q, f: q.resolve_file(f, 5), "model must be a model name"),
    "upload_many(timeout='5')": (lambda q, f: q.upload_many([f], "qwen-vl-plus", timeout="5"), "timeout must be"),
    "upload_many(progress=1)": (lambda q, f: q.upload_many([f], "qwen-vl-plus", progress=1), "progress must be"),
}


@pytest.mark.parametrize("name", WRONG_TYPES)
def test_an_argument_of_the_wrong_type_is_a_typeerror_naming_it(name, env, project, monkeypatch):
    """A caller's mistake is told as one (a TypeError naming the parameter and the type, never the value), not
    "internal error ... please report it", and not taken as input: a str as upload_many's sources once
    became one upload per character."""
    import qianwen_ops

    monkeypatch.setattr(os, "environ", dict(env))
    call, message = WRONG_TYPES[name]
    with pytest.raises(TypeError, match=message) as raised:
        call(qianwen_ops, str(project / "f.png"))
    assert type(raised.value) is TypeError and raised.value.__cause__ is None and raised.value.__context__ is None
    last = raised.value.__traceback__
    while last.tb_next is not None:
        last = last.tb_next
    assert last.tb_frame.f_code.co_name == "boundary"  # raised at the boundary, no frame from below


def test_paths_are_inputs_as_strings_are(env, project):
    from pathlib import Path

    import qianwen_ops

    (project / "p.txt").write_text("hello")
    settings = Settings.from_process(cwd=project, env=env)
    [outcome] = qianwen_ops.upload_many((Path(project / "p.txt"),), settings=settings, inline=True)
    assert outcome.error is None and outcome.source == str(project / "p.txt") and outcome.upload.url.startswith("data:")


def test_a_call_with_wrong_arguments_is_told_as_python_tells_it(env, project):
    """A missing or unknown argument is the caller's mistake: a plain TypeError naming the parameter (never
    "internal error ... please report it"), with nothing from below the boundary; a TypeError raised
    inside a function is still a bug, reported as one."""
    import qianwen_ops
    from qianwen_ops import errors

    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'") as raised:
        qianwen_ops.resolve_file(str(project / "f.png"), "qwen-vl-plus", bogus=1)
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    with pytest.raises(TypeError, match="source"):
        qianwen_ops.resolve_file()

    @errors.public
    def broken():
        return len(5)

    with pytest.raises(QwenOpsError, match=r"internal error \(TypeError\)"):
        broken()
