"""The real scripts with Windows' semantics (tests/winshim/sitecustomize.py): what CPython on Windows lacks is
gone (os.fchmod before 3.13, os.geteuid, os.pread, fcntl...), msvcrt.locking is there, a rename over an open
file fails as it does there, and every os.open of a regular file must pass O_BINARY.

This is a simulation on Linux, not Windows: path syntax is covered by test_windows_paths.py, and
docs/platforms.md says what has really run where.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import MODEL, ROOT, WINDOWS, needs_proc, run_script, sandbox_env

pytestmark = [needs_proc, pytest.mark.skipif(WINDOWS, reason="simulates Windows on a POSIX system; on Windows "
                                             "the real thing runs instead")]
SHIM = ROOT / "tests" / "winshim"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"   # 0D 0A 1A 0A: what a text-mode read on Windows translates or stops at


@pytest.fixture
def win(env, tmp_path):
    """(environment with the Windows layer, its event log)."""
    log = tmp_path / "winshim-own.jsonl"   # its own log: some tests here break the rules on purpose
    return dict(env, PYTHONPATH=str(SHIM), QWEN_WINSHIM_LOG=str(log)), log


def events(log: Path) -> list:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def assert_windows_clean(log: Path, runs: int) -> list:
    """Each run loaded the layer; no fd was opened in text mode and no rename or delete hit an open file."""
    found = events(log)
    assert sum(e["event"] == "loaded" for e in found) >= runs, "the Windows layer did not load"
    bad = [e for e in found if e["event"] in ("text-mode-open", "replace-refused", "unlink-refused")]
    assert not bad, bad
    return found


def git_project(project: Path) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    return project


def png_bytes() -> bytes:
    """A PNG-looking file whose bytes a text-mode read would damage: CRLF pairs, and 0x1A early and often."""
    rng = random.Random(19)
    body = bytearray(rng.getrandbits(8) for _ in range(200_000))
    for offset in range(0, len(body) - 4, 997):
        body[offset:offset + 4] = b"\r\n\x1a\n"
    return PNG_SIGNATURE + b"\x00\x00\x00\rIHDR" + bytes(body)


def model_sees(box, url: str) -> str:
    """What the sandbox's vision model reports about ``url`` (size and sha256 of the bytes it stores)."""
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "hi"}]}]}).encode()
    request = urllib.request.Request(box.base_url + "/compatible-mode/v1/chat/completions", body,
                                     {"Authorization": f"Bearer {box.api_key}", "Content-Type": "application/json",
                                      "X-DashScope-OssResourceResolve": "enable"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


def test_the_layer_takes_away_what_windows_lacks(win, tmp_path):
    env, log = win
    probe = "\n".join([
        "import os",
        "missing = [n for n in ('fchmod', 'geteuid', 'getuid', 'pread', 'sendfile', 'O_NOFOLLOW') if hasattr(os, n)]",
        "try:",
        "    import fcntl",
        "    missing.append('fcntl importable')",
        "except ImportError:",
        "    pass",
        "import msvcrt",
        "fd = os.open('held', os.O_RDWR | os.O_CREAT | os.O_BINARY)",
        "open('new', 'wb').close()",
        "try:",
        "    os.replace('new', 'held')",
        "    missing.append('a rename over an open file worked')",
        "except PermissionError as exc:",
        "    assert exc.winerror == 5",
        "os.close(fd)",
        "os.replace('new', 'held')",
        "os.close(os.open('held', os.O_RDONLY))",
        "print(missing)",
    ])
    done = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "[]", "")
    text_mode = [e for e in events(log) if e["event"] == "text-mode-open"]
    assert [e["path"] for e in text_mode] == ["held"]   # the one open without O_BINARY, and only that one


def test_setup_env_writes_the_placeholder_env(win, project):
    env, log = win
    git_project(project)
    result = run_script("setup_env.py", env=env, cwd=project)
    assert result.code == 0 and result.err == "", result.err
    assert (project / ".env").read_bytes() == b"DASHSCOPE_API_KEY=sk-your-key-here\n"
    assert (project / ".gitignore").read_bytes() == b".env\n/output/qianwen-ops-auth/\n"
    assert result.out.splitlines()[-1].startswith("Next: open .env")
    assert_windows_clean(log, runs=1)


def test_a_png_with_crlf_and_sub_bytes_uploads_byte_exact(win, sb, project):
    env, log = win
    data = png_bytes()
    (project / "crlf.png").write_bytes(data)
    result = run_script("upload_file.py", "crlf.png", "--model", MODEL, "--json", env=sandbox_env(env, sb),
                        cwd=project)
    assert result.code == 0, result.err
    record = json.loads(result.out)
    digest = hashlib.sha256(data).hexdigest()
    assert record["bytes"] == len(data) and record["sha256"] == digest
    assert f"bytes={len(data)} sha256={digest}" in model_sees(sb, record["url"])   # what the server stored
    assert_windows_clean(log, runs=1)


def test_doctor_probe_gossamer_and_the_update_check_run(win, sb, project, tmp_path):
    env, log = win
    run_env = dict(sandbox_env(env, sb), QWEN_SKILLS_STATE=str(tmp_path / "state" / "state.json"))
    probe = run_script("probe.py", env=run_env, cwd=project)
    assert (probe.code, probe.out, probe.err) == (0, "200\n", "")
    doctor = run_script("doctor.py", env=run_env, cwd=project)
    assert doctor.code == 0 and "result: authentication works" in doctor.out, doctor.out + doctor.err
    assert "chmod" not in doctor.out   # no POSIX advice where mode bits mean nothing
    for args in (["gossamer.py"], ["gossamer.py", "--dismiss"], ["gossamer.py", "--status"]):
        done = run_script(*args, env=run_env, cwd=project)
        assert done.code == 0 and "Traceback" not in done.err, (args, done.err)
    check = run_script("check_update.py", "--print-response", "--force", env=run_env, cwd=project)
    assert check.code == 0 and json.loads(check.out)["has_update"] is False
    assert json.loads(run_script("gossamer.py", "--status", env=run_env, cwd=project).out)["suppressed"] is True
    found = assert_windows_clean(log, runs=7)
    locks = [e["mode"] for e in found if e["event"] == "msvcrt.locking"]
    assert locks and locks.count(2) == locks.count(0)   # every lock taken (LK_NBLCK) was released (LK_UNLCK)


def test_the_reuse_cache_works_across_runs_and_compacts(win, sb, project, tmp_path):
    """Run 1 uploads and compacts a cache grown past its limit (a rename over the cache file: Windows refuses
    it while the batch still holds the file open); run 2 reuses the URL without uploading."""
    from qianwen_ops.upload_cache import COMPACT_MIN_BYTES, _line

    env, log = win
    cache = tmp_path / "cache" / "qianwen-ops-auth" / "uploads.jsonl"
    cache.parent.mkdir(parents=True)
    expired = {"url": "oss://old", "expires_at": 1.0, "issued_at": 0.0, "sha256": "0" * 64}
    cache.write_bytes(b"".join(_line(f"{i:064x}", expired) for i in range(COMPACT_MIN_BYTES // 120 + 500)))
    assert cache.stat().st_size > COMPACT_MIN_BYTES
    (project / "same.png").write_bytes(PNG_SIGNATURE + b"reuse me")
    run_env = sandbox_env(env, sb)
    before = sb.counts()
    first = run_script("upload_file.py", "same.png", "--model", MODEL, env=run_env, cwd=project)
    assert first.code == 0, first.err
    lines = cache.read_bytes().count(b"\n")
    assert lines == 1, f"the cache was not compacted: {lines} lines"
    second = run_script("upload_file.py", "same.png", "--model", MODEL, env=run_env, cwd=project)
    assert second.code == 0 and second.out == first.out
    after = sb.counts()
    assert after["postObject"] - before["postObject"] == 1 and after["getPolicy"] - before["getPolicy"] == 1
    found = assert_windows_clean(log, runs=2)
    assert any(e["event"] == "msvcrt.locking" for e in found)
