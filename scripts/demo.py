#!/usr/bin/env python3
"""The whole story in a few lines, offline: set up, verify, upload, and let a model read a file.

With no usable API key at hand (or with --sandbox) everything runs against the
built-in local sandbox in a temporary project directory that is removed at the
end: nothing leaves this machine and no account is needed. With a standard key
configured (env or .env) it runs the real probe against your endpoint instead.
Stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from qianwen_ops import cli, errors
from qianwen_ops.credentials import STANDARD, find_api_key
from qianwen_ops.http_client import HttpSession
from qianwen_ops.settings import Settings
from qianwen_ops.uploads import request_headers_for
from qianwen_sandbox import start

SCRIPTS = Path(__file__).resolve().parent
SCRUBBED_PREFIXES = ("QIANWEN_", "DASHSCOPE_", "QWEN_", "OSS_")


def sample_png(width: int = 64, height: int = 48) -> bytes:
    """A small gradient PNG, made with zlib alone."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 4 % 256, y * 5 % 256, 160)) for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def run_script(name: str, args: list, cwd: Path, env: dict, stdin: str | None = None):
    done = subprocess.run([sys.executable, str(SCRIPTS / name), *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout.strip(), done.stderr.strip()


def ask_model(base_url: str, api_key: str, model: str, url: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is in this image?"}]}]}
    session = HttpSession(timeout=30)
    try:
        response = session.request("POST", f"{base_url}/compatible-mode/v1/chat/completions",
                                    {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json",
                                     **request_headers_for([url])}, json.dumps(body).encode())
    finally:
        session.close()
    data = response.json() or {}
    if response.status != 200:
        raise errors.QwenOpsError(f"model call failed with HTTP {response.status}", errors.HTTP_ERROR)
    return data["choices"][0]["message"]["content"]


def sandbox_demo(keep: bool) -> int:
    began = time.monotonic()
    sandbox = start(quiet=True)
    info = sandbox.info
    project = Path(tempfile.mkdtemp(prefix="qianwen-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update({"HOME": str(project / "home"), "XDG_CACHE_HOME": str(project / "cache"),
                "QWEN_BASE_URL": info["base_url"], "PYTHONDONTWRITEBYTECODE": "1"})
    say = print
    try:
        say(f"qianwen-ops-auth demo: local sandbox at {info['base_url']} (no account; nothing leaves this machine)")
        code, out, _ = run_script("setup_env.py", [], project, env)
        say(f"[1/6] setup_env.py -> .env created with the placeholder DASHSCOPE_API_KEY=sk-your-key-here (exit {code})")
        code, out, err = run_script("probe.py", [], project, env)
        say(f"[2/6] probe.py -> {out} (exit {code}): placeholder key detected, no request sent")
        run_script("setup_env.py", ["--from-stdin"], project, env, stdin=info["api_key"] + "\n")
        code, out, _ = run_script("probe.py", [], project, env)
        say(f"[3/6] probe.py with the sandbox's key in .env -> {out} (exit {code})")
        if code != 0:
            raise errors.QwenOpsError("the sandbox did not accept its own key", errors.INTERNAL)
        image = project / "sample image.png"
        image.write_bytes(sample_png())
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
        code, out, err = run_script("upload_file.py", ["--model", "qwen-vl-plus", "--json", str(image)], project, env)
        record = json.loads(out.splitlines()[0]) if code == 0 else {}
        if code != 0:
            raise errors.QwenOpsError(f"upload failed: {err}", code)
        say(f"[4/6] upload_file.py 'sample image.png' -> {record['url']} (temporary storage, valid 48 h)")
        verdicts = []

        def model_sees(url: str) -> str:
            """Ask the sandbox model about ``url``; it reports the sha256 of the bytes it received."""
            seen = f"sha256={digest}" in ask_model(info["base_url"], info["api_key"], "qwen-vl-plus", url)
            verdicts.append(seen)
            return "matches" if seen else "DOES NOT match"

        match = model_sees(record["url"])
        code, out, err = run_script("upload_file.py", ["--inline", str(image)], project, env)
        if code != 0:
            raise errors.QwenOpsError(f"--inline failed: {err}", code)
        inline = model_sees(out.splitlines()[0])
        say(f"[5/6] model call with the oss:// URL: the model read {record['bytes']} bytes, sha256 {match}; "
            f"with --inline (a data: URL, nothing uploaded): sha256 {inline}")
        oss_env = dict(env, QWEN_TMP_OSS_BUCKET=info["oss_bucket"], QWEN_TMP_OSS_REGION=info["oss_region"],
                       QWEN_TMP_OSS_ENDPOINT=info["oss_endpoint"], QWEN_TMP_OSS_AK_ID=info["oss_access_key_id"],
                       QWEN_TMP_OSS_AK_SECRET=info["oss_access_key_secret"])
        code, out, err = run_script("upload_file.py", ["--model", "qwen-vl-plus", "--json", str(image)],
                                    project, oss_env)
        if code != 0:
            raise errors.QwenOpsError(f"custom OSS upload failed: {err}", code)
        url = json.loads(out.splitlines()[0])["url"]
        match = model_sees(url)
        say(f"[6/6] custom OSS mode: presigned {url.split('?')[0]}?… (no extra header); sha256 {match}")
        where = project if keep else "removed"
        say(f"Done in {time.monotonic() - began:.1f} s. Temporary project: {where}.")
        return errors.OK if all(verdicts) else errors.INTERNAL
    finally:
        sandbox.stop()
        if not keep:
            shutil.rmtree(project, ignore_errors=True)


def real_demo() -> int:
    code, out, err = run_script("probe.py", [], Path.cwd(), dict(os.environ))
    print(f"probe.py against your configured endpoint -> {out} (exit {code})")
    if err:
        print(err, file=sys.stderr)
    print("Run with --sandbox to see the offline walkthrough (uploads and a model call).")
    return code


def main() -> int:
    parser = cli.ArgumentParser(prog="demo.py", description=__doc__)
    parser.add_argument("--sandbox", action="store_true", help="use the local sandbox even if a real key is set")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project directory for a look")
    args = parser.parse_args()
    if not args.sandbox:
        try:
            key = find_api_key(Settings.from_process())
        except errors.QwenOpsError:
            key = None
        if key is not None and key.status == STANDARD:
            return real_demo()
    return sandbox_demo(args.keep)


if __name__ == "__main__":
    cli.run(main)
