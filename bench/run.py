#!/usr/bin/env python3
"""Every benchmark of the bundle against the local sandbox, in one run, written to docs/benchmarks.md.

Each figure is the median of several runs of whole processes, ours and the
baseline alternating, so both see the same machine state; ratios come first
because this shared machine is noisy in absolute terms. Peak RSS is the child's
own ``ru_maxrss`` (os.wait4). Needs the test environment (dashscope, oss2) and curl.

    .venv/bin/python bench/run.py            # full sizes (1 GiB, 100 MiB): a few minutes
    .venv/bin/python bench/run.py --quick    # smoke sizes, used by the tests
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
MODEL = "qwen-vl-plus"
MIB = 1024 * 1024


def run(argv: list, env: dict, cwd: Path) -> tuple[float, float, int, str]:
    """(wall seconds, 0.0, exit code, output) of one whole process (no RSS: see run_measured)."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return wall, 0.0, done.returncode, done.stdout if done.returncode == 0 else done.stdout + done.stderr


def run_measured(argv: list, env: dict, cwd: Path) -> tuple[float, float, int, str]:
    """Like run(), but reaps with wait4 to read this child's own peak RSS."""
    with tempfile.TemporaryFile(mode="w+") as out_file:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        return wall, usage.ru_maxrss / 1024, proc.returncode, out_file.read()


class Sandbox:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, str(SCRIPTS / "sandbox.py"), "--quiet", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.proc.stdout.readline())

    def call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.info["base_url"] + path, data, method="POST" if data else "GET")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def counts(self) -> dict:
        return self.call("/_sandbox/stats")["counts"]

    def purge(self) -> None:
        self.call("/_sandbox/purge", {})

    def stop(self) -> float:
        """Stop it and return its peak RSS in MiB."""
        self.proc.terminate()
        _, _, usage = os.wait4(self.proc.pid, 0)
        return usage.ru_maxrss / 1024


def make_file(path: Path, size: int) -> Path:
    chunk = os.urandom(MIB)
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            handle.write(chunk[:min(MIB, left)])
            left -= MIB
    return path


def median(values: list) -> float:
    return statistics.median(values)


def env_for(box: Sandbox, work: Path, custom_oss: bool = False) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QIANWEN_", "DASHSCOPE_", "QWEN_", "OSS_"))}
    base.update(QWEN_BASE_URL=box.info["base_url"], DASHSCOPE_API_KEY=box.info["api_key"],
                XDG_CACHE_HOME=str(work / "cache"), HOME=str(work / "home"))
    if custom_oss:
        info = box.info
        base.update(QWEN_TMP_OSS_BUCKET=info["oss_bucket"], QWEN_TMP_OSS_REGION=info["oss_region"],
                    QWEN_TMP_OSS_ENDPOINT=info["oss_endpoint"], QWEN_TMP_OSS_AK_ID=info["oss_access_key_id"],
                    QWEN_TMP_OSS_AK_SECRET=info["oss_access_key_secret"])
    return base


SDK_UPLOAD = """
import sys
from dashscope.utils.oss_utils import OssUtils
base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
cert = None
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


def bench_probe(box: Sandbox, work: Path, rounds: int) -> dict:
    env = env_for(box, work)
    body = json.dumps({"model": "qwen-turbo", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
    bare = ("import urllib.request,os;r=urllib.request.Request(os.environ['QWEN_BASE_URL']+"
            "'/compatible-mode/v1/chat/completions'," + repr(body) + ".encode(),{'Authorization':'Bearer '+"
            "os.environ['DASHSCOPE_API_KEY'],'Content-Type':'application/json'});"
            "print(urllib.request.urlopen(r,timeout=15).status)")
    ours, base, sdk = [], [], []
    for _ in range(rounds):
        ours.append(run([sys.executable, str(SCRIPTS / "probe.py")], env, work)[0])
        base.append(run([sys.executable, "-c", bare], env, work)[0])
        sdk.append(run([sys.executable, "-c", "import dashscope"], env, work)[0])
    return {"probe": median(ours), "bare_urllib": median(base), "sdk_import": median(sdk)}


def bench_big_upload(work: Path, size: int, rounds: int) -> dict:
    box = Sandbox("--max-file-mb", str(size // MIB + 1))
    env = env_for(box, work)
    path = make_file(work / "big.bin", size)
    ours_wall, ours_rss, curl_wall, sdk_wall, sdk_rss = [], [], [], [], []
    try:
        for _ in range(rounds):
            wall, rss, code, out = run_measured([sys.executable, str(SCRIPTS / "upload_file.py"), str(path), "--model",
                                                 MODEL, "--no-cache"], env, work)
            assert code == 0, out
            ours_wall.append(wall)
            ours_rss.append(rss)
            box.purge()
            req = urllib.request.Request(f"{box.info['base_url']}/api/v1/uploads?action=getPolicy&model={MODEL}",
                                         headers={"Authorization": f"Bearer {box.info['api_key']}"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                policy = json.loads(resp.read())["data"]
            fields = {"OSSAccessKeyId": policy["oss_access_key_id"], "Signature": policy["signature"],
                      "policy": policy["policy"], "key": policy["upload_dir"] + "/big.bin",
                      "x-oss-object-acl": "private", "x-oss-forbid-overwrite": "true", "success_action_status": "200"}
            argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"]
            for name, value in fields.items():
                argv += ["-F", f"{name}={value}"]
            argv += ["-F", f"file=@{path}", policy["upload_host"]]
            wall, _, code, out = run(argv, env, work)
            assert out.strip() == "200", out
            curl_wall.append(wall)
            box.purge()
            wall, rss, code, out = run_measured([sys.executable, "-c", SDK_UPLOAD, box.info["base_url"] + "/api/v1",
                                                 box.info["api_key"], MODEL, str(path)], env, work)
            assert code == 0, out[-500:]
            sdk_wall.append(wall)
            sdk_rss.append(rss)
            box.purge()
    finally:
        sandbox_rss = box.stop()
        path.unlink()
    return {"size_mib": size // MIB, "ours_wall": median(ours_wall), "ours_rss": max(ours_rss),
            "curl_wall": median(curl_wall), "sdk_wall": median(sdk_wall), "sdk_rss": max(sdk_rss),
            "sandbox_rss": sandbox_rss}


def bench_batch(work: Path, count: int, size: int, rounds: int) -> dict:
    box = Sandbox("--qps", "100000")  # the SDK's getPolicy per file would otherwise hit the 100 QPS limit
    env = env_for(box, work)
    folder = work / "batch"
    folder.mkdir(exist_ok=True)
    paths = [str(make_file(folder / f"b{i:03d}.bin", size)) for i in range(count)]
    ours, sdk = [], []
    try:
        for _ in range(rounds):
            wall, _, code, out = run([sys.executable, str(SCRIPTS / "upload_file.py"), *paths, "--model", MODEL,
                                      "--no-cache"], env, work)
            assert code == 0, out[-500:]
            ours.append(wall)
            wall, _, code, out = run([sys.executable, "-c", SDK_UPLOAD, box.info["base_url"] + "/api/v1",
                                      box.info["api_key"], MODEL, *paths], env, work)
            assert code == 0, out[-500:]
            sdk.append(wall)
            box.purge()
        run([sys.executable, str(SCRIPTS / "upload_file.py"), *paths, "--model", MODEL], env, work)
        before = box.counts()
        hit_wall, _, code, _ = run([sys.executable, str(SCRIPTS / "upload_file.py"), *paths, "--model", MODEL],
                                   env, work)
        after = box.counts()
        requests = sum(after.values()) - sum(before.values())
    finally:
        box.stop()
    return {"count": count, "size_kib": size // 1024, "ours_wall": median(ours), "sdk_wall": median(sdk),
            "cache_hit_requests": requests, "cache_hit_wall": hit_wall}


def bench_custom_oss(work: Path, size: int, rounds: int) -> dict:
    box = Sandbox()
    env = env_for(box, work, custom_oss=True)
    path = make_file(work / "oss.bin", size)
    info = box.info
    ours_wall, ours_rss, base_wall, base_rss = [], [], [], []
    try:
        for i in range(rounds):
            wall, rss, code, out = run_measured([sys.executable, str(SCRIPTS / "upload_file.py"), str(path),
                                                 "--model", MODEL, "--no-cache"], env, work)
            assert code == 0, out[-500:]
            ours_wall.append(wall)
            ours_rss.append(rss)
            box.purge()
            wall, rss, code, out = run_measured([sys.executable, "-c", OSS2_PUT, info["oss_endpoint"],
                                                 info["oss_bucket"], info["oss_region"], info["oss_access_key_id"],
                                                 info["oss_access_key_secret"], f"bench/{i}.bin", str(path)], env, work)
            assert code == 0, out[-500:]
            base_wall.append(wall)
            base_rss.append(rss)
            box.purge()
    finally:
        box.stop()
        path.unlink()
    return {"size_mib": size // MIB, "ours_wall": median(ours_wall), "ours_rss": max(ours_rss),
            "oss2_wall": median(base_wall), "oss2_rss": max(base_rss)}


def bench_proxy_tls(rounds: int) -> dict:
    """Probe through a CONNECT proxy to the TLS sandbox vs the bare urllib one-liner through the same proxy
    (both trust the test CA via SSL_CERT_FILE), and a certificate failure (wrong CA: one attempt, exit 8).

    Owned by the network work; needs trustme and tests/forward_proxy.py. Run it alone with
    ``python -c 'import sys; sys.path[:0] = ["bench"]; import run;
    print(run.proxy_tls_report(run.bench_proxy_tls(5)))'``
    """
    import trustme

    sys.path.insert(0, str(ROOT / "tests"))
    from forward_proxy import ForwardProxy

    with tempfile.TemporaryDirectory(prefix="qianwen-bench-net-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        ca, other = trustme.CA(), trustme.CA()
        ca.issue_cert("127.0.0.1", "dashscope.aliyuncs.com").private_key_and_cert_chain_pem.write_to_path(
            str(work / "server.pem"))
        ca.cert_pem.write_to_path(str(work / "ca.pem"))
        other.cert_pem.write_to_path(str(work / "other.pem"))
        box = Sandbox("--tls-cert", str(work / "server.pem"), "--tls-key", str(work / "server.pem"))
        api = ("127.0.0.1", int(box.info["base_url"].rsplit(":", 1)[1]))
        proxy = ForwardProxy(routes={"dashscope.aliyuncs.com:443": api})
        try:
            env = {k: v for k, v in os.environ.items()  # bytecode caches allowed, as users have them
                   if not k.upper().endswith(("_PROXY", "_CA_BUNDLE")) and k != "PYTHONDONTWRITEBYTECODE"
                   and not k.startswith(("SSL_CERT_", "QWEN_", "DASHSCOPE_"))}
            env.update(HOME=str(work / "home"), XDG_CACHE_HOME=str(work / "cache"), HTTPS_PROXY=proxy.url(),
                       SSL_CERT_FILE=str(work / "ca.pem"), DASHSCOPE_API_KEY=box.info["api_key"])
            body = json.dumps({"model": "qwen-turbo", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
            bare = ("import urllib.request,os;r=urllib.request.Request('https://dashscope.aliyuncs.com"
                    "/compatible-mode/v1/chat/completions'," + repr(body) + ".encode(),{'Authorization':'Bearer '+"
                    "os.environ['DASHSCOPE_API_KEY'],'Content-Type':'application/json'});"
                    "print(urllib.request.urlopen(r,timeout=15).status)")
            ours, base, bad = [], [], []
            run([sys.executable, str(SCRIPTS / "probe.py")], env, work)  # warm the bytecode cache
            for _ in range(rounds):
                wall, _, code, out = run([sys.executable, str(SCRIPTS / "probe.py")], env, work)
                assert code == 0, out
                ours.append(wall)
                wall, _, code, out = run([sys.executable, "-c", bare], env, work)
                assert code == 0, out
                base.append(wall)
            before = len(proxy.connects())
            for _ in range(rounds):
                wall, _, code, out = run([sys.executable, str(SCRIPTS / "probe.py")],
                                         dict(env, SSL_CERT_FILE=str(work / "other.pem")), work)
                assert code == 8, out
                bad.append(wall)
            attempts = (len(proxy.connects()) - before) / rounds
        finally:
            proxy.close()
            box.stop()
    return {"probe_proxy": median(ours), "bare_urllib_proxy": median(base), "cert_failure": median(bad),
            "cert_failure_attempts": attempts}


def proxy_tls_report(results: dict) -> str:
    ratio = results["probe_proxy"] / results["bare_urllib_proxy"]
    return "\n".join([
        "| measure | value | goal | met |", "|---|---|---|---|",
        f"| probe through a CONNECT proxy (TLS) / bare urllib one-liner through the same proxy | {ratio:.2f}x "
        f"({results['probe_proxy'] * 1000:.0f} ms vs {results['bare_urllib_proxy'] * 1000:.0f} ms) | <= 1.3x | "
        f"{verdict(ratio, 1.3)} |",
        f"| certificate failure (wrong CA): whole process wall | {results['cert_failure'] * 1000:.0f} ms | <= 1000 ms "
        f"| {verdict(results['cert_failure'], 1.0)} |",
        f"| certificate failure: CONNECT attempts per run | {results['cert_failure_attempts']:g} | 1 | "
        f"{verdict(results['cert_failure_attempts'], 1)} |",
    ])


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


def report(results: dict, quick: bool) -> str:
    p, big, batch, oss = results["probe"], results["big"], results["batch"], results["oss"]
    rows = [
        ("probe wall / bare urllib one-liner", p["probe"] / p["bare_urllib"], 1.3,
         f"{p['probe'] * 1000:.0f} ms vs {p['bare_urllib'] * 1000:.0f} ms"),
        ("probe wall / `import dashscope` alone", p["probe"] / p["sdk_import"], 1.0,
         f"{p['probe'] * 1000:.0f} ms vs {p['sdk_import'] * 1000:.0f} ms"),
        (f"upload {big['size_mib']} MiB wall / curl -F (same policy)", big["ours_wall"] / big["curl_wall"], 1.2,
         f"{big['ours_wall']:.2f} s vs {big['curl_wall']:.2f} s"),
        (f"upload {big['size_mib']} MiB peak RSS / official SDK", big["ours_rss"] / big["sdk_rss"], 1.0,
         f"{big['ours_rss']:.0f} MiB vs {big['sdk_rss']:.0f} MiB"),
        (f"batch {batch['count']} x {batch['size_kib']} KiB wall / SDK one by one",
         batch["ours_wall"] / batch["sdk_wall"], 0.25, f"{batch['ours_wall']:.2f} s vs {batch['sdk_wall']:.2f} s"),
        (f"custom OSS {oss['size_mib']} MiB multipart wall / oss2 put_object_from_file",
         oss["ours_wall"] / oss["oss2_wall"], 1.0, f"{oss['ours_wall']:.2f} s vs {oss['oss2_wall']:.2f} s"),
    ]
    absolute = [
        (f"temporary storage upload peak RSS ({big['size_mib']} MiB file)", big["ours_rss"], 64, "MiB"),
        (f"custom OSS upload peak RSS ({oss['size_mib']} MiB file)", oss["ours_rss"], 128, "MiB"),
        (f"sandbox peak RSS while receiving {big['size_mib']} MiB uploads", big["sandbox_rss"], 100, "MiB"),
        ("requests made by a cache-hit rerun of the batch", batch["cache_hit_requests"], 0, "requests"),
    ]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `bench/run.py{' --quick' if quick else ''}` against the local sandbox. Machine: {machine()}.",
        f"Each figure is the median of {results['rounds']} alternating runs of whole processes (ours, then the "
        "baseline); peak RSS is the process's own maximum resident set. Ratios first: this machine is shared.",
        "",
        "## Ratios (lower is better)",
        "",
        "| measure | ratio | goal | met | figures |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {ratio:.2f}x | <= {goal}x | {verdict(ratio, goal)} | {fig} |"
              for name, ratio, goal, fig in rows]
    lines += ["", "## Absolute figures", "", "| measure | value | goal | met |", "|---|---|---|---|"]
    lines += [f"| {name} | {value:.0f} {unit} | <= {goal} {unit} | {verdict(value, goal)} |"
              for name, value, goal, unit in absolute]
    lines += ["", f"The official SDK's peak RSS for the {big['size_mib']} MiB upload was {big['sdk_rss']:.0f} MiB "
              f"({big['sdk_rss'] / big['size_mib']:.1f}x the file); ours stays flat because the file is streamed "
              "from disk in 256 KiB chunks.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few rounds (a smoke test)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md", help="report path")
    parser.add_argument("--json", type=Path, help="also write the raw figures as JSON here")
    args = parser.parse_args()
    rounds = 2 if args.quick else 5
    big = 8 * MIB if args.quick else 1024 * MIB
    oss_size = 34 * MIB if args.quick else 100 * MIB
    batch_count = 20 if args.quick else 100
    with tempfile.TemporaryDirectory(prefix="qianwen-bench-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        results = {"rounds": rounds,
                   "probe": None, "big": None, "batch": None, "oss": None}
        box = Sandbox()
        try:
            results["probe"] = bench_probe(box, work, rounds * 3)
        finally:
            box.stop()
        print("probe done", file=sys.stderr)
        results["big"] = bench_big_upload(work, big, max(1, rounds - 2))
        print("big upload done", file=sys.stderr)
        results["batch"] = bench_batch(work, batch_count, 64 * 1024, rounds)
        print("batch done", file=sys.stderr)
        results["oss"] = bench_custom_oss(work, oss_size, max(1, rounds - 2))
        print("custom OSS done", file=sys.stderr)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report(results, args.quick), encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(args.output.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
