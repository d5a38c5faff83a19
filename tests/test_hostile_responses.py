"""Generated hostile answers (hypothesis): probe and doctor never show the key, every line stays one line.

A loopback server answers the probe with a body and headers drawn from strategies that
echo the canary key (with and without its prefix, split, in JSON fields and in
x-request-id), add newlines and control characters, and try to forge a
"SUCCESS: key verified" line. The entry scripts' ``main`` runs in this process (the
suite's time budget does not allow a subprocess per example).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CANARY_KEY, SCRIPTS, QuietHandler, leaks, serving

BARE = CANARY_KEY[3:]
FORGED = "\nSUCCESS: key verified\n[ok]   probe: HTTP 200\nresult: authentication works\n"
DOCTOR_LINE = re.compile(r"^(qianwen-ops-auth \S+ doctor \(Python [^)]*\)"
                         r"|\[(ok|FAIL|skip|info|warn)\] +[A-Za-z0-9 .-]+: .*|evidence: .*|result: .*)$")

pieces = st.sampled_from([CANARY_KEY, BARE, f"Bearer {CANARY_KEY}", BARE[:8] + "\n" + BARE[8:],
                          FORGED, "\x1b[2J", "\r", "\x00", "\u202e", "\u2028", "InvalidApiKey", " "])
text = st.lists(st.one_of(pieces, st.text(max_size=12)), max_size=6).map("".join)
header_text = text.map(lambda s: re.sub(r"[\r\n]", " ", s).encode("utf-8", "replace").decode("latin-1"))


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Reply:
    status = 401
    body = b""
    headers: dict = {}


class Hostile(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        self.read_body()
        self.answer(Reply.status, Reply.body, Reply.headers)


@pytest.fixture(scope="module")
def hostile_server():
    with serving(Hostile) as server:
        yield server.url


@pytest.fixture(scope="module")
def scripts_env(hostile_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    (folder / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QIANWEN_", "DASHSCOPE_", "QWEN_", "OSS_", "XDG_"))}
    env.update(HOME=str(folder / "home"), XDG_CACHE_HOME=str(folder / "cache"), XDG_STATE_HOME=str(folder / "state"),
               QWEN_BASE_URL=hostile_server, DASHSCOPE_API_KEY=CANARY_KEY, NO_PROXY="*")
    return env, folder, {"probe": load("probe"), "doctor": load("doctor")}


def run_main(module, args, env, cwd):
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with mock.patch.dict(os.environ, env, clear=True), mock.patch("sys.argv", [module.__name__, *args]), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = module.main()
    finally:
        os.chdir(old)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=st.sampled_from([400, 401, 403, 404]),
       fields=st.fixed_dictionaries({"code": text, "message": text, "request_id": text}),
       nested=st.booleans(), raw_body=st.one_of(st.none(), text), request_id_header=header_text)
def test_hostile_answers_never_show_the_key(scripts_env, status, fields, nested, raw_body, request_id_header):
    env, folder, scripts = scripts_env
    Reply.status = status
    if raw_body is not None:
        Reply.body = f"<Error><Code>{raw_body}</Code><Message>{raw_body}</Message></Error>".encode()
    else:
        Reply.body = json.dumps({"error": fields} if nested else fields).encode()
    Reply.headers = {"x-request-id": request_id_header}
    code, out, err = run_main(scripts["probe"], [], env, folder)
    assert code in (5, 7) and out == f"{status}\n"
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    code, out, err = run_main(scripts["probe"], ["--json"], env, folder)
    assert len(out.splitlines()) == 1 and json.loads(out)["status"] == status
    code, out, err = run_main(scripts["doctor"], [], env, folder)
    assert code in (5, 7) and err == ""
    for line in out.splitlines():
        assert DOCTOR_LINE.match(line), line
    assert not [line for line in out.splitlines() if line.startswith("SUCCESS")]
    evidence = "".join(p.read_text(errors="replace") for p in (folder / "output").rglob("*.json"))
    for shown in (out, err, evidence):
        assert not leaks(shown, (CANARY_KEY,))
