#!/usr/bin/env python3
"""oss2 vs alibabacloud-oss-v2 (and our custom-OSS upload) against the local sandbox.

Measures, each in a fresh child process so import cost and peak RSS are the child's own
(VmHWM from /proc/self/status):
  - import time of each SDK (median of 5);
  - wall time of one upload of 100 MiB and of 1 GiB: multipart, 8 MiB parts, 4 threads,
    client-side CRC-64 off in both SDKs (median of --repeat runs, the three clients alternating);
  - multipart resume: the child kills itself once half the bytes are stored, then a second
    run finishes the upload; reported: whether it resumed and how many requests it needed.
"ours" is ``CustomOss.upload`` (the bundle's own OSS client, ``oss_v4``: the same parts, threads and CRC
setting, plus the sha256 the cache needs, read beside the parts).
Needs oss2 and alibabacloud-oss-v2 installed (the test venv has both).

    .venv/bin/python bench/oss_sdks.py                 # 100 MiB and 1 GiB, a few minutes
    .venv/bin/python bench/oss_sdks.py --sizes 64 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
MIB = 1024 * 1024
PART = 8 * MIB
THREADS = 4
CLIENTS = ("oss2", "v2", "ours")


# ---------------------------------------------------------------- child side

def _peak_rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _client(name: str, info: dict, checkpoints: str):
    """An upload function ``(key, path, progress(done_bytes)) -> None`` for one client."""
    ak, sk = info["oss_access_key_id"], info["oss_access_key_secret"]
    if name == "oss2":
        import oss2

        bucket = oss2.Bucket(oss2.ProviderAuthV4(oss2.credentials.StaticCredentialsProvider(ak, sk)),
                             info["oss_endpoint"], info["oss_bucket"], region=info["oss_region"], enable_crc=False)
        store = oss2.ResumableStore(root=checkpoints, dir="oss2")

        def upload(key, path, progress):
            oss2.resumable_upload(bucket, key, path, store=store, multipart_threshold=PART, part_size=PART,
                                  num_threads=THREADS, progress_callback=lambda done, _total: progress(done))
        return upload
    if name == "v2":
        import alibabacloud_oss_v2 as oss

        cfg = oss.config.load_default()
        cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(ak, sk)
        cfg.region, cfg.endpoint = info["oss_region"], info["oss_endpoint"]
        cfg.use_path_style, cfg.disable_upload_crc64_check = True, True
        uploader = oss.Client(cfg).uploader(part_size=PART, parallel_num=THREADS, leave_parts_on_error=True,
                                            enable_checkpoint=True, checkpoint_dir=checkpoints)

        def upload(key, path, progress):
            request = oss.PutObjectRequest(bucket=info["oss_bucket"], key=key,
                                           progress_fn=lambda _n, done, _total: progress(done))
            uploader.upload_file(request, filepath=path)
        return upload
    sys.path.insert(0, str(SCRIPTS))
    from qianwen_ops.credentials import Secret
    from qianwen_ops.custom_oss import CustomOss
    from qianwen_ops.local_files import check_file
    from qianwen_ops.oss_settings import CustomOssConfig

    config = CustomOssConfig(info["oss_bucket"], info["oss_region"], info["oss_endpoint"], "bench", 3600,
                             "bench", Secret(ak), Secret(sk), None, "bench")
    backend = CustomOss(config, Path(checkpoints), multipart_threshold=PART, part_size=PART, threads=THREADS,
                        announce=False)

    def upload(key, path, progress):
        backend.upload(check_file(Path(path)), "bench", progress=progress, stable_id=key.replace("/", "-"))
    return upload


def child(argv: list) -> int:
    mode, name = argv[0], argv[1]
    if mode == "import":
        start = time.perf_counter()
        __import__("oss2" if name == "oss2" else "alibabacloud_oss_v2")
        print(json.dumps({"import_s": time.perf_counter() - start}))
        return 0
    info, path, key, checkpoints, die_at = json.loads(argv[2]), argv[3], argv[4], argv[5], float(argv[6])
    upload = _client(name, info, checkpoints)
    size = os.path.getsize(path)

    def progress(done: int) -> None:
        if die_at and done >= die_at * size:
            os._exit(3)   # as a crash or kill -9 would: no cleanup

    start = time.perf_counter()
    upload(key, path, progress)
    print(json.dumps({"wall_s": time.perf_counter() - start, "rss_mib": _peak_rss_mib()}))
    return 0


# ---------------------------------------------------------------- parent side

class Sandbox:
    def __init__(self, data_dir: Path):
        self.proc = subprocess.Popen([sys.executable, str(SCRIPTS / "sandbox.py"), "--quiet", "--data-dir",
                                      str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.info = json.loads(self.proc.stdout.readline())

    def call(self, path: str, post: bool = False) -> dict:
        req = urllib.request.Request(self.info["base_url"] + path, b"{}" if post else None,
                                     method="POST" if post else "GET")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def oss_requests(self) -> int:
        return self.call("/_sandbox/stats")["counts"]["oss"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def run_child(*args: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    try:
        return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        if done.returncode != 3:
            sys.stderr.write(done.stderr[-2000:])
        return done.returncode, {}


def make_file(folder: Path, mib: int) -> Path:
    path = folder / f"data-{mib}.bin"
    if not path.exists():
        block = os.urandom(MIB)
        with open(path, "wb") as handle:
            for i in range(mib):
                handle.write(block[i % 7:] + block[:i % 7])
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1024], help="file sizes in MiB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=CLIENTS)
    args = parser.parse_args()
    results: dict = {"import_s": {}, "upload": {}, "resume": {}}
    for name in ("oss2", "v2"):
        results["import_s"][name] = statistics.median(run_child("import", name)[1]["import_s"] for _ in range(5))
    with tempfile.TemporaryDirectory(prefix="oss-sdks-") as tmp:
        tmp = Path(tmp)
        box = Sandbox(tmp / "sandbox")
        try:
            for mib in args.sizes:
                path = make_file(tmp, mib)
                runs: dict = {name: [] for name in args.clients}
                for i in range(args.repeat):
                    for name in args.clients:
                        code, out = run_child("upload", name, json.dumps(box.info), str(path), f"{name}/{mib}-{i}",
                                              str(tmp / "cp"), "0")
                        box.call("/_sandbox/purge", post=True)
                        if code == 0:
                            runs[name].append(out)
                results["upload"][mib] = {
                    name: {"wall_s": statistics.median(r["wall_s"] for r in rs),
                           "rss_mib": max(r["rss_mib"] for r in rs), "runs": len(rs)}
                    for name, rs in runs.items() if rs}
            path = make_file(tmp, args.sizes[0])
            for name in args.clients:
                key = f"{name}/resume"
                first, _ = run_child("upload", name, json.dumps(box.info), str(path), key, str(tmp / "cp"), "0.5")
                before = box.oss_requests()
                code, out = run_child("upload", name, json.dumps(box.info), str(path), key, str(tmp / "cp"), "0")
                parts = -(-path.stat().st_size // PART)
                results["resume"][name] = {"killed_exit": first, "second_exit": code,
                                           "second_requests": box.oss_requests() - before, "parts": parts,
                                           "second_wall_s": out.get("wall_s")}
                box.call("/_sandbox/purge", post=True)
        finally:
            box.stop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2:]))
    sys.exit(main())
