"""DashScope temporary storage: a policy's host, fields and numbers checked before use, exactly-once uploads after
a lost answer, and getPolicy within a few timeouts."""

from __future__ import annotations

import json
import os
import time

import pytest

from conftest import (
    MODEL,
    run_script,
    sandbox_env,
    sandbox_settings,
)
from qianwen_ops.credentials import Secret
from qianwen_ops.endpoints import resolve_endpoint
from qianwen_ops.errors import HTTP_ERROR, QwenOpsError
from qianwen_ops.http_client import DEFAULT_RETRY, Response
from qianwen_ops.local_files import check_file
from qianwen_ops.settings import Settings
from qianwen_ops.temp_storage import TempStorage
from qianwen_ops.uploads import resolve_file


class _PolicyServer:
    """A stand-in HTTP session: getPolicy answers ``data``; every request is recorded."""

    def __init__(self, data: dict):
        self.body = json.dumps({"data": data}).encode()
        self.requests = []

    def request(self, method, url, headers=None, body=None) -> Response:
        self.requests.append((method, url))
        if method == "GET":
            return Response(200, {}, self.body)
        for _ in body.chunks():
            pass
        return Response(200, {}, b"")


GOOD_POLICY = {"policy": "cG9saWN5", "signature": "c2ln", "upload_dir": "dashscope-instant/abc/2026-11-21/x",
               "upload_host": "https://dashscope-file-mgr.oss-cn-beijing.aliyuncs.com",
               "oss_access_key_id": "LTAI5tExample", "x_oss_object_acl": "private", "x_oss_forbid_overwrite": "true"}


def _upload_with(tmp_path, base_url: str | None, **changes):
    server = _PolicyServer(dict(GOOD_POLICY, **changes))
    env = {"QWEN_BASE_URL": base_url} if base_url else {}
    storage = TempStorage(resolve_endpoint(Settings.from_process(cwd=None, env=env)), Secret("sk-" + "1" * 32),
                          server)
    path = tmp_path / "pic.png"
    path.write_bytes(b"picture")
    return server, (lambda: storage.upload(check_file(path), MODEL))


@pytest.mark.parametrize("base_url,host", [
    (None, "http://files.attacker.example/up"), (None, "https://files.attacker.example"),
    (None, "http://dashscope-file-mgr.oss-cn-beijing.aliyuncs.com"),     # OSS, but plain http
    (None, "https://oss.aliyuncs.com.attacker.example"), (None, "http://127.0.0.1:8999/bucket"),
    (None, "https://127.0.0.1/bucket"), ("http://127.0.0.1:9", "https://[::2]/bucket"),
    (None, "ftp://x.aliyuncs.com"), (None, 42)])
def test_an_untrusted_upload_host_is_refused_and_nothing_is_uploaded(tmp_path, base_url, host):
    server, upload = _upload_with(tmp_path, base_url, upload_host=host)
    with pytest.raises(QwenOpsError) as caught:
        upload()
    message = caught.value.message
    assert caught.value.exit_code == HTTP_ERROR and "upload" in message and "\n" not in message
    assert [method for method, _ in server.requests] == ["GET"]          # getPolicy only: nothing uploaded
    if isinstance(host, str) and "attacker" in host:
        assert "attacker.example" in message


@pytest.mark.parametrize("base_url,host", [
    (None, "https://dashscope-file-mgr.oss-cn-beijing.aliyuncs.com"),
    (None, "https://oss-cn-beijing.aliyuncs.com/some-bucket"),
    ("http://127.0.0.1:9", "http://127.0.0.1:8999/dashscope-sandbox-temp"),   # the sandbox: loopback API only
    ("http://localhost:9", "https://localhost:8999")])
def test_oss_over_https_and_loopback_for_a_loopback_api_are_accepted(tmp_path, base_url, host):
    server, upload = _upload_with(tmp_path, base_url, upload_host=host)
    url = upload()[0]
    assert url.startswith("oss://dashscope-instant/abc/2026-11-21/x/") and server.requests[-1] == ("POST", host)


@pytest.mark.parametrize("field,value", [
    ("upload_dir", "a\nb"), ("upload_dir", "ok\r\nSUCCESS"), ("upload_dir", "../up"), ("upload_dir", "a/../b"),
    ("upload_dir", "x" * 600), ("upload_dir", "dir\u202egnp.exe"), ("upload_dir", ""), ("upload_dir", "/abs"),
    ("upload_dir", "with space"), ("upload_dir", ["list"]), ("signature", "s\r\nX-Evil: 1"),
    ("policy", "p\x00"), ("oss_access_key_id", 7), ("x_oss_object_acl", "public-read\n")])
def test_policy_fields_with_control_characters_or_bad_shapes_are_refused(tmp_path, field, value):
    server, upload = _upload_with(tmp_path, None, **{field: value})
    with pytest.raises(QwenOpsError) as caught:
        upload()
    assert caught.value.exit_code == HTTP_ERROR and field in caught.value.message
    assert "\n" not in caught.value.message and "\u202e" not in caught.value.message
    assert [method for method, _ in server.requests] == ["GET"]


def test_a_slow_get_policy_cannot_hold_upload_past_a_few_timeouts(sb, env, project):
    (project / "pic.png").write_bytes(b"picture")
    sb.fault(route="getPolicy", delay_s=3.0, count=10)
    before = sb.counts()["getPolicy"]
    start = time.monotonic()
    done = run_script("upload_file.py", "pic.png", "--model", MODEL, "--no-cache", "--timeout", "0.5",
                      env=sandbox_env(env, sb), cwd=project)
    took = time.monotonic() - start
    assert done.code == 8 and "Traceback" not in done.err
    assert sb.counts()["getPolicy"] - before < DEFAULT_RETRY.attempts and took < 3.5, (took, done.err)


def test_lost_answer_on_a_kept_alive_connection_then_409_lands_once(sb, env, project):
    from qianwen_ops.uploads import upload_many

    for name in ("first.png", "second.png"):
        (project / name).write_bytes(os.urandom(3000))
    before, posts = sb.objects(), sb.counts()["postObject"]
    sb.fault(route="postObject", delay_s=0.001, count=1)             # the first upload goes through as usual
    sb.fault(route="postObject", action="lose_answer", count=1)      # the second lands, its answer is lost
    outcomes = upload_many([str(project / "first.png"), str(project / "second.png")], MODEL,
                           settings=sandbox_settings(env, sb, project), use_cache=False, concurrency=1)
    assert [o.error for o in outcomes] == [None, None]
    new = sorted(k for k in sb.objects() if k not in before)
    assert new == sorted(o.upload.url[len("oss://"):] for o in outcomes)   # one object each, the ones returned
    assert sb.counts()["postObject"] == posts + 3                            # first, second (lost), its retry (409)


def test_lost_answer_then_409_on_the_same_key_is_success_not_a_second_copy(sb, env, project):
    path = project / "once.png"
    path.write_bytes(os.urandom(3000))
    before_objects, before = sb.objects(), sb.counts()["postObject"]
    sb.fault(route="postObject", action="lose_answer", count=1)
    url = resolve_file(str(path), MODEL, settings=Settings.from_process(cwd=project, env=sandbox_env(env, sb)),
                       use_cache=False)
    new = {k: o for k, o in sb.objects().items() if k not in before_objects}
    assert sb.counts()["postObject"] == before + 2          # the lost attempt and its retry (409)
    assert list(new) == [url[len("oss://"):]]                # one object, and it is the one we return


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
