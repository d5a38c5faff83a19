"""RAM policies: the sandbox enforces them, and the policy references/custom-oss.md prints is enough."""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.request

import pytest

from conftest import MODEL, ROOT, fetch, oss_env, run_script, start_sandbox
from qianwen_ops.custom_oss import CustomOss
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.local_files import check_file
from qianwen_ops.oss_settings import load_config
from qianwen_ops.settings import Settings
from qianwen_sandbox.ram import PolicyError, parse_policy, required_action, resource_for

SMALL_PART = 100 * 1024          # OSS's smallest part size; keeps the multipart cases small
THRESHOLD = 256 * 1024


def documented_policy(bucket: str) -> dict:
    text = (ROOT / "references" / "custom-oss.md").read_text(encoding="utf-8")
    section = text.split("## Least-privilege RAM policy", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1)
    return json.loads(block.replace("my-bucket-name", bucket))


def policy_box(tmp_path, policy: dict):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    box = start_sandbox("--ram-policy", str(path))
    assert box.info["ram_policy"] is True
    return box


@pytest.fixture
def documented_box(tmp_path):
    box = policy_box(tmp_path, documented_policy("sandbox-bucket"))
    yield box
    box.stop()


@pytest.fixture
def put_only_box(tmp_path):
    box = policy_box(tmp_path, {"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "oss:PutObject", "Resource": "acs:oss:*:*:sandbox-bucket/qianwen-uploads/*"}]})
    yield box
    box.stop()


def small_parts_backend(env, box, tmp_path) -> CustomOss:
    config = load_config(Settings.from_process(cwd=tmp_path, env=oss_env(env, box)))
    return CustomOss(config, tmp_path / "cache", timeout=10, multipart_threshold=THRESHOLD, part_size=SMALL_PART,
                     threads=2, announce=False)


class Interrupted(Exception):
    pass


def interrupted_upload(backend: CustomOss, local, stable_id: str) -> None:
    """Stop a multipart upload once two parts are stored (as Ctrl-C would), leaving its checkpoint.

    One part at a time, so no part is still in flight when it stops: an abandoned part landing later
    would be counted among the requests of the upload that resumes (a race that once failed CI)."""
    def stop_after_two_parts(sent: int) -> None:
        if sent >= 2 * SMALL_PART:
            raise Interrupted()

    threads, backend.threads = backend.threads, 1
    try:
        with pytest.raises(Interrupted):
            backend.upload(local, MODEL, progress=stop_after_two_parts, stable_id=stable_id)
    finally:
        backend.threads = threads


# ---------------------------------------------------------------- the policy engine

def test_policy_wildcards_deny_over_allow_and_default_deny():
    policy = parse_policy({"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": ["oss:Put*", "oss:GetObjec?"], "Resource": "acs:oss:*:*:b/up/*"},
        {"Effect": "Deny", "Action": "oss:PutObject", "Resource": ["acs:oss:*:*:b/up/secret/*"]},
    ]})
    res = resource_for("cn-beijing", "b", "up/x.png")
    assert policy.allows("oss:PutObject", res) and policy.allows("oss:GetObject", res)
    assert policy.allows("OSS:putobject", res)                          # actions ignore case
    assert not policy.allows("oss:DeleteObject", res)                   # nothing allows it
    assert not policy.allows("oss:PutObject", resource_for("cn-beijing", "b", "up/secret/k"))  # Deny wins
    assert not policy.allows("oss:PutObject", resource_for("cn-beijing", "b", "other/x"))
    assert not policy.allows("oss:PutObject", resource_for("cn-beijing", "B", "up/x"))          # resources do not
    assert not policy.allows("oss:GetObjectAcl", res)                   # ? is exactly one character


@pytest.mark.parametrize("method,query,key,action", [
    ("PUT", {}, "k", "oss:PutObject"), ("POST", {"uploads": ""}, "k", "oss:PutObject"),
    ("PUT", {"uploadId": "u", "partNumber": "1"}, "k", "oss:PutObject"),
    ("POST", {"uploadId": "u"}, "k", "oss:PutObject"), ("GET", {"uploadId": "u"}, "k", "oss:ListParts"),
    ("DELETE", {"uploadId": "u"}, "k", "oss:AbortMultipartUpload"), ("GET", {}, "k", "oss:GetObject"),
    ("HEAD", {}, "k", "oss:GetObject"), ("DELETE", {}, "k", "oss:DeleteObject"),
    ("GET", {}, "", "oss:ListObjects"), ("GET", {"uploads": ""}, "", "oss:ListMultipartUploads"),
])
def test_each_operation_maps_to_the_documented_action(method, query, key, action):
    assert required_action(method, query, key) == action


@pytest.mark.parametrize("doc,word", [
    ({"Statement": []}, "Version"), ({"Version": "1", "Statement": []}, "non-empty"),
    ({"Version": "1", "Statement": [{"Effect": "Maybe", "Action": "oss:*", "Resource": "*"}]}, "Effect"),
    ({"Version": "1", "Statement": [{"Effect": "Allow", "Action": [], "Resource": "*"}]}, "Action"),
    ({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "oss:*", "Resource": "*",
                                     "Condition": {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}}]}, "Condition"),
])
def test_policies_the_sandbox_cannot_enforce_are_refused(doc, word):
    with pytest.raises(PolicyError, match=word):
        parse_policy(doc)


def test_sandbox_refuses_a_bad_policy_file(env, tmp_path, project):
    bad = tmp_path / "bad.json"
    bad.write_text('{"Version": "1", "Statement": [{"Effect": "Allow", "NotAction": "x", "Resource": "*"}]}')
    result = run_script("sandbox.py", "--ram-policy", str(bad), env=env, cwd=project, timeout=30)
    assert result.code == 2 and "NotAction" in result.err and "Traceback" not in result.err


# ---------------------------------------------------------------- the documented policy works

def test_documented_policy_covers_every_call_the_bundle_makes(documented_box, env, project, tmp_path):
    box = documented_box
    run_env = oss_env(env, box)
    # a small upload through the script, then the presigned download
    (project / "small.png").write_bytes(b"small file")
    result = run_script("upload_file.py", "small.png", "--model", MODEL, "--json", env=run_env, cwd=project)
    assert result.code == 0, result.err
    assert fetch(json.loads(result.out)["url"]) == b"small file"
    # a multipart-size upload (small parts), then an interrupted one that resumes
    backend = small_parts_backend(env, box, tmp_path)
    data = os.urandom(6 * SMALL_PART + 1000)
    (project / "big.bin").write_bytes(data)
    url, _, sha = backend.upload(check_file(project / "big.bin"), MODEL, stable_id="a" * 32)
    assert fetch(url) == data and sha == hashlib.sha256(data).hexdigest()
    interrupted_upload(backend, check_file(project / "big.bin"), "b" * 32)
    before = box.counts()["oss"]
    url, _, sha = backend.upload(check_file(project / "big.bin"), MODEL, stable_id="b" * 32)
    resumed_requests = box.counts()["oss"] - before
    assert fetch(url) == data and sha == hashlib.sha256(data).hexdigest()
    assert resumed_requests <= 1 + 5 + 1        # ListParts + at most 5 of the 7 parts + Complete
    # doctor's round trip: put, presign, get, delete
    doctor = run_script("doctor.py", "--json", "--check-oss", env=run_env, cwd=project)
    steps = {c["name"]: c["status"] for c in json.loads(doctor.out)["checks"]}
    assert [steps[f"oss {s}"] for s in ("put", "presign", "get", "delete")] == ["ok"] * 4, doctor.out
    assert doctor.code == 0


# ---------------------------------------------------------------- a missing action is named

@pytest.mark.slow
def test_missing_actions_are_named_with_exit_5(put_only_box, env, project, tmp_path):
    box = put_only_box
    run_env = oss_env(env, box)
    (project / "small.png").write_bytes(b"small file")
    result = run_script("upload_file.py", "small.png", "--model", MODEL, env=run_env, cwd=project)
    assert result.code == 0, result.err
    with pytest.raises(urllib.error.HTTPError) as refused:   # the presigned URL carries the signer's rights
        fetch(result.out.strip())
    assert refused.value.code == 403 and b"<Code>AccessDenied</Code>" in refused.value.read()

    backend = small_parts_backend(env, box, tmp_path)
    (project / "big.bin").write_bytes(os.urandom(4 * SMALL_PART))
    interrupted_upload(backend, check_file(project / "big.bin"), "c" * 32)
    with pytest.raises(QwenOpsError) as resumed:
        backend.upload(check_file(project / "big.bin"), MODEL, stable_id="c" * 32)
    assert resumed.value.exit_code == 5
    assert "the RAM user needs oss:ListParts on acs:oss:*:*:sandbox-bucket/qianwen-uploads/*" in resumed.value.message

    # outside the granted prefix even PutObject is refused: one error line naming it, after the notice
    denied = run_script("upload_file.py", "small.png", "--model", MODEL, env=dict(run_env, QWEN_TMP_OSS_PREFIX="other"),
                        cwd=project)
    lines = denied.err.strip().splitlines()
    assert denied.code == 5 and len(lines) == 2 and lines[0].startswith("note: uploading to your bucket")
    assert lines[1].startswith("error: ") and "the RAM user needs oss:PutObject on acs:oss:*:*:sandbox-bucket/other/*" \
        in lines[1]

    doctor = run_script("doctor.py", "--check-oss", env=run_env, cwd=project)
    lines = doctor.out.splitlines()
    assert doctor.code == 5
    assert any("[FAIL] oss get" in line and "needs oss:GetObject" in line for line in lines), doctor.out
    assert any("[FAIL] oss delete" in line and "needs oss:DeleteObject" in line for line in lines), doctor.out


