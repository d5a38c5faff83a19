"""The sandbox judged by the official clients (dashscope SDK, oss2, alibabacloud-oss-v2) and by its refusals."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import oss2
import pytest

from conftest import MODEL, RESOLVE, chat, wait_until


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img.png"
    path.write_bytes(os.urandom(20000))
    return path


# ------------------------------------------------------------------ dashscope SDK

def test_dashscope_sdk_upload_then_chat_gets_sha(sb, image):
    from dashscope.utils.oss_utils import OssUtils

    url, cert = OssUtils.upload(model=MODEL, file_path=str(image), api_key=sb.api_key,
                                base_address=sb.base_url + "/api/v1")
    assert url.startswith("oss://") and url.endswith("/img.png")
    status, body = chat(sb, [url], RESOLVE)
    assert status == 200 and f"sha256={sha(image)}" in body["choices"][0]["message"]["content"]
    status, body = chat(sb, [url])
    assert status == 400 and body["code"] == "invalid_parameter_error"
    other = image.parent / "other"
    other.mkdir()
    (other / "img.png").write_bytes(b"second file, same basename")
    from dashscope.common.error import UploadFileException

    with pytest.raises(UploadFileException, match="FileAlreadyExists"):
        OssUtils.upload(model=MODEL, file_path=str(other / "img.png"), api_key=sb.api_key, upload_certificate=cert)


@pytest.mark.slow
def test_dashscope_cli_upload(sb, image, env):
    cli = os.path.join(os.path.dirname(sys.executable), "dashscope")
    done = subprocess.run([cli, "oss", "upload", "--file", str(image), "--model", MODEL,
                           "--base-url", sb.base_url + "/api/v1"], env=dict(env, DASHSCOPE_API_KEY=sb.api_key),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    url = next(w for w in done.stdout.split() if w.startswith("oss://"))
    status, body = chat(sb, [url], RESOLVE)
    assert status == 200 and sha(image) in body["choices"][0]["message"]["content"]


def test_dashscope_native_multimodal_call_with_local_file(sb, image):
    import dashscope
    from dashscope import MultiModalConversation

    old = dashscope.base_http_api_url
    dashscope.base_http_api_url = sb.base_url + "/api/v1"
    try:
        reply = MultiModalConversation.call(model=MODEL, api_key=sb.api_key, messages=[
            {"role": "user", "content": [{"image": f"file://{image}"}, {"text": "hi"}]}])
    finally:
        dashscope.base_http_api_url = old
    assert reply.status_code == 200
    assert sha(image) in reply.output.choices[0].message.content[0]["text"]


def test_oss_url_bound_to_model_and_account(make_sandbox, image):
    from dashscope.utils.oss_utils import OssUtils

    sb = make_sandbox()  # this test moves the clock: its own sandbox
    url, _ = OssUtils.upload(model=MODEL, file_path=str(image), api_key=sb.api_key,
                             base_address=sb.base_url + "/api/v1")
    assert chat(sb, [url], RESOLVE, model="qwen-vl-max")[0] == 400
    assert chat(sb, [url], RESOLVE, key=sb.info["other_api_key"])[0] == 400
    sb.advance_clock(48 * 3600 + 60)
    status, body = chat(sb, [url], RESOLVE)
    assert status == 400 and "expired" in body["message"]


def test_chat_auth_and_model_errors(sb):
    assert chat(sb, [], key="sk-unknown1")[1]["code"] == "InvalidApiKey"
    status, body = chat(sb, [], key=sb.info["token_plan_key"])
    assert status == 401 and body["message"] == "Invalid API-key provided."
    req = urllib.request.Request(sb.base_url + "/compatible-mode/v1/chat/completions", b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    body = json.loads(info.value.read())
    assert info.value.code == 401 and body["message"] == "No API-key provided." and body["request_id"]
    status, body = chat(sb, [], model="qwen-nonexistent")
    assert status == 404 and body["code"] == "ModelNotFound"


# ------------------------------------------------------------------ oss2 and the v2 SDK

@pytest.mark.parametrize("version", ["v1", "v4"])
def test_oss2_put_get_presign_resumable(sb, tmp_path, version):
    info = sb.info
    if version == "v1":
        bucket = oss2.Bucket(oss2.Auth(info["oss_access_key_id"], info["oss_access_key_secret"]),
                             info["oss_endpoint"], info["oss_bucket"])
    else:
        bucket = oss2.Bucket(oss2.AuthV4(info["oss_access_key_id"], info["oss_access_key_secret"]),
                             info["oss_endpoint"], info["oss_bucket"], region=info["oss_region"])
    key = f"dir/ünï cöde + plus %2F {version}.bin"
    data = os.urandom(100000)
    bucket.put_object(key, data)
    assert bucket.get_object(key).read() == data
    assert bucket.head_object(key).content_length == len(data)
    with urllib.request.urlopen(bucket.sign_url("GET", key, 60), timeout=10) as resp:
        assert resp.read() == data
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    before = sb.counts()["oss"]
    oss2.resumable_upload(bucket, f"big-{version}.bin", str(big), multipart_threshold=1024 * 1024,
                          part_size=1024 * 1024, num_threads=2, store=oss2.ResumableStore(root=str(tmp_path)))
    assert bucket.get_object(f"big-{version}.bin").read() == big.read_bytes()
    assert sb.counts()["oss"] - before >= 6  # initiate, list parts, 4 parts, complete
    listing = sb.objects()
    assert listing[f"big-{version}.bin"]["parts"] == 4
    bucket.delete_object(key)
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object(key)


def test_oss2_sts_token_required(sb):
    info = sb.info
    good = oss2.Bucket(oss2.StsAuth(info["oss_sts_access_key_id"], info["oss_sts_access_key_secret"],
                                    info["oss_session_token"]), info["oss_endpoint"], info["oss_bucket"])
    good.put_object("sts.txt", b"token ok")
    bad = oss2.Bucket(oss2.StsAuth(info["oss_sts_access_key_id"], info["oss_sts_access_key_secret"], "wrong-token"),
                      info["oss_endpoint"], info["oss_bucket"])
    with pytest.raises(oss2.exceptions.OssError) as err:
        bad.get_object("sts.txt")
    assert err.value.code == "InvalidSecurityToken"


def test_alibabacloud_oss_v2_presign(sb):
    import alibabacloud_oss_v2 as ossv2

    info = sb.info
    oss2.Bucket(oss2.Auth(info["oss_access_key_id"], info["oss_access_key_secret"]), info["oss_endpoint"],
                info["oss_bucket"]).put_object("v2.txt", b"v2 presign")
    cfg = ossv2.config.load_default()
    cfg.credentials_provider = ossv2.credentials.StaticCredentialsProvider(info["oss_access_key_id"],
                                                                            info["oss_access_key_secret"])
    cfg.region, cfg.endpoint, cfg.use_path_style = info["oss_region"], info["oss_endpoint"], True
    result = ossv2.Client(cfg).presign(ossv2.GetObjectRequest(bucket=info["oss_bucket"], key="v2.txt"))
    with urllib.request.urlopen(result.url, timeout=10) as resp:
        assert resp.read() == b"v2 presign"


def test_wrong_secret_and_unknown_key(sb):
    info = sb.info
    for auth, code in ((oss2.Auth(info["oss_access_key_id"], "wrong-secret"), "SignatureDoesNotMatch"),
                       (oss2.AuthV4(info["oss_access_key_id"], "wrong-secret"), "SignatureDoesNotMatch"),
                       (oss2.Auth("LTAInobody", "x"), "InvalidAccessKeyId")):
        bucket = oss2.Bucket(auth, info["oss_endpoint"], info["oss_bucket"], region=info["oss_region"])
        with pytest.raises(oss2.exceptions.OssError) as err:
            bucket.put_object("nope.txt", b"x")
        assert (err.value.status, err.value.code) == (403, code)
    missing = oss2.Bucket(oss2.Auth(info["oss_access_key_id"], info["oss_access_key_secret"]),
                          info["oss_endpoint"], "no-such-bucket")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.get_object("x")


def test_tampered_and_expired_presigned_urls(make_sandbox):
    sb = make_sandbox()  # this test moves the clock: its own sandbox
    info = sb.info
    bucket = oss2.Bucket(oss2.AuthV4(info["oss_access_key_id"], info["oss_access_key_secret"]),
                         info["oss_endpoint"], info["oss_bucket"], region=info["oss_region"])
    bucket.put_object("p.txt", b"presigned")
    url = bucket.sign_url("GET", "p.txt", 60)
    tampered = url.replace("x-oss-signature=", "x-oss-signature=0")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(tampered, timeout=10)
    assert err.value.code == 403 and b"SignatureDoesNotMatch" in err.value.read()
    other_key = url.replace("/p.txt?", "/q.txt?")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(other_key, timeout=10)
    assert err.value.code == 403
    assert chat(sb, [url])[0] == 200
    sb.advance_clock(120)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url, timeout=10)
    assert err.value.code == 403 and b"Request has expired" in err.value.read()
    status, body = chat(sb, [url])
    assert status == 400 and "403 AccessDenied" in body["message"]


# ------------------------------------------------------------------ PostObject refusals (hand-made forms)

def get_policy(box, model=MODEL) -> dict:
    req = urllib.request.Request(f"{box.base_url}/api/v1/uploads?action=getPolicy&model={model}",
                                 headers={"Authorization": f"Bearer {box.api_key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["data"]


def post_form(policy: dict, fields: list, file_bytes: bytes | None = b"data", file_first: bool = False):
    boundary = "----testboundary7"
    parts = [(k, v) for k, v in fields]
    body = b""
    file_part = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.bin"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n").encode() + (file_bytes or b"") + b"\r\n"
    if file_first and file_bytes is not None:
        body += file_part
    for name, value in parts:
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    if not file_first and file_bytes is not None:
        body += file_part
    body += f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(policy["upload_host"], body,
                                 {"Content-Type": f"multipart/form-data; boundary={boundary}"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def std_fields(grant: dict, key: str, **override) -> list:
    fields = {"OSSAccessKeyId": grant["oss_access_key_id"], "Signature": grant["signature"],
              "policy": grant["policy"], "key": key, "x-oss-object-acl": "private",
              "x-oss-forbid-overwrite": "true", "success_action_status": "200", **override}
    return list(fields.items())


def code_of(body: bytes) -> str:
    text = body.decode()
    return text.split("<Code>")[1].split("</Code>")[0]


def test_post_object_success_statuses(sb):
    policy = get_policy(sb)
    assert post_form(policy, std_fields(policy, policy["upload_dir"] + "/a.bin"))[0] == 200
    status, body = post_form(policy, std_fields(policy, policy["upload_dir"] + "/b.bin", success_action_status="201"))
    assert status == 201 and b"<PostResponse>" in body
    assert post_form(policy, std_fields(policy, policy["upload_dir"] + "/c.bin", success_action_status=""))[0] == 204
    status, body = post_form(policy, std_fields(policy, policy["upload_dir"] + "/a.bin"))
    assert (status, code_of(body)) == (409, "FileAlreadyExists")


def test_post_object_refusals(sb):
    policy = get_policy(sb)
    key = policy["upload_dir"] + "/x.bin"
    tampered = base64.b64encode(b"\x00" + base64.b64decode(policy["signature"])[1:]).decode()
    cases = [
        (std_fields(policy, key, Signature=tampered), b"d", False, 403, "SignatureDoesNotMatch"),
        (std_fields(policy, "elsewhere/x.bin"), b"d", False, 403, "AccessDenied"),
        (std_fields(policy, key, OSSAccessKeyId="LTAInobody"), b"d", False, 403, "InvalidAccessKeyId"),
        ([f for f in std_fields(policy, key) if f[0] != "key"], b"d", False, 400, "InvalidArgument"),
        (std_fields(policy, key), b"d", True, 400, "InvalidArgument"),
        (std_fields(policy, key, policy="bm90IGpzb24="), b"d", False, 403, "SignatureDoesNotMatch"),
        ([f for f in std_fields(policy, key) if f[0] != "policy"], b"d", False, 403, "AccessDenied"),
    ]
    for fields, data, first, status, code in cases:
        got_status, body = post_form(policy, fields, data, file_first=first)
        assert (got_status, code_of(body)) == (status, code), (fields, first)
    assert not [o for o in sb.stats()["objects"] if o["key"] == key]


def test_post_object_expired_policy_and_oversize(make_sandbox):
    box = make_sandbox("--max-file-mb", "1", "--policy-ttl", "60")
    policy = get_policy(box)
    status, body = post_form(policy, std_fields(policy, policy["upload_dir"] + "/big.bin"), os.urandom(1024 * 1024 + 1))
    assert (status, code_of(body)) == (400, "EntityTooLarge")
    assert post_form(policy, std_fields(policy, policy["upload_dir"] + "/ok.bin"), os.urandom(1024 * 1024))[0] == 200
    box.advance_clock(61)
    status, body = post_form(policy, std_fields(policy, policy["upload_dir"] + "/late.bin"))
    assert (status, code_of(body)) == (403, "AccessDenied") and b"Policy expired" in body


def test_get_policy_rate_limit_and_shape(make_sandbox):
    box = make_sandbox("--qps", "3")
    policy = get_policy(box)
    assert set(policy) >= {"policy", "signature", "upload_dir", "upload_host", "expire_in_seconds",
                           "max_file_size_mb", "capacity_limit_mb", "oss_access_key_id", "x_oss_object_acl",
                           "x_oss_forbid_overwrite"}
    doc = json.loads(base64.b64decode(policy["policy"]))
    assert ["starts-with", "$key", policy["upload_dir"] + "/"] in doc["conditions"]
    def one(_) -> int:
        try:
            get_policy(box)
            return 200
        except urllib.error.HTTPError as err:
            assert json.loads(err.read())["code"] == "Throttling.RateQuota"
            return err.code

    with ThreadPoolExecutor(max_workers=6) as pool:  # all at once: one window even on a loaded machine
        statuses = list(pool.map(one, range(6)))
    assert 429 in statuses and statuses.count(200) <= 3
    assert get_policy(box, model="qwen-vl-max")["upload_dir"]  # separate window per model


# ------------------------------------------------------------------ faults and lifecycle

def test_faults_apply_to_exactly_n_requests(sb):
    sb.fault(route="getPolicy", status=503, count=2)
    results = []
    for _ in range(3):
        try:
            get_policy(sb)
            results.append(200)
        except urllib.error.HTTPError as err:
            results.append(err.code)
    assert results == [503, 503, 200]


def test_reset_fault_drops_connection(sb):
    sb.fault(route="getPolicy", action="reset", count=1)
    with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
        get_policy(sb)
    assert get_policy(sb)["upload_dir"]


def test_bad_fault_spec_is_refused(sb):
    with pytest.raises(urllib.error.HTTPError) as err:
        sb.fault(route="nowhere", status=500)
    assert err.value.code == 400


def test_sandbox_stops_cleanly_on_sigterm(make_sandbox):
    box = make_sandbox()
    box.process.terminate()
    assert wait_until(lambda: box.process.poll() is not None) is not None or box.process.returncode == 0
    assert box.process.returncode == 0


def test_sandbox_refuses_non_loopback_host():
    done = subprocess.run([sys.executable, str(__import__("conftest").SCRIPTS / "sandbox.py"), "--host", "0.0.0.0"],  # noqa: S104
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "loopback" in done.stderr


def test_sandbox_latency_costs_one_round_trip_to_connect_and_one_per_request(make_sandbox):
    import http.client
    import time

    box = make_sandbox("--latency-ms", "150")
    host, port = box.base_url.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        timings = []
        for _ in range(2):
            start = time.monotonic()
            conn.request("GET", "/_sandbox/stats")
            conn.getresponse().read()
            timings.append(time.monotonic() - start)
    finally:
        conn.close()
    first, second = timings
    assert first >= 0.3 and second >= 0.15   # a new connection: two round trips; a reused one: one
