"""Uploads to the user's own bucket (QWEN_TMP_OSS_*) against the sandbox's OSS: settings, credentials, multipart,
resume, advice, and the same limits as every other request (no redirects, --timeout, bounded answers, proxies,
quiet logging, files that change mid-upload)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from conftest import (
    MODEL,
    SCRIPTS,
    QuietHandler,
    assert_clean_error,
    chat,
    fetch,
    leaks,
    mode_is,
    oss_env,
    run_script,
    without_notice,
)
from qianwen_ops import custom_oss, errors
from qianwen_ops.custom_oss import CustomOss
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.local_files import check_file
from qianwen_ops.oss_settings import load_config
from qianwen_ops.settings import Settings
from qianwen_ops.uploads import upload_many
from qianwen_ops.urls import parse_url


@pytest.mark.slow
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
    listing = sb.objects()
    assert listing[key]["parts"] == 5 and listing[key]["sha256"] == record["sha256"]
    assert hashlib.sha256(fetch(record["url"])).hexdigest() == record["sha256"]
    assert (project.parent / "cache" / "qianwen-ops-auth" / "oss-checkpoints").is_dir()
    assert not (project.parent / "home" / ".py-oss-upload").exists()


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def _oss_env(env, box, **extra) -> dict:

    clean = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
    return oss_env(clean, box, **extra)


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_plain_http_custom_oss_through_a_proxy_is_refused(sb, env, project, listener, variable):
    (project / "x.png").write_bytes(b"a picture")
    run_env = _oss_env(env, sb, **{variable: f"http://127.0.0.1:{listener.port}", "NO_PROXY": sb.base_url[7:]})
    before = sb.counts()
    upload = run_script("upload_file.py", "x.png", "--model", MODEL, "--no-cache", env=run_env, cwd=project)
    assert upload.code == 9 and "refusing to send credentials over plain http through proxy 127.0.0.1" in upload.err
    if variable == "HTTP_PROXY":
        doctor = run_script("doctor.py", "--check-oss", env=run_env, cwd=project)
        assert doctor.code == 9 and "refusing to send credentials over plain http" in doctor.out, doctor.out
    assert listener.received == [] and sb.counts()["oss"] == before["oss"]
    if variable == "HTTP_PROXY":
        bypass = dict(run_env, NO_PROXY=f"{sb.base_url[7:]},127.0.0.1")            # the documented way out
        assert run_script("upload_file.py", "x.png", "--model", MODEL, env=bypass, cwd=project).code == 0


class _SlowOss:
    """A loopback 'OSS endpoint' that answers every request with headers, then one byte at a time (or a flood)."""

    def __init__(self, mode: str):
        import socket
        import threading

        self.mode = mode
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import threading

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            try:
                conn.settimeout(5)
                conn.recv(1 << 20)
                if self.mode == "trickle":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\nx-oss-request-id: r\r\n\r\n")
                    while not self.stop.wait(0.05):
                        conn.sendall(b"<")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
                    chunk = b"<a>" * 20000
                    while not self.stop.is_set():
                        conn.sendall(chunk)
            except OSError:
                return

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("mode", ["trickle", "flood"])
def test_custom_oss_answers_are_bounded_in_time_and_size(env, project, mode):
    import time
    import tracemalloc

    from qianwen_ops.custom_oss import CustomOss
    from qianwen_ops.local_files import check_file
    from qianwen_ops.oss_settings import load_config

    server = _SlowOss(mode)
    try:
        run_env = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
        run_env.update(QWEN_TMP_OSS_BUCKET="my-bucket", QWEN_TMP_OSS_REGION="cn-beijing",
                       QWEN_TMP_OSS_ENDPOINT=server.url, QWEN_TMP_OSS_AK_ID="LTAI5tAbcdefgh12345678",
                       QWEN_TMP_OSS_AK_SECRET="Abcdefgh12345678Abcdefgh123456")
        config = load_config(Settings.from_process(cwd=project, env=run_env))
        (project / "big.bin").write_bytes(os.urandom(64 * 1024))
        oss = CustomOss(config, project / "ckpt", timeout=0.4, multipart_threshold=16 * 1024, part_size=16 * 1024,
                        announce=False, env=run_env)
        tracemalloc.start()
        started = time.monotonic()
        with pytest.raises(QwenOpsError) as caught:
            oss.upload(check_file(project / "big.bin"), MODEL)
        took = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        server.close()
    assert caught.value.exit_code == 8 and "cannot reach OSS" in caught.value.message
    assert took < 3.0, took                   # a deadline of 2 x 0.4 s, not 10,000 bytes x 0.05 s
    assert peak < 24 << 20, peak              # not a 64 MiB body


def test_custom_oss_over_tls_and_a_connect_proxy_still_works(env, project, tmp_path):
    import trustme
    from forward_proxy import ForwardProxy

    from conftest import start_sandbox

    ca = trustme.CA()
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "srv.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    box = start_sandbox("--tls-cert", str(tmp_path / "srv.pem"), "--tls-key", str(tmp_path / "srv.pem"))
    proxy = None
    try:
        port = int(box.info["oss_endpoint"].rsplit(":", 1)[1])
        proxy = ForwardProxy(routes={f"127.0.0.1:{port}": ("127.0.0.1", port)})
        run_env = _oss_env(env, box, SSL_CERT_FILE=str(tmp_path / "ca.pem"), HTTPS_PROXY=proxy.url(),
                           NO_PROXY=box.base_url.split("://")[1])
        (project / "p.png").write_bytes(os.urandom(3000))
        done = run_script("upload_file.py", "p.png", "--model", MODEL, "--no-cache", env=run_env, cwd=project)
        assert done.code == 0 and done.out.startswith("https://127.0.0.1"), done.err
        assert proxy.connects() and all(c.startswith(f"CONNECT 127.0.0.1:{port}") for c in proxy.connects())
    finally:
        if proxy is not None:
            proxy.close()
        box.stop()


class _Server:
    """A loopback HTTP server in a thread; ``seen`` keeps (method, path, headers) of every request."""

    def __init__(self, answer):
        seen = self.seen = []

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                seen.append((self.command, self.path, dict(self.headers.items())))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                answer(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_redirect_is_never_followed_and_the_sts_token_stays_home(sb, env, project):
    def ok(h):
        h.send_response(200)
        h.send_header("Content-Length", "0")
        h.end_headers()

    elsewhere = _Server(ok)

    def redirect(h):
        h.send_response(307)
        h.send_header("Location", elsewhere.url + h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()

    first = _Server(redirect)
    try:
        (project / "x.bin").write_bytes(b"redirect me")
        run_env = oss_env(env, sb, pair="sts", QWEN_TMP_OSS_ENDPOINT=first.url)
        result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=run_env, cwd=project, timeout=60)
    finally:
        first.close()
        elsewhere.close()
    assert [m for m, _, _ in first.seen] == ["PUT"]
    assert any(k.lower() == "x-oss-security-token" for k in first.seen[0][2])   # the token was on the request
    assert elsewhere.seen == []                                                  # ... and went nowhere else
    assert result.code == errors.HTTP_ERROR and "redirect (HTTP 307), which is never followed" in result.err
    assert sb.info["oss_session_token"] not in result.err + result.out


def test_timeout_reaches_custom_oss(env, sb, project):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)          # accepts connections (backlog) and never answers
    try:
        (project / "x.bin").write_bytes(b"slow")
        run_env = oss_env(env, sb, QWEN_TMP_OSS_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        result = run_script("upload_file.py", "x.bin", "--model", MODEL, "--timeout", "1", env=run_env, cwd=project,
                            timeout=60)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert result.code == errors.NETWORK and "cannot reach OSS at 127.0.0.1: timed out" in result.err, result.err
    assert elapsed < 10


def test_oss2_logging_stays_silent_for_a_library_caller(sb, env, project):
    """A caller that turned on DEBUG logging sees neither oss2's strings-to-sign nor a traceback."""
    (project / "x.bin").write_bytes(b"x")
    code = ("import logging, sys; logging.basicConfig(level=logging.DEBUG); sys.path.insert(0, sys.argv[1]);"
            "from qianwen_ops.uploads import upload_many;"
            "out = upload_many(['x.bin'], 'qwen-vl-plus');"
            "print(out[0].error.exit_code if out[0].error else 0)")
    run_env = oss_env(env, sb, QWEN_TMP_OSS_AK_SECRET="Oss-Wrong-Secret-77")
    done = subprocess.run([sys.executable, "-c", code, str(SCRIPTS)], env=run_env, cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert done.stdout.strip() == "5", done.stderr
    assert "Traceback" not in done.stderr and "oss2" not in done.stderr and "Oss-Wrong" not in done.stderr


def test_file_deleted_during_multipart_upload_is_exit_10_and_the_batch_goes_on(sb, env, project, monkeypatch):
    monkeypatch.setattr(custom_oss, "MULTIPART_THRESHOLD", 256 * 1024)   # small parts keep the test cheap
    monkeypatch.setattr(custom_oss, "PART_SIZE", 100 * 1024)
    big = project / "vanishes.bin"
    big.write_bytes(os.urandom(1024 * 1024))
    (project / "a.txt").write_bytes(b"first")
    (project / "b.txt").write_bytes(b"last")

    def progress(source, sent, total):
        if source == str(big) and big.exists():
            big.unlink()

    settings = Settings.from_process(cwd=project, env=oss_env(env, sb))
    outcomes = upload_many([str(project / "a.txt"), str(big), str(project / "b.txt")], MODEL, settings,
                           use_cache=False, concurrency=1, progress=progress)
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert outcomes[1].error.exit_code == errors.INPUT_FILE
    assert "deleted or moved while it was being uploaded" in outcomes[1].error.message
    assert not [o for o in sb.stats()["objects"] if o["key"].endswith("_vanishes.bin")]


def test_file_truncated_during_multipart_upload_is_exit_10(sb, env, project, tmp_path):
    path = project / "shrinks.bin"
    path.write_bytes(os.urandom(1024 * 1024))
    config = load_config(Settings.from_process(cwd=project, env=oss_env(env, sb)))
    backend = CustomOss(config, tmp_path / "cache", multipart_threshold=256 * 1024, part_size=100 * 1024,
                        threads=1, announce=False)
    local = check_file(path)

    def shrink(sent):
        os.truncate(path, 300 * 1024)

    with pytest.raises(QwenOpsError) as info:
        backend.upload(local, MODEL, progress=shrink)
    assert info.value.exit_code == errors.INPUT_FILE and "changed" in info.value.message


@pytest.mark.parametrize("raw,root", [
    ("http://[::1]:9000", "http://[::1]:9000"), ("http://[::1]:9000/", "http://[::1]:9000"),
    ("oss-cn-beijing.aliyuncs.com", "https://oss-cn-beijing.aliyuncs.com"),
    ("https://OSS-cn-beijing.aliyuncs.com:443", "https://oss-cn-beijing.aliyuncs.com:443"),
])
def test_oss_endpoint_forms(raw, root):
    assert parse_url(raw, "QWEN_TMP_OSS_ENDPOINT", default_scheme="https")[0] == root


def test_oss_endpoint_keeps_ipv6_and_strips_the_bucket_host(tmp_path):
    def endpoint(value):
        env = {"QWEN_TMP_OSS_BUCKET": "my-bucket", "QWEN_TMP_OSS_REGION": "cn-beijing", "QWEN_TMP_OSS_AK_ID": "LTAIa1",
               "QWEN_TMP_OSS_AK_SECRET": "s3cr3t", "QWEN_TMP_OSS_ENDPOINT": value}
        return load_config(Settings.from_process(cwd=tmp_path, env=env)).endpoint

    assert endpoint("http://[::1]:9000") == "http://[::1]:9000"
    assert endpoint("my-bucket.oss-cn-beijing.aliyuncs.com") == "https://oss-cn-beijing.aliyuncs.com"
    with pytest.raises(QwenOpsError, match="path must be empty"):
        endpoint("http://[::1]:9000/some/path")


def test_bucket_notice_names_env(sb, env, project):
    (project / "x.bin").write_bytes(b"x")
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, "--json", env=oss_env(env, sb), cwd=project)
    assert result.code == 0 and json.loads(result.out)["backend"] == "custom-oss"
    bucket = sb.info["oss_bucket"]
    assert result.err.strip() == f"note: uploading to your bucket {bucket} (QWEN_TMP_OSS_BUCKET from env)"


def test_oss_pair_comes_from_the_callers_settings_not_os_environ(sb, env, project, monkeypatch):
    """A library caller's Settings decide; oss2 is never asked to read os.environ itself."""
    info = sb.info
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "LTAIfromProcessEnvWrong")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "processEnvWrongSecret")
    run_env = oss_env(env, sb, OSS_ACCESS_KEY_ID=info["oss_access_key_id"],
                      OSS_ACCESS_KEY_SECRET=info["oss_access_key_secret"])
    for name in ("QWEN_TMP_OSS_AK_ID", "QWEN_TMP_OSS_AK_SECRET"):
        run_env.pop(name)
    path = project / "lib.txt"
    path.write_bytes(b"library caller")
    outcome = upload_many([str(path)], MODEL, Settings.from_process(cwd=project, env=run_env), use_cache=False)[0]
    assert outcome.error is None, outcome.error


def test_doctor_reports_an_oss_network_failure_as_exit_8(env, sb, project):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        run_env = oss_env(env, sb, QWEN_TMP_OSS_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}")
        result = run_script("doctor.py", "--check-oss", "--timeout", "1", env=run_env, cwd=project,
                            timeout=60)
    finally:
        silent.close()
    assert result.code == errors.NETWORK and "[FAIL] oss put" in result.out, result.out + result.err


def test_an_oss_network_failure_says_its_cause(env, sb, project):
    """doctor --check-oss (and uploads) give the HTTP layer's cause, as the probe does: refused, not resolved,
    timed out, a certificate; never a bare "network error or timeout"."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()   # nothing listens there now: the connection is refused
    run_env = oss_env(env, sb, QWEN_TMP_OSS_ENDPOINT=f"http://127.0.0.1:{port}")
    result = run_script("doctor.py", "--check-oss", "--timeout", "5", env=run_env, cwd=project, timeout=60)
    [line] = [line for line in result.out.splitlines() if line.startswith("[FAIL] oss put")]
    assert result.code == errors.NETWORK and line.endswith("cannot reach OSS at 127.0.0.1: connection refused by "
                                                           "127.0.0.1"), line


def test_a_multipart_upload_holds_small_buffers_not_parts(sb, env, project):
    """Each part reads its own slice as it is sent and the sha256 is read beside them: a 64 MiB upload
    (8 parts of 8 MiB, 4 at a time) allocates a few MiB at most (tracemalloc's peak), not the parts in flight."""
    data = os.urandom(1024 * 1024) * 64
    (project / "big.bin").write_bytes(data)
    (project / "small.bin").write_bytes(b"warm up")
    code = ("import tracemalloc, sys, json; sys.path.insert(0, sys.argv[1]);"
            "from qianwen_ops.uploads import upload_many;"
            "upload_many(['small.bin'], 'qwen-vl-plus', use_cache=False);"
            "tracemalloc.start();"
            "out = upload_many(['big.bin'], 'qwen-vl-plus', use_cache=False)[0];"
            "print(json.dumps([out.error is None and out.upload.sha256, tracemalloc.get_traced_memory()[1] / 2**20]))")
    done = subprocess.run([sys.executable, "-c", code, str(SCRIPTS)], env=oss_env(env, sb), cwd=project,
                          capture_output=True, text=True, timeout=120)
    sha, grown_mib = json.loads(done.stdout)
    assert sha == hashlib.sha256(data).hexdigest(), done.stderr
    assert grown_mib < 8, grown_mib   # holding the parts in flight cost 24 MiB and more


def test_a_file_rewritten_in_place_during_a_multipart_upload_is_caught_even_with_mtime_put_back(sb, env, project,
                                                                                                monkeypatch):
    """The parts and the sha256 read the file separately: a write between them, even one that restores the
    modification time, moves ctime, so the upload fails (exit 10) instead of returning a sha256 of other bytes."""
    monkeypatch.setattr(custom_oss, "MULTIPART_THRESHOLD", 256 * 1024)
    monkeypatch.setattr(custom_oss, "PART_SIZE", 100 * 1024)
    path = project / "edited.bin"
    path.write_bytes(os.urandom(1024 * 1024))
    info = os.stat(path)
    edited = []

    def progress(source, sent, total):
        if not edited:
            edited.append(1)
            with open(path, "r+b") as handle:
                handle.write(b"\0" * 4096)
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

    settings = Settings.from_process(cwd=project, env=oss_env(env, sb))
    outcome = upload_many([str(path)], MODEL, settings, use_cache=False, concurrency=1, progress=progress)[0]
    assert os.stat(path).st_mtime_ns == info.st_mtime_ns and edited
    assert outcome.error is not None and outcome.error.exit_code == errors.INPUT_FILE, outcome
    assert "changed while it was being uploaded" in outcome.error.message


def test_a_presigned_url_is_the_product_and_evidence_and_cache_keep_no_more(sb, env, project, tmp_path):
    """With STS credentials the URL printed carries x-oss-security-token and a signature by design (it is what the
    model fetches; references/custom-oss.md says so): the evidence keeps it without its query, the reuse cache
    (0600) keeps that URL and nothing else secret, and the AccessKey secret is nowhere."""
    info = sb.info
    token, secret = info["oss_session_token"], info["oss_sts_access_key_secret"]
    (project / "sts.png").write_bytes(os.urandom(300))
    done = run_script("upload_file.py", "sts.png", "--model", MODEL, "--json", env=oss_env(env, sb, pair="sts"),
                      cwd=project)
    assert done.code == 0, done.err
    url = json.loads(done.out)["url"]
    query = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))
    assert query["x-oss-security-token"] and query["x-oss-signature"]          # the product, by design
    assert leaks(done.err, (token, secret)) == [] and leaks(done.out, (secret,)) == []
    evidence = "".join(p.read_text() for p in (project / "output").rglob("*") if p.is_file())
    assert "sts.png" in evidence and url.split("?")[0] in evidence
    assert leaks(evidence, (token, secret, query["x-oss-signature"])) == [] and "x-oss-" not in evidence
    [cache] = (tmp_path / "cache").rglob("uploads.jsonl")
    assert mode_is(cache, 0o600)
    [line] = cache.read_text().splitlines()
    entry = json.loads(line)["entry"]
    assert entry["url"] == url                                                   # what the cache must keep to reuse
    rest = json.dumps({k: v for k, v in entry.items() if k != "url"})
    assert leaks(rest, (token, secret, query["x-oss-signature"])) == [] and secret not in cache.read_text()
