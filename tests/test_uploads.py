"""resolve_file / upload_file / upload_many / upload_file.py through temporary storage, on the sandbox: batches,
the cache, inputs (odd names, a key typed as a file name, an input holding the key), Ctrl-C, --temp-storage."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from conftest import (
    CANARY_KEY,
    MODEL,
    RESOLVE,
    SCRIPTS,
    assert_clean_error,
    chat,
    interrupt_when,
    leaks,
    mode_is,
    oss_env,
    run_script,
    sandbox_env,
    sandbox_settings,
)
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.settings import Settings
from qianwen_ops.temp_storage import object_key
from qianwen_ops.upload_cache import CACHE_VERSION
from qianwen_ops.uploads import request_headers_for, resolve_file, upload_file, upload_many


def make(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lib_settings(env, box, cwd, key=None):
    return Settings.from_process(cwd=cwd, env=sandbox_env(env, box, key))


def test_three_files_distinct_urls_and_model_sees_every_byte(sb, env, project):
    files = [make(project / "a" / "img.png", os.urandom(3000)), make(project / "b" / "img.png", os.urandom(4000)),
             make(project / "ünï cöde #?%+ name.png", os.urandom(5000))]
    result = run_script("upload_file.py", *map(str, files), "--model", MODEL, env=sandbox_env(env, sb), cwd=project)
    assert result.code == 0, result.err
    urls = result.out.split()
    assert len(urls) == 3 and len(set(urls)) == 3 and all(u.startswith("oss://") for u in urls)
    assert urls[0].endswith("_img.png") and urls[1].endswith("_img.png")
    assert "u00fcnu00ef_cu00f6de" in urls[2] and urls[2].isascii()
    status, body = chat(sb, urls, RESOLVE)
    content = body["choices"][0]["message"]["content"]
    assert status == 200
    for path in files:
        assert f"sha256={sha(path.read_bytes())}" in content


def test_forty_files_one_policy_then_cache_makes_zero_requests(sb, env, project):
    files = [str(make(project / f"f{i:02d}.bin", os.urandom(1000 + i))) for i in range(40)]
    run_env = sandbox_env(env, sb)
    before = sb.counts()
    first = run_script("upload_file.py", *files, "--model", MODEL, "--concurrency", "8", env=run_env, cwd=project)
    after = sb.counts()
    assert first.code == 0 and len(first.out.split()) == 40
    assert after["getPolicy"] - before["getPolicy"] == 1
    assert after["postObject"] - before["postObject"] == 40
    second = run_script("upload_file.py", *files, "--model", MODEL, env=run_env, cwd=project)
    assert second.out == first.out and sb.counts() == after
    third = run_script("upload_file.py", *files[:2], "--model", MODEL, "--no-cache", env=run_env, cwd=project)
    assert third.out.split() != first.out.split()[:2] and sb.counts()["postObject"] == after["postObject"] + 2


def test_retries_through_429_and_503(sb, env, project):
    path = make(project / "retry.png", os.urandom(2000))
    sb.fault(route="getPolicy", status=429, count=2)
    sb.fault(route="postObject", status=503, count=1)
    before = sb.counts()
    url = resolve_file(str(path), MODEL, settings=lib_settings(env, sb, project), use_cache=False)
    after = sb.counts()
    assert url.startswith("oss://")
    assert after["getPolicy"] - before["getPolicy"] == 3 and after["postObject"] - before["postObject"] == 2
    assert chat(sb, [url], RESOLVE)[0] == 200


def test_bad_inputs_reported_others_uploaded(sb, env, project):
    good = make(project / "good.png", os.urandom(100))
    empty = make(project / "empty.png", b"")
    (project / "folder").mkdir()
    locked = make(project / "locked.png", b"secret")
    locked.chmod(0)
    args = [str(project / "missing.png"), str(project / "folder"), str(empty), str(good)]
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # Windows: chmod 0 only sets read-only
        args.append(str(locked))
    result = run_script("upload_file.py", *args, "--model", MODEL, env=sandbox_env(env, sb), cwd=project)
    assert result.code == 10
    assert result.out.split() and result.out.split()[0].startswith("oss://") and len(result.out.split()) == 1
    assert_clean_error(result)
    err = result.err
    assert "no such file" in err and "is a directory" in err and "empty (0 bytes)" in err
    assert len(err.strip().splitlines()) == len(args) - 1


def test_oversize_refused_before_sending_bytes(make_sandbox, env, project):
    box = make_sandbox("--max-file-mb", "1")
    big = make(project / "big.bin", os.urandom(1024 * 1024 + 1))
    ok = make(project / "ok.bin", os.urandom(1024 * 1024))
    result = run_script("upload_file.py", str(big), str(ok), "--model", MODEL, env=sandbox_env(env, box), cwd=project)
    assert result.code == 10 and "over the 1 MiB limit" in result.err
    assert box.counts()["postObject"] == 1


def test_token_plan_key_refuses_and_sends_nothing(sb, env, project):
    path = make(project / "x.png", b"abc")
    before = sb.counts()
    result = run_script("upload_file.py", str(path), "--model", MODEL,
                        env=sandbox_env(env, sb, key=sb.info["token_plan_key"]), cwd=project)
    assert result.code == 4 and "URL only" in result.err and sb.counts() == before


def test_remote_inputs_pass_through_without_requests(sb, env, project):
    before = sb.counts()
    inputs = ["https://example.com/a.png", "oss://dashscope-instant/x/y.png", "data:image/png;base64,AAAA"]
    outcomes = upload_many(inputs, MODEL, settings=lib_settings(env, sb, project))
    assert [o.upload.url for o in outcomes] == inputs and sb.counts() == before
    assert request_headers_for(inputs) == RESOLVE and request_headers_for(inputs[:1]) == {}


def test_file_uri_forms(sb, env, project, tmp_path):
    path = make(project / "with space#.png", os.urandom(50))
    settings = lib_settings(env, sb, project)
    uri = "file://" + str(path).replace(" ", "%20").replace("#", "%23")
    upload = upload_file(uri, MODEL, settings=settings, use_cache=False)
    assert upload.size == 50 and upload.sha256 == sha(path.read_bytes()) and upload.needs_resolve_header
    home_file = make(tmp_path / "home" / "pic.png", b"home file")
    assert resolve_file("file://~/pic.png", MODEL, settings=settings).startswith("oss://")
    assert resolve_file("~/pic.png", MODEL, settings=settings).startswith("oss://")
    assert home_file.exists()
    with pytest.raises(QwenOpsError) as info:
        resolve_file("file://otherhost/x.png", MODEL, settings=settings)
    assert info.value.exit_code == 10


def test_json_lines_and_evidence(sb, env, project):
    path = make(project / "j.png", os.urandom(10))
    result = run_script("upload_file.py", str(path), str(project / "nope.png"), "--json", "--model", MODEL,
                        env=sandbox_env(env, sb), cwd=project)
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert set(lines[0]) == {"source", "url", "expires_at", "backend", "bytes", "sha256"}
    assert lines[0]["backend"] == "temp-storage" and lines[0]["bytes"] == 10
    assert set(lines[1]) == {"source", "error"}
    evidence = (project / "output" / "qianwen-ops-auth" / "uploads.jsonl").read_text().splitlines()
    assert len(evidence) == 2 and json.loads(evidence[0])["sha256"] == lines[0]["sha256"]


def test_cache_file_is_private_keyless_and_survives_corruption(sb, env, project, tmp_path):
    path = make(project / "c.png", os.urandom(10))
    settings = lib_settings(env, sb, project)
    first = resolve_file(str(path), MODEL, settings=settings)
    cache = tmp_path / "cache" / "qianwen-ops-auth" / "uploads.jsonl"
    assert mode_is(cache, 0o600) and sb.api_key not in cache.read_text()
    assert resolve_file(str(path), MODEL, settings=settings) == first
    cache.write_text("{not json\n\x00\x01 garbage")
    before = sb.counts()["postObject"]
    again = resolve_file(str(path), MODEL, settings=settings)
    assert again != first and sb.counts()["postObject"] == before + 1
    assert json.loads(cache.read_text().splitlines()[-1])["v"] == CACHE_VERSION
    assert resolve_file(str(path), MODEL, settings=settings) == again and sb.counts()["postObject"] == before + 1


def test_cache_survives_concurrent_writers(tmp_path):
    import threading

    from qianwen_ops.upload_cache import UploadCache

    path = tmp_path / "c" / "uploads.jsonl"
    far = {"url": "oss://x", "expires_at": 4e9, "issued_at": 1e9, "sha256": "0" * 64}

    def writer(n):
        cache = UploadCache(path)
        cache.lookup("warm")  # read once, as a batch does
        for i in range(300):
            cache.store({f"{n}-{i}": dict(far, url=f"oss://{n}/{i}" + "x" * 200)})
        cache.finish()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = UploadCache(path)
    assert all(entries.lookup(f"{n}-{i}")["url"].startswith(f"oss://{n}/{i}") for n in range(4) for i in range(300))
    assert len(path.read_text().splitlines()) == 1200  # every line live: nothing to compact
    assert mode_is(path, 0o600)


def test_cache_misses_when_file_model_or_account_changes(sb, env, project):
    path = make(project / "m.png", b"version one")
    settings = lib_settings(env, sb, project)
    first = resolve_file(str(path), MODEL, settings=settings)
    assert resolve_file(str(path), "qwen-vl-max", settings=settings) != first
    assert resolve_file(str(path), MODEL, settings=lib_settings(env, sb, project, sb.info["other_api_key"])) != first
    path.write_bytes(b"version two!")
    assert resolve_file(str(path), MODEL, settings=settings) != first


def test_policy_refreshed_when_it_expires_mid_batch(make_sandbox, env, project):
    box = make_sandbox("--policy-ttl", "600")
    settings = lib_settings(env, box, project)
    files = [str(make(project / f"p{i}.bin", os.urandom(100))) for i in range(3)]
    assert all(o.error is None for o in upload_many(files[:1], MODEL, settings=settings, use_cache=False))
    box.advance_clock(700)  # the policy the client holds is now expired on the server
    outcomes = upload_many(files, MODEL, settings=settings, use_cache=False, concurrency=1)
    assert all(o.error is None for o in outcomes)


def test_409_gets_a_new_key(sb, env, project):
    path = make(project / "dup.png", os.urandom(100))
    sb.fault(route="postObject", status=409, count=1)
    before = sb.counts()["postObject"]
    url = resolve_file(str(path), MODEL, settings=lib_settings(env, sb, project), use_cache=False)
    assert url.startswith("oss://") and sb.counts()["postObject"] == before + 2


def test_long_names_fit_the_oss_key_limit(sb, env, project):
    path = make(project / "x" / (("長" * 80) + ".png"), os.urandom(10))
    url = resolve_file(str(path), MODEL, settings=lib_settings(env, sb, project))
    assert url.endswith("u9577u9577.png") and url.isascii() and chat(sb, [url], RESOLVE)[0] == 200
    key = object_key("dashscope-instant/acct/2026-11-21/" + "d" * 32, ("長" * 400) + ".png")
    assert len(key.encode()) <= 1023 and key.endswith(".png") and key.isascii()
    assert object_key("dir", "a\nb\r\t c?#%+.PNG").split("_", 1)[1] == "a_b_c_.PNG"


def test_bad_model_and_concurrency(env, project):
    result = run_script("upload_file.py", "x", "--model", "bad model!", env=env, cwd=project)
    assert result.code == 2
    result = run_script("upload_file.py", "x", "--model", MODEL, "--concurrency", "0", env=env, cwd=project)
    assert result.code == 2


def test_progress_bar_on_a_terminal_only(sb, env, project):
    import pty
    import subprocess

    from conftest import SCRIPTS

    big = make(project / "big.bin", os.urandom(9 * 1024 * 1024))
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, str(SCRIPTS / "upload_file.py"), str(big), "--model", MODEL,
                               "--no-cache"], env=sandbox_env(env, sb), cwd=project, stdout=subprocess.PIPE,
                              stderr=follower, timeout=120)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 0 and done.stdout.startswith(b"oss://")
    assert b"100%" in shown and b"[######" in shown
    piped = run_script("upload_file.py", str(big), "--model", MODEL, "--no-cache", env=sandbox_env(env, sb),
                       cwd=project)
    assert piped.code == 0 and piped.err == ""


def _key_inputs(key: str) -> list:
    return [f"DASHSCOPE_API_KEY={key}", f"./{key}", f"'{key}'", f"{key},", key[3:], f"file:///tmp/{key}.png",
            f"dir/{key[3:]}/x.png", f"Authorization: Bearer {key}", f"{key[:12]}\n{key[12:]}"]


def test_an_input_holding_the_key_is_never_echoed(sb, env, project):
    (project / "a.png").write_bytes(b"a picture")
    run_env = sandbox_env(env, sb)
    texts = []
    for extra in ([], ["--json"]):
        done = run_script("upload_file.py", "a.png", *_key_inputs(sb.api_key), "--model", MODEL, *extra,
                          env=run_env, cwd=project)
        assert done.code == 10 and "Traceback" not in done.err, done.err
        assert done.out.startswith(("oss://", '{"source": "a.png"'))
        texts += [done.out, done.err]
    texts += [p.read_text() for p in (project / "output").rglob("*") if p.is_file()]
    shown = "\n".join(texts)
    assert leaks(shown, (sb.api_key,)) == [], leaks(shown, (sb.api_key,))
    assert "DASHSCOPE_API_KEY=sk-<redacted>" in shown     # the input is still recognisable


def test_library_outcomes_never_echo_the_key_from_an_input(sb, env, project):
    from qianwen_ops.uploads import upload_many

    outcomes = upload_many(_key_inputs(sb.api_key), MODEL, settings=sandbox_settings(env, sb, project), use_cache=False)
    text = "\n".join(f"{o.source} {o.error} {o.error!r}" for o in outcomes)
    assert all(o.error is not None for o in outcomes)
    assert leaks(text, (sb.api_key,)) == [], text


def test_temp_storage_flag_ignores_a_configured_bucket_for_one_upload(sb, env, project):

    from qianwen_ops.uploads import upload_file

    (project / "pic.png").write_bytes(os.urandom(500))
    run_env = oss_env(env, sb)
    before = sb.counts()
    done = run_script("upload_file.py", "pic.png", "--model", MODEL, "--json", "--temp-storage", env=run_env,
                      cwd=project)
    assert done.code == 0 and "uploading to your bucket" not in done.err, done.err
    record = json.loads(done.out)
    assert record["backend"] == "temp-storage" and record["url"].startswith("oss://")
    after = sb.counts()
    assert after["postObject"] == before["postObject"] + 1 and after["oss"] == before["oss"]
    upload = upload_file(str(project / "pic.png"), MODEL, settings=Settings.from_process(cwd=project, env=run_env),
                         use_cache=False, temp_storage=True)
    assert upload.backend == "temp-storage"
    default = run_script("upload_file.py", "pic.png", "--model", MODEL, "--json", env=run_env, cwd=project)
    assert json.loads(default.out)["backend"] == "custom-oss"          # without the flag: the bucket


def _run(args: list, env: dict, cwd, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / "upload_file.py"), *args], env=env, cwd=cwd,
                          capture_output=True, timeout=timeout)


def test_non_utf8_and_control_character_names_do_not_stop_the_batch(sb, env, project):
    bad = os.fsencode(str(project)) + b"/bad\xff\xfe.png"
    with open(bad, "wb") as handle:
        handle.write(b"not utf-8 name")
    (project / "ctl\x1b[31mred\x07.png").write_bytes(b"escape sequence name")
    (project / "ok.png").write_bytes(b"fine")
    args = [bad, os.fsencode("ctl\x1b[31mred\x07.png"), b"ok.png", b"missing\x1b[2J.png", b"--model", MODEL.encode()]
    for extra in ([], [b"--json"]):
        done = _run(args + extra, sandbox_env(env, sb), project)
        out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
        assert done.returncode == 10, err                    # the missing file; the other three uploaded
        assert "\x1b" not in out + err and "\x07" not in out + err and "Traceback" not in err
        lines = out.splitlines()
        assert len(lines) == (4 if extra else 3)
        urls = [json.loads(line).get("url") for line in lines] if extra else lines
        assert sum(1 for u in urls if u and u.startswith("oss://")) == 3
        assert "missing\\x1b[2J.png" in err
    evidence = (project / "output" / "qianwen-ops-auth" / "uploads.jsonl").read_bytes().decode("utf-8")
    sources = [json.loads(line)["source"] for line in evidence.splitlines()]
    assert "\x1b" not in "".join(sources) and any(s.endswith("bad\\udcff\\udcfe.png") for s in sources)


def test_a_key_given_as_a_file_name_is_refused_without_echo(sb, env, project):
    (project / "ok.png").write_bytes(b"fine")
    done = _run([CANARY_KEY, "ok.png", "--model", MODEL, "--json"], sandbox_env(env, sb), project)
    out, err = done.stdout.decode(), done.stderr.decode()
    evidence = (project / "output" / "qianwen-ops-auth" / "uploads.jsonl").read_text()
    assert done.returncode == 10 and "looks like an API key" in err
    assert leaks(out + err + evidence) == []
    assert json.loads(out.splitlines()[1])["url"].startswith("oss://")


def test_ctrl_c_with_concurrency_returns_within_two_seconds(sb, env, project):
    for i in range(8):
        (project / f"slow{i}.bin").write_bytes(os.urandom(200) + bytes([i]))
    sb.fault(route="postObject", status=503, delay_s=3, count=200)  # slow failures, then retries with backoff
    before = sb.counts()["postObject"]
    code, _, err, took = interrupt_when(
        [SCRIPTS / "upload_file.py", *[f"slow{i}.bin" for i in range(8)], "--model", MODEL, "--concurrency", "4",
         "--no-cache"], lambda: sb.counts()["postObject"] >= before + 4, sandbox_env(env, sb), project)
    assert code == 130 and took < 2.0, (took, err)
    assert "Traceback" not in err and "interrupted" in err


def test_a_secret_loaded_mid_batch_is_redacted_from_the_inputs_shown_after_it(env, project, monkeypatch):
    """The batch scans every input once for what redact would change and shows clean inputs as given; a secret
    added after that scan (a backend loading one mid-batch) makes each later input redacted again."""
    from qianwen_ops import redaction, uploads

    secret = "Zq7mid8batch9Secret4Value"
    (project / "a.png").write_bytes(b"picture a")
    (project / f"{secret}.png").write_bytes(b"picture b")
    resolve = uploads._Batch.resolve

    def loading(self, source, model, cached_only=False):
        redaction.remember(secret)
        return resolve(self, source, model, cached_only)

    monkeypatch.setattr(redaction, "_secrets", set())
    monkeypatch.setattr(redaction, "_pieces", set())
    monkeypatch.setattr(uploads._Batch, "resolve", loading)
    settings = Settings.from_process(cwd=project, env=env)
    first, second = upload_many([str(project / "a.png"), str(project / f"{secret}.png")], "", settings=settings,
                                inline=True, concurrency=1)
    assert first.source == str(project / "a.png") and first.error is None
    assert secret not in second.source and second.source.endswith("<redacted>.png")
