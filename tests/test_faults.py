"""Faults injected by the sandbox: every run ends in bounded time, each input is uploaded once or reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest

from conftest import MODEL, RESOLVE, SCRIPTS, SandboxProc, chat, read_json_line, run_script, sandbox_env, wait_until


def files(project, n, size=500):
    names = []
    for i in range(n):
        (project / f"f{i:02d}.bin").write_bytes(os.urandom(size) + bytes([i]))
        names.append(f"f{i:02d}.bin")
    return names


def new_objects(box, before) -> list:
    return [o for o in box.stats()["objects"] if o["key"] not in before]


def keys(box) -> set:
    return {o["key"] for o in box.stats()["objects"]}


def timed(fn):
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def test_burst_of_429_within_retries_succeeds(sb, env, project):
    names = files(project, 5)
    sb.fault(route="getPolicy", status=429, count=3)
    result, took = timed(lambda: run_script("upload_file.py", *names, "--model", MODEL, env=sandbox_env(env, sb),
                                            cwd=project))
    assert result.code == 0 and len(result.out.split()) == 5 and took < 30


@pytest.mark.slow
def test_endless_429_fails_in_bounded_time_with_exit_6(sb, env, project):
    names = files(project, 3)
    sb.fault(route="getPolicy", status=429, count=50)
    before = sb.counts()["getPolicy"]
    result, took = timed(lambda: run_script("upload_file.py", *names, "--model", MODEL, env=sandbox_env(env, sb),
                                            cwd=project))
    assert result.code == 6 and result.out == "" and took < 30
    assert sb.counts()["getPolicy"] - before == 5  # one policy attempt sequence shared by the whole batch
    assert len(result.err.strip().splitlines()) == 3


def test_5xx_bursts_on_upload_each_file_exactly_once(sb, env, project):
    names = files(project, 10)
    before_keys = keys(sb)
    sb.fault(route="postObject", status=503, count=3)
    result = run_script("upload_file.py", *names, "--model", MODEL, "--concurrency", "4", "--json",
                        env=sandbox_env(env, sb), cwd=project)
    assert result.code == 0
    urls = [json.loads(line)["url"] for line in result.out.splitlines()]
    created = new_objects(sb, before_keys)
    assert len(urls) == 10 == len(created)
    assert sorted(u[len("oss://"):] for u in urls) == sorted(o["key"] for o in created)


def test_dropped_connections_mid_upload_are_retried(sb, env, project):
    names = files(project, 4, size=200_000)
    before_keys = keys(sb)
    sb.fault(route="postObject", action="reset", count=3)
    result = run_script("upload_file.py", *names, "--model", MODEL, "--concurrency", "2", env=sandbox_env(env, sb),
                        cwd=project)
    assert result.code == 0 and len(result.out.split()) == 4
    assert len(new_objects(sb, before_keys)) == 4
    status, body = chat(sb, result.out.split(), RESOLVE)
    assert status == 200 and body["choices"][0]["message"]["content"].count("sha256=") == 4


def test_slow_responses_past_the_timeout_are_retried(sb, env, project):
    names = files(project, 2)
    sb.fault(route="getPolicy", delay_s=2.0, count=1)
    result, took = timed(lambda: run_script("upload_file.py", *names, "--model", MODEL, "--timeout", "0.5",
                                            env=sandbox_env(env, sb), cwd=project))
    assert result.code == 0 and len(result.out.split()) == 2 and took < 20


def test_policy_expiring_mid_batch(make_sandbox, env, project):
    box = make_sandbox("--policy-ttl", "300")
    names = files(project, 6)
    run_env = sandbox_env(env, box)
    assert run_script("upload_file.py", names[0], "--model", MODEL, "--no-cache", env=run_env, cwd=project).code == 0
    box.advance_clock(301)
    result = run_script("upload_file.py", *names, "--model", MODEL, "--no-cache", "--concurrency", "3",
                        env=run_env, cwd=project)
    assert result.code == 0 and len(result.out.split()) == 6


def start_persistent(data_dir, port: int = 0, oss_port: int = 0) -> SandboxProc:
    """A sandbox keeping its state in ``data_dir``; port 0 lets the kernel choose (no race with other tests)."""
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "sandbox.py"), "--quiet", "--data-dir", str(data_dir),
                             "--port", str(port), "--oss-port", str(oss_port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    return SandboxProc(read_json_line(proc), proc)


def ports(box: SandboxProc) -> tuple:
    return urlsplit(box.base_url).port, urlsplit(box.info["oss_endpoint"]).port


@pytest.mark.slow
def test_sandbox_killed_mid_batch_then_rerun_completes(env, project, tmp_path):
    data = tmp_path / "sandbox-data"
    box = start_persistent(data)
    port, oss_port = ports(box)  # the restart below takes the same ports back
    try:
        names = files(project, 20, size=1000)
        run_env = sandbox_env(env, box)
        box.fault(route="postObject", delay_s=0.2, count=20)
        upload = subprocess.Popen([sys.executable, str(SCRIPTS / "upload_file.py"), *names, "--model", MODEL,
                                   "--json", "--concurrency", "1"], env=run_env, cwd=project,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: box.counts()["postObject"] >= 5, timeout=30)
        box.process.kill()
        box.process.wait(timeout=10)
        killed_at = time.monotonic()
        out, err = upload.communicate(timeout=90)
        assert time.monotonic() - killed_at < 15  # the rest fail fast once the host is known down
        assert upload.returncode == 8 and "Traceback" not in err
        lines = [json.loads(line) for line in out.splitlines()]
        done = [r for r in lines if "url" in r]
        failed = [r for r in lines if "error" in r]
        assert len(lines) == 20 and done and failed and len(done) + len(failed) == 20
        box = start_persistent(data, port, oss_port)
        assert box.api_key == run_env["DASHSCOPE_API_KEY"]
        for record in done:  # every URL reported before the crash is a complete object
            assert chat(box, [record["url"]], RESOLVE)[0] == 200
        before = box.counts()["postObject"]
        rerun = run_script("upload_file.py", *names, "--model", MODEL, "--json", env=run_env, cwd=project)
        assert rerun.code == 0
        again = [json.loads(line) for line in rerun.out.splitlines()]
        assert box.counts()["postObject"] - before == len(failed)
        assert [r["url"] for r in again if r["source"] in {d["source"] for d in done}] == [d["url"] for d in done]
        status, body = chat(box, [r["url"] for r in again], RESOLVE)
        assert status == 200 and body["choices"][0]["message"]["content"].count("sha256=") == 20
    finally:
        box.stop()
