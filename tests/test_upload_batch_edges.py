"""Batch edges: exactly-once after a lost answer, odd names, a key typed as a file name, Ctrl-C, server numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import CANARY_KEY, SCRIPTS, interrupt_when, leaks, sandbox_env
from qianwen_ops.credentials import Secret
from qianwen_ops.endpoints import resolve_endpoint
from qianwen_ops.errors import HTTP_ERROR, QwenOpsError
from qianwen_ops.http_client import Response
from qianwen_ops.settings import Settings
from qianwen_ops.temp_storage import TempStorage
from qianwen_ops.uploads import resolve_file

MODEL = "qwen-vl-plus"


def objects(box) -> dict:
    return {o["key"]: o for o in box.stats()["objects"]}


def test_lost_answer_then_409_on_the_same_key_is_success_not_a_second_copy(sb, env, project):
    path = project / "once.png"
    path.write_bytes(os.urandom(3000))
    before_objects, before = objects(sb), sb.counts()["postObject"]
    sb.fault(route="postObject", action="lose_answer", count=1)
    url = resolve_file(str(path), MODEL, settings=Settings.from_process(cwd=project, env=sandbox_env(env, sb)),
                       use_cache=False)
    new = {k: o for k, o in objects(sb).items() if k not in before_objects}
    assert sb.counts()["postObject"] == before + 2          # the lost attempt and its retry (409)
    assert list(new) == [url[len("oss://"):]]                # one object, and it is the one we return


def _run(args: list, env: dict, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "upload_file.py"), *args], env=env, cwd=cwd,
                          capture_output=True, timeout=timeout)


def test_non_utf8_and_control_character_names_do_not_stop_the_batch(sb, env, project):
    bad = os.fsencode(str(project)) + b"/bad\xff\xfe.png"
    with open(bad, "wb") as handle:
        handle.write(b"not utf-8 name")
    (project / "ctl\x1b[31mred\x07.png").write_bytes(b"escape sequence name")
    (project / "ok.png").write_bytes(b"fine")
    args = [bad, os.fsencode("ctl\x1b[31mred\x07.png"), b"ok.png", b"missing\x1b[2J.png", b"--model", MODEL.encode()]
    for extra in ([], [b"--json"]):
        done = _run(args + extra, sandbox_env(env, sb), project)
        out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
        assert done.returncode == 10, err                    # the missing file; the other three uploaded
        assert "\x1b" not in out + err and "\x07" not in out + err and "Traceback" not in err
        lines = out.splitlines()
        assert len(lines) == (4 if extra else 3)
        urls = [json.loads(line).get("url") for line in lines] if extra else lines
        assert sum(1 for u in urls if u and u.startswith("oss://")) == 3
        assert "missing\\x1b[2J.png" in err
    evidence = (project / "output" / "qianwen-ops-auth" / "uploads.jsonl").read_bytes().decode("utf-8")
    sources = [json.loads(line)["source"] for line in evidence.splitlines()]
    assert "\x1b" not in "".join(sources) and any(s.endswith("bad\\udcff\\udcfe.png") for s in sources)


def test_a_key_given_as_a_file_name_is_refused_without_echo(sb, env, project):
    (project / "ok.png").write_bytes(b"fine")
    done = _run([CANARY_KEY, "ok.png", "--model", MODEL, "--json"], sandbox_env(env, sb), project)
    out, err = done.stdout.decode(), done.stderr.decode()
    evidence = (project / "output" / "qianwen-ops-auth" / "uploads.jsonl").read_text()
    assert done.returncode == 10 and "looks like an API key" in err
    assert leaks(out + err + evidence) == []
    assert json.loads(out.splitlines()[1])["url"].startswith("oss://")


def test_ctrl_c_with_concurrency_returns_within_two_seconds(sb, env, project):
    for i in range(8):
        (project / f"slow{i}.bin").write_bytes(os.urandom(200) + bytes([i]))
    sb.fault(route="postObject", status=503, delay_s=3, count=200)  # slow failures, then retries with backoff
    before = sb.counts()["postObject"]
    code, _, err, took = interrupt_when(
        [SCRIPTS / "upload_file.py", *[f"slow{i}.bin" for i in range(8)], "--model", MODEL, "--concurrency", "4",
         "--no-cache"], lambda: sb.counts()["postObject"] >= before + 4, sandbox_env(env, sb), project)
    assert code == 130 and took < 2.0, (took, err)
    assert "Traceback" not in err and "interrupted" in err


class _OnePolicy:
    """A stand-in HTTP session that answers getPolicy with the given data."""

    def __init__(self, data: dict):
        self.body = json.dumps({"data": data}).encode()

    def request(self, method, url, headers=None, body=None) -> Response:
        return Response(200, {}, self.body)


@pytest.mark.parametrize("field,value", [("max_file_size_mb", "lots"), ("max_file_size_mb", -5),
                                         ("max_file_size_mb", "nan"), ("max_file_size_mb", [1]),
                                         ("expire_in_seconds", "soon"), ("expire_in_seconds", 1e300)])
def test_unusable_numbers_from_the_server_are_a_clean_error(field, value):
    data = {"policy": "p", "signature": "s", "upload_dir": "d", "upload_host": "http://127.0.0.1:9",
            "oss_access_key_id": "id", field: value}
    settings = Settings.from_process(cwd=None, env={"QWEN_BASE_URL": "http://127.0.0.1:9"})
    storage = TempStorage(resolve_endpoint(settings), Secret("sk-" + "1" * 32), _OnePolicy(data))
    with pytest.raises(QwenOpsError) as caught:
        storage.max_bytes(MODEL)
    assert caught.value.exit_code == HTTP_ERROR and field in caught.value.message and str(value) not in \
        caught.value.message.replace(field, "")


def test_numeric_strings_from_the_server_are_accepted():
    data = {"policy": "p", "signature": "s", "upload_dir": "d", "upload_host": "http://127.0.0.1:9",
            "oss_access_key_id": "id", "max_file_size_mb": "2.5", "expire_in_seconds": 600}
    settings = Settings.from_process(cwd=None, env={"QWEN_BASE_URL": "http://127.0.0.1:9"})
    storage = TempStorage(resolve_endpoint(settings), Secret("sk-" + "1" * 32), _OnePolicy(data))
    assert storage.max_bytes(MODEL) == int(2.5 * 1024 * 1024)
