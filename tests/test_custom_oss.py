"""Production uploads to the user's own bucket (QWEN_TMP_OSS_*), against the sandbox's OSS."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

from conftest import assert_clean_error, run_script
from qianwen_ops.custom_oss import load_config
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.settings import Settings
from test_sandbox_protocol import chat

MODEL = "qwen-vl-plus"


def oss_env(env, box, pair="own", **extra):
    info = box.info
    out = dict(env, QWEN_BASE_URL=box.base_url, DASHSCOPE_API_KEY=box.api_key,
               QWEN_TMP_OSS_BUCKET=info["oss_bucket"], QWEN_TMP_OSS_REGION=info["oss_region"],
               QWEN_TMP_OSS_ENDPOINT=info["oss_endpoint"])
    if pair == "own":
        out.update(QWEN_TMP_OSS_AK_ID=info["oss_access_key_id"], QWEN_TMP_OSS_AK_SECRET=info["oss_access_key_secret"])
    elif pair == "oss":
        out.update(OSS_ACCESS_KEY_ID=info["oss_access_key_id"], OSS_ACCESS_KEY_SECRET=info["oss_access_key_secret"])
    elif pair == "sts":
        out.update(OSS_ACCESS_KEY_ID=info["oss_sts_access_key_id"],
                   OSS_ACCESS_KEY_SECRET=info["oss_sts_access_key_secret"], OSS_SESSION_TOKEN=info["oss_session_token"])
    out.update(extra)
    return out


def without_notice(result):
    """The stderr lines after the one 'note: uploading to your bucket ...' line (which must be there)."""
    lines = result.err.splitlines()
    assert lines and lines[0].startswith("note: uploading to your bucket "), result.err
    return type(result)(result.code, result.out, "\n".join(lines[1:]))


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


@pytest.mark.parametrize("pair", ["own", "oss", "sts"])
def test_each_credential_source_gives_a_working_url(sb, env, project, pair):
    data = os.urandom(5000)
    (project / "pic.png").write_bytes(data)
    before = sb.counts()["getPolicy"]
    result = run_script("upload_file.py", "pic.png", "--model", MODEL, "--json", env=oss_env(env, sb, pair),
                        cwd=project)
    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["backend"] == "custom-oss" and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert fetch(record["url"]) == data
    status, body = chat(sb, [record["url"]])  # no resolve header needed
    assert status == 200 and record["sha256"] in body["choices"][0]["message"]["content"]
    assert sb.counts()["getPolicy"] == before
    key = urlsplit(record["url"]).path.split("/", 2)[2]
    assert key.startswith("qianwen-uploads/") and key.endswith("_pic.png")


def test_credentials_from_dotenv_and_the_bucket_notice(sb, env, project):
    info = sb.info
    (project / ".env").write_text(
        f"QWEN_TMP_OSS_BUCKET={info['oss_bucket']}\nQWEN_TMP_OSS_REGION={info['oss_region']}\n"
        f"OSS_ACCESS_KEY_ID={info['oss_access_key_id']}\nOSS_ACCESS_KEY_SECRET={info['oss_access_key_secret']}\n")
    (project / "f.txt").write_bytes(b"from dotenv")
    # a loopback endpoint may only come from the process environment
    result = run_script("upload_file.py", "f.txt", "--model", MODEL,
                        env=dict(env, QWEN_TMP_OSS_ENDPOINT=info["oss_endpoint"]), cwd=project)
    assert result.code == 0, result.err
    assert fetch(result.out.strip()) == b"from dotenv"
    assert result.err.strip() == (f"note: uploading to your bucket {info['oss_bucket']} "
                                  f"(QWEN_TMP_OSS_BUCKET from {project / '.env'})")


def test_prefix_and_expiry_honoured_and_expired_url_refused(make_sandbox, env, project):
    box = make_sandbox()
    (project / "e.bin").write_bytes(b"expiry")
    result = run_script("upload_file.py", "e.bin", "--model", MODEL, "--json",
                        env=oss_env(env, box, QWEN_TMP_OSS_PREFIX="team/ai", QWEN_TMP_OSS_URL_EXPIRES="120"),
                        cwd=project)
    record = json.loads(result.out)
    query = dict(p.split("=", 1) for p in urlsplit(record["url"]).query.split("&"))
    assert urlsplit(record["url"]).path.split("/", 2)[2].startswith("team/ai/")
    assert query["x-oss-expires"] == "120" and query["x-oss-signature-version"] == "OSS4-HMAC-SHA256"
    assert 100 < record["expires_at"] - __import__("time").time() <= 120
    assert fetch(record["url"]) == b"expiry"
    box.advance_clock(121)
    with pytest.raises(urllib.error.HTTPError) as err:
        fetch(record["url"])
    assert err.value.code == 403
    assert chat(box, [record["url"]])[0] == 400


def test_large_file_goes_multipart_and_round_trips(sb, env, project):
    path = project / "big.bin"
    with open(path, "wb") as handle:
        for _ in range(40):
            handle.write(os.urandom(1024 * 1024))
    result = run_script("upload_file.py", "big.bin", "--model", MODEL, "--json", env=oss_env(env, sb), cwd=project)
    assert result.code == 0, result.err
    record = json.loads(result.out)
    key = urlsplit(record["url"]).path.split("/", 2)[2]
    listing = {o["key"]: o for o in sb.stats()["objects"]}
    assert listing[key]["parts"] == 5 and listing[key]["sha256"] == record["sha256"]
    assert hashlib.sha256(fetch(record["url"])).hexdigest() == record["sha256"]
    assert (project.parent / "cache" / "qianwen-ops-auth" / "oss-checkpoints").is_dir()
    assert not (project.parent / "home" / ".py-oss-upload").exists()


def test_ctrl_c_during_a_multipart_upload_returns_at_once(sb, env, project):
    from conftest import SCRIPTS, interrupt_when

    with open(project / "big.bin", "wb") as handle:
        handle.write(os.urandom(40 * 1024 * 1024))   # 5 parts of 8 MiB
    sb.fault(route="oss", delay_s=3, count=50)      # every OSS request waits 3 s, then succeeds
    before = sb.counts()["oss"]
    code, out, err, took = interrupt_when(  # once the initiate is done and 2 parts are in flight
        [SCRIPTS / "upload_file.py", "big.bin", "--model", MODEL], lambda: sb.counts()["oss"] >= before + 3,
        oss_env(env, sb), project)
    # the parts in flight are abandoned, not waited for (that took their full 3 s); a rerun resumes
    assert code == 130 and took < 2.0, (took, err)
    assert "Traceback" not in err and "interrupted" in err and out == ""


def test_cache_reuses_url_within_its_validity(sb, env, project):
    (project / "c.bin").write_bytes(b"cache me")
    run_env = oss_env(env, sb)
    first = run_script("upload_file.py", "c.bin", "--model", MODEL, env=run_env, cwd=project).out
    before = sb.counts()
    assert run_script("upload_file.py", "c.bin", "--model", MODEL, env=run_env, cwd=project).out == first
    assert sb.counts() == before
    other = run_script("upload_file.py", "c.bin", "--model", MODEL, env=dict(run_env, QWEN_TMP_OSS_PREFIX="other"),
                       cwd=project).out
    assert other != first


@pytest.mark.parametrize("change,needle", [
    ({"QWEN_TMP_OSS_AK_ID": None, "QWEN_TMP_OSS_AK_SECRET": None}, "QWEN_TMP_OSS_AK_ID and QWEN_TMP_OSS_AK_SECRET, or"),
    ({"QWEN_TMP_OSS_AK_SECRET": None}, "must be set together"),
    ({"QWEN_TMP_OSS_REGION": None}, "QWEN_TMP_OSS_REGION is required"),
    ({"QWEN_TMP_OSS_URL_EXPIRES": "soon"}, "QWEN_TMP_OSS_URL_EXPIRES"),
    ({"QWEN_TMP_OSS_URL_EXPIRES": "99999999"}, "QWEN_TMP_OSS_URL_EXPIRES"),
    ({"QWEN_TMP_OSS_BUCKET": "Bad_Bucket"}, "not a valid bucket"),
    ({"QWEN_TMP_OSS_ENDPOINT": "http://oss.example.com"}, "plain http"),
    ({"QWEN_TMP_OSS_AK_ID": "your-accesskey-id"}, "AK_ID (from env:QWEN_TMP_OSS_AK_ID) is still a placeholder"),
])
def test_configuration_errors_before_any_request(sb, env, project, change, needle):
    run_env = oss_env(env, sb)
    for name, value in change.items():
        if value is None:
            run_env.pop(name)
        else:
            run_env[name] = value
    (project / "x.bin").write_bytes(b"x")
    before = sb.counts()
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=run_env, cwd=project)
    assert result.code == 9 and needle in result.err and sb.counts() == before
    assert_clean_error(result)
    assert sb.info["oss_access_key_secret"] not in result.err


@pytest.mark.parametrize("mode,code,needle", [
    ("wrong-secret", 5, "secret from QWEN_TMP_OSS_AK_ID/QWEN_TMP_OSS_AK_SECRET is wrong"),
    ("unknown-id", 5, "does not know the AccessKey ID"),
    ("no-bucket", 9, "does not exist"),
])
def test_oss_errors_become_plain_advice(sb, env, project, mode, code, needle):
    extra = {"wrong-secret": {"QWEN_TMP_OSS_AK_SECRET": "Oss-Wr0ng-Secret-value"},
             "unknown-id": {"QWEN_TMP_OSS_AK_ID": "LTAInobody"},
             "no-bucket": {"QWEN_TMP_OSS_BUCKET": "missing-bucket"}}[mode]
    (project / "x.bin").write_bytes(b"x")
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=oss_env(env, sb, **extra), cwd=project)
    assert result.code == code and needle in result.err
    assert_clean_error(without_notice(result))
    for secret in ("Oss-Wr0ng-Secret-value", sb.info["oss_access_key_secret"], "x-oss-signature", "Signature="):
        assert secret not in result.err + result.out


def test_access_denied_names_least_privilege_policy(sb, env, project):
    info = sb.info
    run_env = oss_env(env, sb, QWEN_TMP_OSS_BUCKET=info["temp_bucket"])
    (project / "x.bin").write_bytes(b"x")
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=run_env, cwd=project)
    assert result.code == 5 and "the RAM user needs oss:PutObject on acs:oss:*:*:" in result.err


def test_custom_oss_needs_no_oss2(sb, env, project, tmp_path):
    """The bucket API is spoken by qianwen_ops.oss_v4: with oss2 unimportable, uploads (small and
    multipart) still give working URLs, and so does everything else."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "oss2.py").write_text("raise ImportError('blocked for the test')\n")
    run_env = dict(oss_env(env, sb), PYTHONPATH=str(blocker))
    small, big = os.urandom(1000), os.urandom(33 * 1024 * 1024)
    (project / "x.bin").write_bytes(small)
    (project / "big.bin").write_bytes(big)
    result = run_script("upload_file.py", "x.bin", "big.bin", "--model", MODEL, "--json", env=run_env, cwd=project)
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [fetch(r["url"]) == data for r, data in zip(records, (small, big))] == [True, True]
    assert [r["sha256"] for r in records] == [hashlib.sha256(small).hexdigest(), hashlib.sha256(big).hexdigest()]
    probe = run_script("probe.py", env=run_env, cwd=project)
    assert probe.code == 0 and probe.out.strip() == "200"
    url = run_script("upload_file.py", "https://example.com/a.png", "--model", MODEL, env=run_env, cwd=project)
    assert url.code == 0 and url.out.strip() == "https://example.com/a.png"


def test_doctor_check_oss_round_trip(sb, env, project):
    result = run_script("doctor.py", "--json", "--check-oss", env=oss_env(env, sb), cwd=project)
    data = json.loads(result.out)
    steps = {c["name"]: c["status"] for c in data["checks"]}
    assert [steps[f"oss {s}"] for s in ("put", "presign", "get", "delete")] == ["ok"] * 4
    assert result.code == 0 and data["ok"]
    assert data["custom_oss_variables"]["QWEN_TMP_OSS_AK_SECRET"] == "set (env:QWEN_TMP_OSS_AK_SECRET)"
    assert sb.info["oss_access_key_secret"] not in result.out
    assert not [o for o in sb.stats()["objects"] if "doctor-check" in o["key"]]


def test_doctor_check_oss_reports_wrong_secret(sb, env, project):
    result = run_script("doctor.py", "--check-oss", env=oss_env(env, sb, QWEN_TMP_OSS_AK_SECRET="Oss-bad-1"),
                        cwd=project)
    assert result.code == 5 and "[FAIL] oss put" in result.out and "Oss-bad-1" not in result.out


@pytest.mark.parametrize("change,needle", [
    ({"QWEN_TMP_OSS_ENDPOINT": "oss-cn-beijing.aliyuncs.com/extra"}, "path must be empty"),
    ({"QWEN_TMP_OSS_ENDPOINT": "https://a..invalid"}, "malformed host"),
    ({"QWEN_TMP_OSS_ENDPOINT": "https://" + "x" * 64 + ".aliyuncs.com"}, "malformed host"),
    ({"QWEN_TMP_OSS_AK_ID": "your-accesskey-id"}, "AK_ID (from env:QWEN_TMP_OSS_AK_ID) is still a placeholder"),
    ({"QWEN_TMP_OSS_AK_SECRET": "your-accesskey-secret"}, "(from env:QWEN_TMP_OSS_AK_SECRET) is still"),
    ({"QWEN_TMP_OSS_AK_SECRET": "<your secret>"}, "placeholder"),
    ({"QWEN_TMP_OSS_AK_SECRET": " Secret1 "}, "contains whitespace"),
    ({"QWEN_TMP_OSS_AK_ID": "LTAI abc"}, "contains whitespace"),
    ({"QWEN_TMP_OSS_AK_ID": None, "QWEN_TMP_OSS_AK_SECRET": None, "OSS_ACCESS_KEY_ID": "your-accesskey-id",
      "OSS_ACCESS_KEY_SECRET": "your-accesskey-secret"}, "OSS_ACCESS_KEY_ID (from env:OSS_ACCESS_KEY_ID) is still"),
    ({"QWEN_TMP_OSS_AK_ID": None, "QWEN_TMP_OSS_AK_SECRET": None, "OSS_ACCESS_KEY_ID": "LTAIabc",
      "OSS_ACCESS_KEY_SECRET": "abc123", "OSS_SESSION_TOKEN": "tok en"}, "OSS_SESSION_TOKEN (from env:OSS_SESSION"),
])
def test_configuration_errors_in_process(tmp_path, change, needle):
    """The same rules without a subprocess: endpoint forms, placeholders, whitespace."""
    values = {"QWEN_TMP_OSS_BUCKET": "my-bucket", "QWEN_TMP_OSS_REGION": "cn-beijing",
              "QWEN_TMP_OSS_AK_ID": "LTAIabc123", "QWEN_TMP_OSS_AK_SECRET": "Secret123abc"}
    for name, value in change.items():
        if value is None:
            values.pop(name)
        else:
            values[name] = value
    with pytest.raises(QwenOpsError) as info:
        load_config(Settings.from_process(cwd=tmp_path, env=values))
    assert info.value.exit_code == 9 and needle in info.value.message


def test_config_object_never_shows_secrets(tmp_path):
    settings = Settings.from_process(cwd=tmp_path, env={
        "QWEN_TMP_OSS_BUCKET": "my-bucket", "QWEN_TMP_OSS_REGION": "oss-cn-beijing",
        "QWEN_TMP_OSS_AK_ID": "LTAI-id-9", "QWEN_TMP_OSS_AK_SECRET": "Oss-Sec-7z",
        "QWEN_TMP_OSS_ENDPOINT": "my-bucket.oss-cn-beijing.aliyuncs.com"})
    config = load_config(settings)
    assert config.region == "cn-beijing" and config.endpoint == "https://oss-cn-beijing.aliyuncs.com"
    assert "Oss-Sec-7z" not in repr(config) and "LTAI-id-9" not in repr(config)
    with pytest.raises(QwenOpsError):
        load_config(Settings.from_process(cwd=tmp_path, env={"QWEN_TMP_OSS_BUCKET": "my-bucket"}))


def test_doctor_offline_and_check_oss_do_not_mix(env, project):
    """--offline promises that nothing is sent; --check-oss sends: asking for both is a usage error."""
    result = run_script("doctor.py", "--offline", "--check-oss", env=env, cwd=project)
    assert result.code == 2 and "not allowed with" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
