#!/usr/bin/env python3
"""Every benchmark of the bundle against loopback servers, in one run, written to docs/benchmarks.md.

Each figure is the median of several runs of whole processes, ours and the baseline
alternating, so both see the same machine state; the report gives the spread (min-max)
beside every median, and ratios first, because this shared machine is noisy in absolute
terms. Peak RSS is the child's own, measured by ``/usr/bin/time`` (GNU time's %M):
``os.wait4`` from this process would report at least this process's own peak, since a
child's ``ru_maxrss`` includes the memory it had before ``exec``. Children get the
environment as users have it (bytecode caches allowed; PYTHONDONTWRITEBYTECODE removed).
Needs the test environment (dashscope, oss2) and curl.

    .venv/bin/python bench/run.py            # full sizes (1 GiB, 2,000 files, 50 ms): several minutes
    .venv/bin/python bench/run.py --quick    # smoke sizes, the cases side by side (the tests run this)
    .venv/bin/python bench/run.py --null-sink  # (internal) the discarding upload server
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
MODEL = "qwen-vl-plus"
MIB = 1024 * 1024
GNU_TIME = "/usr/bin/time"
LATENCY_MS = 50
sys.path.insert(0, str(SCRIPTS))


# ---------------------------------------------------------------- measuring whole processes

@dataclass
class Runs:
    """Wall seconds (and peak RSS in MiB when measured) of repeated runs of one command."""

    walls: list = field(default_factory=list)
    rss: list = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    def spread(self, unit: str = "s") -> str:
        if unit == "ms":
            return f"{self.median * 1000:.0f} ms ({min(self.walls) * 1000:.0f}-{max(self.walls) * 1000:.0f})"
        return f"{self.median:.2f} s ({min(self.walls):.2f}-{max(self.walls):.2f})"

    def as_dict(self) -> dict:
        return {"median": self.median, "min": min(self.walls), "max": max(self.walls), "walls": self.walls,
                "peak_rss_mib": max(self.rss) if self.rss else None}


def run(argv: list, env: dict, cwd: Path, runs: Runs | None = None, measure_rss: bool = False,
        ok: tuple = (0,)) -> str:
    """Run one whole process; append its wall time (and peak RSS) to ``runs``; return its stdout."""
    rss_file = None
    if measure_rss and os.path.exists(GNU_TIME):
        fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
        os.close(fd)
        argv = [GNU_TIME, "-f", "%M", "-o", rss_file, *argv]
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if done.returncode not in ok:
        raise RuntimeError(f"{argv[:4]} exited {done.returncode}: {(done.stdout + done.stderr)[-800:]}")
    if runs is not None:
        runs.walls.append(wall)
        if rss_file is not None:
            text = Path(rss_file).read_text().split()
            runs.rss.append(int(text[-1]) / 1024)
    if rss_file is not None:
        os.unlink(rss_file)
    return done.stdout


def our_env(base_url: str, api_key: str, work: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("QIANWEN_", "DASHSCOPE_", "QWEN_", "OSS_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(QWEN_BASE_URL=base_url, DASHSCOPE_API_KEY=api_key, XDG_CACHE_HOME=str(work / "cache"),
               XDG_STATE_HOME=str(work / "state"), HOME=str(work / "home"))
    env.update(extra or {})
    return env


def upload_cmd(*args: str) -> list:
    return [sys.executable, str(SCRIPTS / "upload_file.py"), *args]


# ---------------------------------------------------------------- servers

class Sandbox:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, str(SCRIPTS / "sandbox.py"), "--quiet", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.proc.stdout.readline())

    def env(self, work: Path, custom_oss: bool = False) -> dict:
        info = self.info
        extra = {}
        if custom_oss:
            extra = {"QWEN_TMP_OSS_BUCKET": info["oss_bucket"], "QWEN_TMP_OSS_REGION": info["oss_region"],
                     "QWEN_TMP_OSS_ENDPOINT": info["oss_endpoint"], "QWEN_TMP_OSS_AK_ID": info["oss_access_key_id"],
                     "QWEN_TMP_OSS_AK_SECRET": info["oss_access_key_secret"]}
        return our_env(info["base_url"], info["api_key"], work, extra)

    def call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.info["base_url"] + path, data, method="POST" if data else "GET")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def counts(self) -> dict:
        return self.call("/_sandbox/stats")["counts"]

    def purge(self) -> None:
        self.call("/_sandbox/purge", {})

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class _SinkHandler(socketserver.BaseRequestHandler):
    """Just enough HTTP/1.1: getPolicy answers a policy pointing back here; any POST body is discarded."""

    def handle(self) -> None:
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            left = int(headers.get("content-length", "0")) - len(pending)
            if headers.get("expect", "").lower() == "100-continue":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            pending = b"" if left >= 0 else pending[left:]
            while left > 0:
                got = sock.recv_into(view, min(left, len(buf)))
                if not got:
                    return
                left -= got
            if method == "GET" and target.startswith("/api/v1/uploads"):
                host, port = sock.getsockname()[:2]
                body = json.dumps({"request_id": "sink", "data": {
                    "policy": "p", "signature": "s", "upload_dir": "sink/dir", "upload_host": f"http://{host}:{port}",
                    "oss_access_key_id": "sink", "expire_in_seconds": 300, "max_file_size_mb": 4096,
                    "x_oss_object_acl": "private", "x_oss_forbid_overwrite": "true"}}).encode()
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
            else:
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


class _SinkServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def null_sink_main() -> int:
    server = _SinkServer(("127.0.0.1", 0), _SinkHandler)
    print(json.dumps({"base_url": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    server.serve_forever()
    return 0


class NullSink:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--null-sink"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.base_url = json.loads(self.proc.stdout.readline())["base_url"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# ---------------------------------------------------------------- files and baselines

def make_file(path: Path, size: int) -> Path:
    chunk = os.urandom(MIB)
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            handle.write(chunk[:min(MIB, left)])
            left -= MIB
    return path


def make_files(folder: Path, count: int, size: int, tag: str = "f") -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{tag}{i:05d}.bin"
        path.write_bytes(os.urandom(size - 8) + i.to_bytes(8, "big"))
        paths.append(str(path))
    return paths


SDK_UPLOAD = """
import sys
from dashscope.utils.oss_utils import OssUtils
base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
for path in sys.argv[4:]:
    url, cert = OssUtils.upload(model=model, file_path=path, api_key=key, base_address=base)
print(url)
"""

OSS2_PUT = """
import sys, oss2
ep, bucket, region, ak, sk, key, path = sys.argv[1:8]
b = oss2.Bucket(oss2.AuthV4(ak, sk), ep, bucket, region=region)
b.put_object_from_file(key, path)
print(b.sign_url("GET", key, 3600))
"""

# The same settings custom_oss.py hands oss2 (threads, part size, threshold, CRC off): only our code differs.
OSS2_RESUMABLE = """
import sys, tempfile, oss2
ep, bucket, region, ak, sk, key, path = sys.argv[1:8]
threshold, part_size, threads = map(int, sys.argv[8:11])
b = oss2.Bucket(oss2.AuthV4(ak, sk), ep, bucket, region=region, enable_crc=False)
store = oss2.ResumableStore(root=tempfile.mkdtemp(), dir="cp")
oss2.resumable_upload(b, key, path, store=store, multipart_threshold=threshold, part_size=part_size,
                      num_threads=threads)
print(b.sign_url("GET", key, 3600))
"""


# The limit of an upload: the same multipart form as upload_file.py (fields from one getPolicy made by the
# benchmark, file last), its file part sent by socket.sendfile (no copy through user space), no hashing.
SENDFILE_POST = """
import json, os, socket, sys
from urllib.parse import urlsplit
host, fields, path = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
boundary = "----limit" + os.urandom(16).hex()
head = b"".join(f'--{boundary}\\r\\nContent-Disposition: form-data; name="{k}"\\r\\n\\r\\n{v}\\r\\n'.encode()
                for k, v in fields)
head += (f'--{boundary}\\r\\nContent-Disposition: form-data; name="file"; filename="{os.path.basename(path)}"'
         '\\r\\nContent-Type: application/octet-stream\\r\\n\\r\\n').encode()
tail = f"\\r\\n--{boundary}--\\r\\n".encode()
size, target = os.path.getsize(path), urlsplit(host)
with socket.create_connection((target.hostname, target.port)) as sock, open(path, "rb") as f:
    sock.sendall(f"POST {target.path or '/'} HTTP/1.1\\r\\nHost: {target.netloc}\\r\\nContent-Type: "
                 f"multipart/form-data; boundary={boundary}\\r\\nContent-Length: {len(head) + size + len(tail)}"
                 "\\r\\n\\r\\n".encode() + head)
    sock.sendfile(f)
    sock.sendall(tail)
    print(sock.recv(65536).split(b" ", 2)[1].decode())
"""

# The limit of a rerun of cached files: a Python process that stats each file and prints one line for it.
STAT_FLOOR = """
import os, sys
for path in sys.argv[1:]:
    os.stat(path)
    print(path)
"""


def bare_probe() -> list:
    body = json.dumps({"model": "qwen-turbo", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
    code = ("import urllib.request,os;r=urllib.request.Request(os.environ['QWEN_BASE_URL']+"
            "'/compatible-mode/v1/chat/completions'," + repr(body) + ".encode(),{'Authorization':'Bearer '+"
            "os.environ['DASHSCOPE_API_KEY'],'Content-Type':'application/json'});"
            "print(urllib.request.urlopen(r,timeout=15).status)")
    return [sys.executable, "-c", code]


# ---------------------------------------------------------------- cases

def bench_probe(work: Path, rounds: int, latency_ms: int = 0) -> dict:
    box = Sandbox("--latency-ms", str(latency_ms))
    env = box.env(work)
    ours, bare, sdk = Runs(), Runs(), Runs()
    try:
        for index in range(rounds):
            run([sys.executable, str(SCRIPTS / "probe.py")], env, work, ours)
            run(bare_probe(), env, work, bare)
            if not latency_ms and index < 10:  # ~1 s each; ten runs say enough about a 10x gap
                run([sys.executable, "-c", "import dashscope"], env, work, sdk)
    finally:
        box.stop()
    out = {"latency_ms": latency_ms, "probe": ours.as_dict(), "bare_urllib": bare.as_dict()}
    if sdk.walls:
        out["sdk_import"] = sdk.as_dict()
    return out


def policy_form(base_url: str, path: Path, key: str | None = None) -> tuple:
    """(upload host, form fields) as upload_file.py sends them, from one getPolicy (made here, not timed)."""
    req = urllib.request.Request(f"{base_url}/api/v1/uploads?action=getPolicy&model={MODEL}",
                                 headers={"Authorization": f"Bearer {key or 'sk-sink'}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        policy = json.loads(resp.read())["data"]
    fields = {"OSSAccessKeyId": policy["oss_access_key_id"], "Signature": policy["signature"],
              "policy": policy["policy"], "key": policy["upload_dir"] + "/" + os.urandom(6).hex() + "_" + path.name,
              "x-oss-object-acl": "private", "x-oss-forbid-overwrite": "true", "success_action_status": "200",
              "x-oss-content-type": "application/octet-stream"}
    return policy["upload_host"], fields


def sendfile_post(base_url: str, path: Path) -> list:
    host, fields = policy_form(base_url, path)
    return [sys.executable, "-c", SENDFILE_POST, host, json.dumps(list(fields.items())), str(path)]


def curl_form(base_url: str, path: Path, key: str | None = None) -> list:
    host, fields = policy_form(base_url, path, key)
    fields.pop("x-oss-content-type")
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"]
    for name, value in fields.items():
        argv += ["-F", f"{name}={value}"]
    return argv + ["-F", f"file=@{path}", host]


def bench_big_upload(work: Path, size: int, rounds: int) -> dict:
    """Sandbox (stores the file): our wall vs curl -F, and our peak RSS vs the official SDK's."""
    box = Sandbox("--max-file-mb", str(size // MIB + 1))
    env = box.env(work)
    path = make_file(work / "big.bin", size)
    ours, curl, sdk = Runs(), Runs(), Runs()
    try:
        for _ in range(rounds):
            run(upload_cmd(str(path), "--model", MODEL, "--no-cache"), env, work, ours, measure_rss=True)
            box.purge()
            argv = curl_form(box.info["base_url"], path, box.info["api_key"])
            assert run(argv, env, work, curl).strip() == "200"
            box.purge()
            run([sys.executable, "-c", SDK_UPLOAD, box.info["base_url"] + "/api/v1", box.info["api_key"], MODEL,
                 str(path)], env, work, sdk, measure_rss=True)
            box.purge()
    finally:
        box.stop()
        path.unlink()
    return {"size_mib": size // MIB, "ours": ours.as_dict(), "curl": curl.as_dict(), "sdk": sdk.as_dict()}


def bench_null_sink(work: Path, size: int, rounds: int) -> dict:
    """A sink that discards the body: the figure measures our client (read, hash, send), not a server."""
    sink = NullSink()
    env = our_env(sink.base_url, "sk-" + "0" * 32, work)
    path = make_file(work / "sink.bin", size)
    ours, curl, limit, hit = Runs(), Runs(), Runs(), Runs()
    try:
        for _ in range(rounds):
            run(upload_cmd(str(path), "--model", MODEL, "--no-cache"), env, work, ours, measure_rss=True)
            assert run(sendfile_post(sink.base_url, path), env, work, limit).strip() == "200"
            assert run(curl_form(sink.base_url, path), env, work, curl).strip() == "200"
        run(upload_cmd(str(path), "--model", MODEL), env, work)          # fills the cache
        for _ in range(rounds):
            run(upload_cmd(str(path), "--model", MODEL), env, work, hit)  # a hit: no read, no request
    finally:
        sink.stop()
        path.unlink()
    return {"size_mib": size // MIB, "ours": ours.as_dict(), "curl": curl.as_dict(), "sendfile": limit.as_dict(),
            "cache_hit": hit.as_dict()}


def bench_cache_hits(work: Path, count: int, rounds: int) -> dict:
    """A rerun of ``count`` cached files (no read, no request) vs a process that stats them and prints a line each."""
    box = Sandbox("--qps", "100000")
    env = box.env(work)
    paths = make_files(work / "hits", count, 1024, "h")
    ours, floor = Runs(), Runs()
    try:
        run(upload_cmd(*paths, "--model", MODEL), env, work)   # fills the cache
        before = box.counts()
        for _ in range(rounds):
            run(upload_cmd(*paths, "--model", MODEL), env, work, ours)
            run([sys.executable, "-c", STAT_FLOOR, *paths], env, work, floor)
        requests = sum(box.counts().values()) - sum(before.values())
    finally:
        box.stop()
        shutil.rmtree(work / "hits", ignore_errors=True)
        shutil.rmtree(work / "cache", ignore_errors=True)
    return {"count": count, "ours": ours.as_dict(), "stat_floor": floor.as_dict(), "requests": requests}


def bench_batch(work: Path, count: int, size: int, rounds: int, latency_ms: int = 0, sdk_rounds: int = 0) -> dict:
    """Many small files: ours (default concurrency, one getPolicy) vs the official SDK one file at a time."""
    box = Sandbox("--qps", "100000", "--latency-ms", str(latency_ms))
    env = box.env(work)
    paths = make_files(work / f"batch{latency_ms}", count, size)
    ours, sdk = Runs(), Runs()
    requests = None
    try:
        for i in range(rounds):
            run(upload_cmd(*paths, "--model", MODEL, "--no-cache"), env, work, ours)
            if i < (sdk_rounds or rounds):
                run([sys.executable, "-c", SDK_UPLOAD, box.info["base_url"] + "/api/v1", box.info["api_key"], MODEL,
                     *paths], env, work, sdk)
            box.purge()
        if not latency_ms:
            run(upload_cmd(*paths, "--model", MODEL), env, work)
            before = box.counts()
            run(upload_cmd(*paths, "--model", MODEL), env, work)
            requests = sum(box.counts().values()) - sum(before.values())
    finally:
        box.stop()
        shutil.rmtree(work / f"batch{latency_ms}", ignore_errors=True)
        shutil.rmtree(work / "cache", ignore_errors=True)
    return {"count": count, "size_kib": size // 1024, "latency_ms": latency_ms, "ours": ours.as_dict(),
            "sdk": sdk.as_dict(), "cache_hit_requests": requests}


def bench_cache_on_off(work: Path, count: int, cached: int, new: int, rounds: int) -> dict:
    """The default path (reuse cache on) vs --no-cache: a big first batch, and new files beside a full cache."""
    box = Sandbox("--qps", "100000")
    env = box.env(work)
    cache_file = work / "cache" / "qianwen-ops-auth" / "uploads.jsonl"
    big = make_files(work / "many", count, 1024, "m")
    old = make_files(work / "old", cached, 1024, "o")
    fresh = make_files(work / "new", new, 1024, "n")
    big_on, big_off, new_on, new_off = Runs(), Runs(), Runs(), Runs()
    try:
        for _ in range(rounds):  # each run starts from the same state: no cache, an empty sandbox
            shutil.rmtree(work / "cache", ignore_errors=True)
            run(upload_cmd(*big, "--model", MODEL), env, work, big_on)
            box.purge()
            run(upload_cmd(*big, "--model", MODEL, "--no-cache"), env, work, big_off)
            box.purge()
        shutil.rmtree(work / "cache", ignore_errors=True)
        run(upload_cmd(*old, "--model", MODEL), env, work)
        full = cache_file.read_bytes()
        assert len(full.splitlines()) == cached
        for _ in range(rounds):
            cache_file.write_bytes(full)  # the same full cache before every run; these files are new to it
            run(upload_cmd(*fresh, "--model", MODEL), env, work, new_on)
            run(upload_cmd(*fresh, "--model", MODEL, "--no-cache"), env, work, new_off)
        entries = len(cache_file.read_bytes().splitlines())
    finally:
        box.stop()
        for name in ("many", "old", "new", "cache"):
            shutil.rmtree(work / name, ignore_errors=True)
    return {"count": count, "cached": cached, "new": new, "big_on": big_on.as_dict(), "big_off": big_off.as_dict(),
            "new_on": new_on.as_dict(), "new_off": new_off.as_dict(), "entries_after": entries}


def bench_custom_oss(work: Path, size: int, rounds: int, baseline: str) -> dict:
    """Custom OSS: ours vs oss2 alone (``put`` = put_object_from_file, ``resumable`` = resumable_upload)."""
    box = Sandbox()
    env = box.env(work, custom_oss=True)
    path = make_file(work / "oss.bin", size)
    info = box.info
    code, extra = OSS2_PUT, []
    if baseline == "resumable":  # the settings custom_oss.py hands oss2: only our code differs
        from qianwen_ops import custom_oss

        code = OSS2_RESUMABLE
        extra = [str(custom_oss.MULTIPART_THRESHOLD), str(custom_oss.PART_SIZE), str(custom_oss.PART_THREADS)]
    ours, base = Runs(), Runs()
    try:
        for i in range(rounds):
            run(upload_cmd(str(path), "--model", MODEL, "--no-cache"), env, work, ours, measure_rss=True)
            box.purge()
            shutil.rmtree(work / "cache", ignore_errors=True)   # no checkpoint to resume from
            run([sys.executable, "-c", code, info["oss_endpoint"], info["oss_bucket"], info["oss_region"],
                 info["oss_access_key_id"], info["oss_access_key_secret"], f"bench/{i}.bin", str(path), *extra],
                env, work, base, measure_rss=True)
            box.purge()
    finally:
        box.stop()
        path.unlink()
    return {"size_mib": size // MIB, "baseline": baseline, "ours": ours.as_dict(), "oss2": base.as_dict()}


def bench_proxy_tls(work: Path, rounds: int) -> dict:
    """Probe through a CONNECT proxy to the TLS sandbox vs the bare urllib one-liner through the same proxy
    (both trust the test CA via SSL_CERT_FILE), and a certificate failure (wrong CA: one attempt, exit 8).

    Needs trustme and tests/forward_proxy.py (the test environment).
    """
    import trustme

    sys.path.insert(0, str(ROOT / "tests"))
    from forward_proxy import ForwardProxy

    net = work / "net"
    net.mkdir(exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    ca.issue_cert("127.0.0.1", "dashscope.aliyuncs.com").private_key_and_cert_chain_pem.write_to_path(
        str(net / "server.pem"))
    ca.cert_pem.write_to_path(str(net / "ca.pem"))
    other.cert_pem.write_to_path(str(net / "other.pem"))
    box = Sandbox("--tls-cert", str(net / "server.pem"), "--tls-key", str(net / "server.pem"))
    api = ("127.0.0.1", int(box.info["base_url"].rsplit(":", 1)[1]))
    proxy = ForwardProxy(routes={"dashscope.aliyuncs.com:443": api})
    try:
        env = {k: v for k, v in our_env("", box.info["api_key"], work).items()
               if not k.upper().endswith(("_PROXY", "_CA_BUNDLE")) and not k.startswith(("SSL_CERT_", "QWEN_"))}
        env.update(HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=str(net / "ca.pem"))
        body = json.dumps({"model": "qwen-turbo", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
        bare = ("import urllib.request,os;r=urllib.request.Request('https://dashscope.aliyuncs.com"
                "/compatible-mode/v1/chat/completions'," + repr(body) + ".encode(),{'Authorization':'Bearer '+"
                "os.environ['DASHSCOPE_API_KEY'],'Content-Type':'application/json'});"
                "print(urllib.request.urlopen(r,timeout=15).status)")
        probe = [sys.executable, str(SCRIPTS / "probe.py")]
        ours, base, bad = Runs(), Runs(), Runs()
        run(probe, env, work)  # warm the bytecode cache, as users have it
        for _ in range(rounds):
            run(probe, env, work, ours)
            run([sys.executable, "-c", bare], env, work, base)
        before = len(proxy.connects())
        for _ in range(rounds):
            run(probe, dict(env, SSL_CERT_FILE=str(net / "other.pem")), work, bad, ok=(8,))
        attempts = (len(proxy.connects()) - before) / rounds
    finally:
        proxy.close()
        box.stop()
    return {"probe": ours.as_dict(), "bare_urllib": base.as_dict(), "cert_failure": bad.as_dict(),
            "cert_failure_attempts": attempts}


# ---------------------------------------------------------------- report

def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}, {time.strftime('%Y-%m-%d')}")


def verdict(value: float, goal: float) -> str:
    return "yes" if value <= goal else "no"


def pair_ratios(ours: dict, base: dict) -> list:
    """ours/baseline for each pair of runs made one after the other (the report's range of a ratio)."""
    return [a / b for a, b in zip(ours["walls"], base["walls"])]


def ratio_rows(r: dict) -> list:
    """(measure, against, what it measures, ratio, pair range, goal, ours, baseline) for every ratio.

    ``against`` says what the baseline is: the *limit* (what no client can beat: a bare one-liner, a raw
    sendfile, a stat per file, the SDK itself with the same settings) or a *peer* (another client).
    """
    p, p50, px, big, sink = r["probe"], r["probe50"], r["proxy"], r["big"], r["sink"]
    batch, batch50, cache, put, resumable = r["batch"], r["batch50"], r["cache"], r["oss_put"], r["oss_resumable"]
    hits = r["hits"]

    def row(name, against, what, ours, base, goal, unit="s"):
        ours_runs, base_runs = Runs(ours["walls"]), Runs(base["walls"])
        pairs = pair_ratios(ours, base)
        return (name, against, what, ours["median"] / base["median"], (min(pairs), max(pairs), len(pairs)), goal,
                ours_runs.spread(unit), base_runs.spread(unit))

    return [
        row("probe / bare urllib one-liner", "limit", "wall of `probe.py` vs a `python -c` urllib POST of the same "
            "request, sandbox on loopback", p["probe"], p["bare_urllib"], 1.1, "ms"),
        row(f"probe / bare urllib one-liner, {p50['latency_ms']} ms round trip", "limit", "the same two commands "
            "against `sandbox.py --latency-ms`", p50["probe"], p50["bare_urllib"], 1.1, "ms"),
        row("probe through a proxy / bare urllib one-liner through the same proxy", "limit", "wall, https through "
            "a CONNECT proxy to the TLS sandbox, both trusting the test CA via SSL_CERT_FILE", px["probe"],
            px["bare_urllib"], 1.3, "ms"),
        row("probe / `import dashscope` alone", "peer", "wall of `probe.py` vs only importing the official SDK",
            p["probe"], p["sdk_import"], 1.0, "ms"),
        row(f"upload {sink['size_mib']} MiB / raw sendfile POST, null sink", "limit", "wall to a server that "
            "discards the body: ours (read, sha256, send) vs the same form with the file sent by "
            "`socket.sendfile` (getPolicy made beforehand, no hash)", sink["ours"], sink["sendfile"], 1.2),
        row(f"upload {sink['size_mib']} MiB / curl -F, null sink", "peer", "the same sink, curl with the same "
            "form", sink["ours"], sink["curl"], 1.3),
        row(f"upload {big['size_mib']} MiB / curl -F, sandbox", "peer", "wall, both storing into the sandbox "
            "(includes the sandbox's parse and disk write)", big["ours"], big["curl"], 1.3),
        row(f"batch {batch['count']} x {batch['size_kib']} KiB / SDK one by one", "peer", "wall, default "
            "concurrency, sandbox `--qps 100000`, no latency", batch["ours"], batch["sdk"], 0.25),
        row(f"batch {batch50['count']} x {batch50['size_kib']} KiB / SDK one by one, {batch50['latency_ms']} ms",
            "peer", "the same over `--latency-ms` (one round trip per connection and per request)",
            batch50["ours"], batch50["sdk"], 0.05),
        row(f"{hits['count']} cache hits / stat-and-print floor", "limit", "wall of a rerun of cached files (no "
            "read, no request) vs a `python -c` that stats each file and prints a line", hits["ours"],
            hits["stat_floor"], 2.0, "ms"),
        row(f"batch {cache['count']} files, cache on / --no-cache", "peer", "wall of the default path (empty "
            "cache, one line appended per upload) vs no cache", cache["big_on"], cache["big_off"], 1.1),
        row(f"{cache['new']} new files beside {cache['cached']} cached entries, cache on / --no-cache", "peer",
            "wall; the full cache is restored before every run", cache["new_on"], cache["new_off"], 1.1),
        row(f"custom OSS {resumable['size_mib']} MiB / oss2 resumable_upload", "limit", "wall, the official SDK "
            "with the same threads, part size and CRC setting (off); ours also returns the sha256",
            resumable["ours"], resumable["oss2"], 1.0),
        row(f"custom OSS {put['size_mib']} MiB / oss2 put_object_from_file", "peer", "wall; ours goes multipart "
            "above 32 MiB", put["ours"], put["oss2"], 1.0),
    ]


def report(r: dict, quick: bool) -> str:
    big, sink, batch, put, resumable = r["big"], r["sink"], r["batch"], r["oss_put"], r["oss_resumable"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `bench/run.py{' --quick' if quick else ''}` against loopback servers. Machine: {machine()}.",
        f"Each figure is the median of {r['rounds']} runs of whole processes ({r.get('few', 3)} for the sandbox "
        f"and custom-OSS uploads of large files and the SDK over {LATENCY_MS} ms; "
        f"{len(r['probe']['probe']['walls'])}, {len(r['probe50']['probe']['walls'])} and "
        f"{len(r['proxy']['probe']['walls'])} for the probe rows on loopback, at {LATENCY_MS} ms and through the "
        f"proxy; {len(r['probe'].get('sdk_import', {}).get('walls', []))} for `import dashscope`; "
        f"{len(r['hits']['ours']['walls'])} for the cache hits), "
        "ours and the baseline alternating; the "
        "range in brackets is min-max over those runs. Peak RSS is the child process's own (GNU `time` %M), never "
        "the benchmark parent's. Ratios first: this machine is shared.",
        "",
        "## Ratios (lower is better)",
        "",
        "Each ratio is ours over its baseline: the *limit* (what no client can beat) or a *peer*. The ratio is "
        "of the medians; the range is the lowest and highest ratio of the pairs of runs made one after the "
        "other (how many pairs in brackets).",
        "",
        "| measure | against | what it measures | ratio | range over pairs | goal | met | ours, median (min-max) "
        "| baseline, median (min-max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {against} | {what} | {ratio:.3f}x | {low:.2f}x-{high:.2f}x ({pairs}) | <= {goal}x | "
              f"{verdict(ratio, goal)} | {ours} | {base} |"
              for name, against, what, ratio, (low, high, pairs), goal, ours, base in ratio_rows(r)]
    absolute = [
        (f"cache-hit rerun of a {sink['size_mib']} MiB file", "whole-process wall; no read, no request",
         sink["cache_hit"]["median"], 0.1, "s", Runs(sink["cache_hit"]["walls"]).spread()),
        (f"temporary storage upload peak RSS ({big['size_mib']} MiB file)", "child's own peak RSS",
         big["ours"]["peak_rss_mib"], 64, "MiB", f"official SDK: {big['sdk']['peak_rss_mib']:.0f} MiB"),
        (f"null-sink upload peak RSS ({sink['size_mib']} MiB file)", "child's own peak RSS",
         sink["ours"]["peak_rss_mib"], 64, "MiB", ""),
        (f"custom OSS upload peak RSS ({resumable['size_mib']} MiB file)", "child's own peak RSS",
         resumable["ours"]["peak_rss_mib"], 48, "MiB", f"oss2 alone: {resumable['oss2']['peak_rss_mib']:.0f} MiB"),
        (f"custom OSS upload peak RSS ({put['size_mib']} MiB file)", "child's own peak RSS",
         put["ours"]["peak_rss_mib"], 48, "MiB", f"oss2 alone: {put['oss2']['peak_rss_mib']:.0f} MiB"),
        ("certificate failure (wrong CA)", "whole-process wall of probe.py ending in exit 8",
         r["proxy"]["cert_failure"]["median"], 1.0, "s", Runs(r["proxy"]["cert_failure"]["walls"]).spread()),
        ("connection attempts after a certificate failure", "CONNECT requests the proxy saw per run",
         r["proxy"]["cert_failure_attempts"], 1, "attempts", "not retried"),
        ("requests made by a cache-hit rerun of the batch", "sandbox request counters",
         batch["cache_hit_requests"], 0, "requests", ""),
        (f"requests made by the {r['hits']['count']} cache-hit reruns", "sandbox request counters, all runs",
         r["hits"]["requests"], 0, "requests", ""),
    ]
    lines += ["", "## Absolute figures", "", "| measure | what it measures | value | goal | met | notes |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {what} | {value:.3g} {unit} | <= {goal} {unit} | {verdict(value, goal)} | {note} |"
              for name, what, value, goal, unit, note in absolute]
    if "load_average_before" in r:
        lines += ["", f"Machine load (1-minute load average on {os.cpu_count()} cores): "
                  f"{r['load_average_before']:.1f} before the run, {r['load_average_after']:.1f} after it."]
    lines += ["", f"Default concurrency {r['concurrency']} (uploads in flight per batch; one getPolicy per batch).",
              f"Round trip for the latency rows: {r['probe50']['latency_ms']} ms, emulated by the sandbox (one to "
              "open each connection, one per request), listen backlog 128.", ""]
    return "\n".join(lines)


def run_side_by_side(cases: dict, work: Path, workers: int = 3) -> dict:
    """``{name: case(folder)}`` for every case, ``workers`` at a time, each in ``work/<name>`` with its own
    home, cache and state (no case sees another's files); results in the cases' order."""
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str):
        folder = work / name
        (folder / "home").mkdir(parents=True)
        result = cases[name](folder)
        print(f"{name} done", file=sys.stderr, flush=True)
        return result

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(one, name) for name in cases}
        return {name: future.result() for name, future in futures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds (a smoke test)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md", help="report path")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON here")
    parser.add_argument("--only", help="comma-separated case names to run (development aid; no report)")
    parser.add_argument("--from-json", type=Path, help="write the report from raw figures saved by --json")
    parser.add_argument("--null-sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.null_sink:
        return null_sink_main()
    quick = args.quick
    if args.from_json:
        args.output.write_text(report(json.loads(args.from_json.read_text()), quick), encoding="utf-8")
        print(args.output.read_text())
        return 0
    rounds = 1 if quick else 5
    big = 8 * MIB if quick else 1024 * MIB
    few = 1 if quick else 3   # rounds of the slowest cases (1 GiB files, the SDK over 50 ms)
    sizes = {
        "probe": lambda w: bench_probe(w, 1 if quick else rounds * 8),  # ~0.1 s a run: many runs, steadier medians
        "probe50": lambda w: bench_probe(w, 1 if quick else rounds * 6, LATENCY_MS),
        "proxy": lambda w: bench_proxy_tls(w, 1 if quick else rounds * 6),
        "sink": lambda w: bench_null_sink(w, big, rounds),
        "big": lambda w: bench_big_upload(w, big, few),
        "batch": lambda w: bench_batch(w, 10 if quick else 100, 64 * 1024, rounds),
        "batch50": lambda w: bench_batch(w, 5 if quick else 100, 64 * 1024, rounds, LATENCY_MS, sdk_rounds=few),
        "cache": lambda w: bench_cache_on_off(w, 50 if quick else 2000, 100 if quick else 3000,
                                              10 if quick else 100, rounds),
        "hits": lambda w: bench_cache_hits(w, 20 if quick else 1000, 1 if quick else rounds * 2),
        "oss_put": lambda w: bench_custom_oss(w, 34 * MIB if quick else 100 * MIB, few, "put"),
        "oss_resumable": lambda w: bench_custom_oss(w, 34 * MIB if quick else 1024 * MIB, few, "resumable"),
    }
    chosen = args.only.split(",") if args.only else list(sizes)
    from qianwen_ops.uploads import DEFAULT_CONCURRENCY

    results: dict = {"rounds": rounds, "few": few, "concurrency": DEFAULT_CONCURRENCY,
                     "load_average_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="qianwen-bench-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        if quick:   # a smoke test: the cases side by side, each in a folder of its own (its figures mean nothing)
            results.update(run_side_by_side({name: sizes[name] for name in chosen}, work))
        else:       # measurements: one case at a time, on an otherwise idle machine
            for name in chosen:
                results[name] = sizes[name](work)
                print(f"{name} done", file=sys.stderr, flush=True)
    results["load_average_after"] = os.getloadavg()[0]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if args.only:
        print(json.dumps(results, indent=2))
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report(results, quick), encoding="utf-8")
    print(args.output.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
