"""Shared fixtures and helpers: the sandbox as a real child process, a clean environment, the script runner,
the library's Settings for a test, git in a test's own repository, a small loopback HTTP server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from forward_proxy import ForwardProxy

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
UPDATE_SKILL = ROOT / "skills" / "qianwen-update-check"
sys.path.insert(0, str(SCRIPTS))

# Platform limits: a test that cannot run somewhere is skipped there with this reason, never silently.
WINDOWS = os.name == "nt"
# QWEN_TEST_WINDOWS_LAYER=1: every script the tests start runs under the Windows-semantics layer
# (tests/winshim), and a test fails if one of its scripts opened a file in text mode or renamed or deleted
# a file it held open (docs/platforms.md). Tests of POSIX modes and owners are skipped in that mode.
WINDOWS_LAYER = bool(os.environ.get("QWEN_TEST_WINDOWS_LAYER")) and not WINDOWS


def _can_symlink() -> bool:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        try:
            os.symlink(folder, os.path.join(folder, "link"))
            return True
        except (OSError, NotImplementedError):
            return False


needs_posix_modes = pytest.mark.skipif(WINDOWS or WINDOWS_LAYER, reason="Windows: rwx mode bits (chmod, st_mode) "
                                       "mean nothing there (ACLs decide); docs/platforms.md")
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform (os.mkfifo: Windows)")
needs_symlinks = pytest.mark.skipif(not _can_symlink(), reason="symbolic links cannot be made here (Windows "
                                    "without Developer Mode or administrator rights)")
needs_sigint = pytest.mark.skipif(WINDOWS, reason="Windows: Popen.send_signal(SIGINT) is not supported; Ctrl-C "
                                  "reaches only a console process group")
needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="chown to another user needs root (CI runners and users are not root)")
needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux's /proc")
needs_rlimit = pytest.mark.skipif(WINDOWS or WINDOWS_LAYER,
                                  reason="Windows: no RLIMIT_FSIZE/SIGXFSZ to make a write fail part-way")


def mode_is(path, mode: int) -> bool:
    """``path``'s permission bits are exactly ``mode``. On Windows, where ``st_mode`` only mirrors the
    read-only attribute, always True: the check is POSIX-only there (docs/platforms.md says so)."""
    import stat

    return WINDOWS or stat.S_IMODE(os.stat(path).st_mode) == mode

# Error bodies that made a lazy regex quadratic: each must be parsed in linear time (http_client, probe).
BIG = 64 * 1024
HOSTILE_BODIES = {
    "open Code tags": b"<Code>" * (BIG // 6),
    "open Message tags": b"<Code>x</Code>" + b"<Message>" * (BIG // 9),
    "open RequestId tags": b"<RequestId>" * (BIG // 11),
    "open secret elements": b"<Error><Message>" + b"<StringToSign>" * (BIG // 14) + b"</Message></Error>",
    "mixed case secret elements": b"<stringtosignbytes><CanonicalRequest>" * (BIG // 37),
}
OTHER_KEY = "sk-Other-Key-4f7a9c2e"   # a second, different key (key-source tests)
MODEL = "qwen-vl-plus"   # the model the upload tests name (the sandbox binds policies and URLs to it)

# Canary secrets: if any 6-character slice of these ever shows up in output, a test fails.
# (Hyphens keep them from looking like real keys to the repository scan.)
CANARY_KEY = "sk-Zq8-Wv4t-Rm2x-Lp6n-Hj3k"
CANARY_OSS_SECRET = "Oss-Yb7c-Ne5d-Tf9g-Ua1h"
CANARY_OSS_ID = "LTAI-Gx4s-Kc8v-Pw2m"
SCRUB_PREFIXES = ("QIANWEN_", "DASHSCOPE_", "QWEN_", "OSS_", "XDG_")
# Set on this workplace's machines, not on users': a test that passes only with one of these is wrong.
WORKPLACE_VARIABLES = ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING", "SSL_CERT_FILE",
                       "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


def leaks(text: str, secrets=(CANARY_KEY, CANARY_OSS_SECRET)) -> list:
    """Every 6+ character slice of a secret found in ``text``."""
    found = []
    for secret in secrets:
        for i in range(len(secret) - 5):
            piece = secret[i:i + 6]
            if piece in text:
                found.append(piece)
    return found


@dataclass
class SandboxProc:
    info: dict
    process: subprocess.Popen

    @property
    def base_url(self) -> str:
        return self.info["base_url"]

    @property
    def api_key(self) -> str:
        return self.info["api_key"]

    def _post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.base_url + path, json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict:
        with urllib.request.urlopen(self.base_url + "/_sandbox/stats", timeout=10) as resp:
            return json.loads(resp.read())

    def counts(self) -> dict:
        return self.stats()["counts"]

    def objects(self) -> dict:
        """Every object the sandbox stores, by key."""
        return {o["key"]: o for o in self.stats()["objects"]}

    def uploads_sent(self) -> int:
        """Requests that could carry a file: getPolicy, PostObject and every custom-OSS call."""
        counts = self.counts()
        return counts["getPolicy"] + counts["postObject"] + counts["oss"]

    def fault(self, **spec) -> dict:
        return self._post("/_sandbox/faults", spec)

    def clear_faults(self) -> None:
        self._post("/_sandbox/faults", {"clear": True})

    def advance_clock(self, seconds: float) -> None:
        self._post("/_sandbox/clock", {"advance_s": seconds})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def read_json_line(proc: subprocess.Popen, timeout: float = 20.0) -> dict:
    """The child's first stdout line as JSON, within ``timeout`` even if the line never ends.

    Read in a thread (``select`` cannot wait on a pipe on Windows); the child is killed on timeout,
    which ends the read."""
    got: list = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        proc.kill()
        reader.join(10)
        raise RuntimeError(f"no ready line from the child within {timeout:g} s")
    line = got[0] if got else ""
    if not line.strip():
        raise RuntimeError("the child exited before printing its ready line")
    return json.loads(line)


def start_sandbox(*args: str) -> SandboxProc:
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "sandbox.py"), "--quiet", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return SandboxProc(read_json_line(proc), proc)


@pytest.fixture(scope="session")
def sandbox():
    box = start_sandbox()
    yield box
    box.stop()


@pytest.fixture
def sb(sandbox):
    """The session sandbox, with faults cleared after each test."""
    yield sandbox
    sandbox.clear_faults()


@pytest.fixture
def make_sandbox():
    started = []

    def make(*args: str) -> SandboxProc:
        box = start_sandbox(*args)
        started.append(box)
        return box

    yield make
    for box in started:
        box.stop()


@pytest.fixture
def env(tmp_path):
    """A clean environment, as on a user's machine: no inherited keys, none of this workplace's
    variables, HOME and caches inside tmp_path."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(SCRUB_PREFIXES) and k not in WORKPLACE_VARIABLES}
    home = tmp_path / "home"
    home.mkdir()
    clean.update(HOME=str(home), XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_STATE_HOME=str(tmp_path / "state"),
                 PYTHONDONTWRITEBYTECODE="1", QWEN_UPDATE_URL="http://127.0.0.1:9/version.json",
                 LC_ALL="C.UTF-8")
    if WINDOWS_LAYER:
        clean.update(PYTHONPATH=str(ROOT / "tests" / "winshim"), QWEN_WINSHIM_LOG=str(tmp_path / "winshim.jsonl"))
    return clean


@pytest.fixture(autouse=True)
def _windows_layer_verdict(request):
    """With QWEN_TEST_WINDOWS_LAYER: what the layer saw the test's scripts do wrong fails the test."""
    watched = WINDOWS_LAYER and "env" in request.fixturenames
    log = request.getfixturevalue("tmp_path") / "winshim.jsonl" if watched else None
    yield
    if log is None:
        return
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    bad = [line for line in lines if '"event": "loaded"' not in line and '"event": "msvcrt.locking"' not in line]
    assert not bad, "under the Windows layer: " + "; ".join(bad[:5])


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_script(script: str, *args: str, env: dict, cwd: Path, stdin: str | None = None,
               timeout: float = 120, python: list | None = None) -> Result:
    path = UPDATE_SKILL / "scripts" / script if script == "check_update.py" else SCRIPTS / script
    done = subprocess.run([*(python or [sys.executable]), str(path), *args], env=env, cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)


def assert_clean_error(result: Result) -> None:
    """A failure is one line on stderr, no traceback."""
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) >= 1
    for line in lines:
        assert line.startswith(("error:", "usage:")) or ": error:" in line, line


def sandbox_env(env: dict, box: SandboxProc, key: str | None = None) -> dict:
    return dict(env, QWEN_BASE_URL=box.base_url, DASHSCOPE_API_KEY=key or box.api_key)


def oss_env(env: dict, box: SandboxProc, pair: str = "own", **extra) -> dict:
    """``sandbox_env`` plus custom-OSS mode on the sandbox's bucket, with the AccessKey pair from ``pair``:
    ``own`` (QWEN_TMP_OSS_AK_*), ``oss`` (OSS_ACCESS_KEY_*) or ``sts`` (those and OSS_SESSION_TOKEN)."""
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


def without_notice(result: Result) -> Result:
    """The stderr lines after the one 'note: uploading to your bucket ...' line (which must be there)."""
    lines = result.err.splitlines()
    assert lines and lines[0].startswith("note: uploading to your bucket "), result.err
    return Result(result.code, result.out, "\n".join(lines[1:]))


def fetch(url: str) -> bytes:
    """The body of a GET (a presigned URL, the sandbox's own pages)."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read()


def write_cli_config(folder: Path, data) -> None:
    """The Model Studio CLI's ``config.json`` in ``folder``: ``data`` as JSON, or as it is when a string."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(data if isinstance(data, str) else json.dumps(data))


def settings_at(cwd, env: dict | None = None, **variables):
    """The library's ``Settings`` for ``cwd`` with exactly ``env`` (plus ``variables``) as the process environment."""
    from qianwen_ops.settings import Settings

    return Settings.from_process(cwd=cwd, env={**(env or {}), **variables})


def sandbox_settings(env: dict, box: SandboxProc, cwd, key: str | None = None, **variables):
    """``settings_at`` for a library call against the sandbox (``sandbox_env``)."""
    return settings_at(cwd, sandbox_env(env, box, key), **variables)


def git(cwd, *args: str) -> None:
    """git in a test's own repository: a fixed identity for commits, output captured, a failure raised."""
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd, check=True,
                   capture_output=True)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler for a test's own small server: nothing logged, and two shorthands."""

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        """``status`` with ``headers`` and ``body`` (its Content-Length included)."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serving(handler, server_class=ThreadingHTTPServer):
    """``handler`` served on 127.0.0.1 (a free port) by a daemon thread for the ``with`` block; yields the server,
    its ``url`` set to ``http://127.0.0.1:<port>``."""
    server = server_class(("127.0.0.1", 0), handler)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def pytest_configure(config):
    """A test run started in the background (``cmd &`` in a script, nohup) ignores SIGINT, and every
    script it starts would too (an ignored signal stays ignored across exec): give the processes
    the usual Ctrl-C, which the Ctrl-C tests send."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def interrupt_when(argv: list, ready, env: dict, cwd: Path) -> tuple:
    """Start a script, send it Ctrl-C once ``ready()`` is true; (exit code, stdout, stderr, seconds to exit).

    Skips on Windows (the caller's test with it), with ``needs_sigint``'s reason."""
    if WINDOWS:
        pytest.skip(needs_sigint.kwargs["reason"])
    proc = subprocess.Popen([sys.executable, *map(str, argv)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_until(ready, timeout=30)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
        return proc.returncode, out, err, time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll a condition (used only for conditions, never as a fixed wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


class Listener:
    """A loopback port that records every connection and byte (an attacker's host or proxy)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.received.append(conn.recv(65536))
            except OSError:
                self.received.append(b"")
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    box = Listener()
    yield box
    box.close()


# -- the network's real parts: a TLS sandbox (trustme CAs) and a forward proxy (tests/forward_proxy.py)

PROXY_AND_CA = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "REQUEST_METHOD")
REGION_HOSTS = ("dashscope.aliyuncs.com", "dashscope-intl.aliyuncs.com", "dashscope-us.aliyuncs.com")
OSS_HOST = "oss-cn-beijing.aliyuncs.com"  # the sandbox's getPolicy names it; only the proxy routes it
UNAUTHORIZED = json.dumps({"code": "InvalidApiKey", "message": "Invalid API-key provided.",
                           "request_id": "r-1"}).encode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Three CAs: the sandbox's, a company proxy's (inspecting), and an unrelated one."""
    import trustme  # the cryptography stack: only for the tests that make certificates

    folder = tmp_path_factory.mktemp("pki")
    server_ca, company_ca, other_ca = trustme.CA(), trustme.CA(), trustme.CA()
    cert = server_ca.issue_cert("127.0.0.1", "::1", "localhost", OSS_HOST, *REGION_HOSTS)
    cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    for name, ca in (("server-ca", server_ca), ("company-ca", company_ca), ("other-ca", other_ca)):
        ca.cert_pem.write_to_path(str(folder / f"{name}.pem"))
    return {"dir": folder, "server_ca": server_ca, "company_ca": company_ca,
            **{name: str(folder / f"{name}.pem") for name in ("server", "server-ca", "company-ca", "other-ca")}}


@pytest.fixture(scope="module")
def tls_box(pki):
    box = start_sandbox("--tls-cert", pki["server"], "--tls-key", pki["server"],
                        "--upload-host", f"https://{OSS_HOST}/dashscope-sandbox-temp")
    yield box
    box.stop()


def api_address(box) -> tuple:
    return "127.0.0.1", int(box.base_url.rsplit(":", 1)[1])


@pytest.fixture
def proxies():
    started = []

    def make(**kwargs) -> ForwardProxy:
        proxy = ForwardProxy(**kwargs)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.close()


@pytest.fixture
def net_env(env, tls_box):
    """No inherited proxy or CA variables; the sandbox's key; trust the sandbox's CA."""
    clean = {k: v for k, v in env.items() if k not in PROXY_AND_CA}
    return dict(clean, DASHSCOPE_API_KEY=tls_box.api_key)


# -- what a model call does with the URLs (the sandbox reads them as DashScope would)

RESOLVE = {"X-DashScope-OssResourceResolve": "enable"}


def chat(box, urls, headers=None, key=None, model=MODEL):
    """A chat completion naming ``urls`` as images, sent to the sandbox: (HTTP status, JSON body)."""
    content = [{"type": "image_url", "image_url": {"url": u}} for u in urls] + [{"type": "text", "text": "hi"}]
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode()
    req = urllib.request.Request(box.base_url + "/compatible-mode/v1/chat/completions", body,
                                 {"Authorization": f"Bearer {key or box.api_key}", "Content-Type": "application/json",
                                  **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
