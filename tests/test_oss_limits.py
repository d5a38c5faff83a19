"""Custom OSS under the same limits as the rest: no redirects, --timeout, one URL validator,
files that vanish mid-upload, quiet logging, and .env files that may not redirect uploads."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_custom_oss import oss_env  # one helper for the custom-OSS environment

from conftest import SCRIPTS, assert_clean_error, run_script
from qianwen_ops import custom_oss, errors
from qianwen_ops.custom_oss import CustomOss, load_config
from qianwen_ops.endpoints import parse_url
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.local_files import check_file
from qianwen_ops.settings import Settings
from qianwen_ops.uploads import upload_many

MODEL = "qwen-vl-plus"


class _Server:
    """A loopback HTTP server in a thread; ``seen`` keeps (method, path, headers) of every request."""

    def __init__(self, answer):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                seen.append((self.command, self.path, dict(self.headers.items())))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                answer(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

            def log_message(self, *args):
                pass

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
    assert result.code == errors.NETWORK and "network error or timeout" in result.err, result.err
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


# ---------------------------------------------------------------- one URL validator

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


def test_malformed_host_label_in_base_url_is_exit_9(env, project):
    """(more malformed hosts in test_endpoints.py, without a subprocess)"""
    result = run_script("probe.py", env=dict(env, DASHSCOPE_API_KEY="sk-abcdef123456",
                                             QWEN_BASE_URL="https://a..invalid"), cwd=project)
    assert result.code == 9 and "QWEN_BASE_URL" in result.err
    assert_clean_error(result)


# ---------------------------------------------------------------- .env files may not redirect

def _git(project, *args):
    subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@e", HOME=str(project)))


def test_tracked_dotenv_cannot_choose_the_bucket(sb, env, project):
    info = sb.info
    (project / ".env").write_text(f"QWEN_TMP_OSS_BUCKET={info['oss_bucket']}\nQWEN_TMP_OSS_REGION=cn-beijing\n")
    _git(project, "init", "-q")
    _git(project, "add", ".env")
    _git(project, "commit", "-qm", "a cloned repository's .env")
    (project / "x.bin").write_bytes(b"x")
    run_env = oss_env(env, sb)
    for name in ("QWEN_TMP_OSS_BUCKET", "QWEN_TMP_OSS_REGION"):
        run_env.pop(name)
    before = sb.counts()
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=run_env, cwd=project)
    assert result.code == 9 and sb.counts() == before
    assert f"QWEN_TMP_OSS_BUCKET in {project / '.env'} is not used: git tracks that file" in result.err
    assert "set QWEN_TMP_OSS_BUCKET in the environment" in result.err
    assert_clean_error(result)
    # the same lines in a .env that git does not track are the user's own: they work
    _git(project, "rm", "-q", "--cached", ".env")
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=run_env, cwd=project)
    assert result.code == 0, result.err
    assert f"(QWEN_TMP_OSS_BUCKET from {project / '.env'})" in result.err


def test_tracked_dotenv_cannot_choose_the_api_host(env, project):
    (project / ".env").write_text("QWEN_BASE_URL=https://dashscope-intl.aliyuncs.com\n")
    _git(project, "init", "-q")
    _git(project, "add", ".env")
    result = run_script("probe.py", env=dict(env, DASHSCOPE_API_KEY="sk-abcdef123456"), cwd=project)
    assert result.code == 9 and "git tracks that file" in result.err
    assert_clean_error(result)


@pytest.mark.parametrize("line,name,script", [
    ("QWEN_BASE_URL=http://127.0.0.1:9", "QWEN_BASE_URL", "probe.py"),
    ("QWEN_TMP_OSS_ENDPOINT=http://127.0.0.1:9", "QWEN_TMP_OSS_ENDPOINT", "upload_file.py"),
])
def test_loopback_endpoints_only_from_the_environment(sb, env, project, line, name, script):
    (project / ".env").write_text(line + "\n")
    run_env = oss_env(env, sb) if script == "upload_file.py" else dict(env, DASHSCOPE_API_KEY="sk-abcdef123456")
    run_env.pop(name, None)
    (project / "x.bin").write_bytes(b"x")
    args = ["x.bin", "--model", MODEL] if script == "upload_file.py" else []
    result = run_script(script, *args, env=run_env, cwd=project)
    assert result.code == 9 and f"{name} in {project / '.env'} points to 127.0.0.1, which is a loopback host" \
        in result.err, result.err


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
