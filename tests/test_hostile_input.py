"""Hostile and odd input: one clean line, a documented exit code, no traceback, no user file harmed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from conftest import MODEL, WINDOWS, assert_clean_error, needs_fifo, needs_symlinks, run_script, sandbox_env
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.local_files import HashedReader, check_file
from qianwen_ops.settings import Settings
from qianwen_ops.uploads import upload_many


def snapshot(folder: Path) -> dict:
    """Every user file (not our evidence) with its bytes' hash, its mode and link target."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] == "output":
            continue
        if path.is_symlink():
            out[str(rel)] = ("link", os.readlink(path))
        elif path.is_file() and os.access(path, os.R_OK):
            out[str(rel)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
        else:
            out[str(rel)] = ("other", path.lstat().st_mode)
    return out


def prepare(p: Path) -> None:
    (p / "ok.png").write_bytes(b"\x89PNG ok")
    (p / "ünï cöde.png").write_bytes(b"unicode")
    (p / "with space.png").write_bytes(b"space")
    (p / "new\nline.png").write_bytes(b"newline")
    (p / "-dash.png").write_bytes(b"dash")
    (p / "sub").mkdir()
    (p / "empty.png").write_bytes(b"")
    (p / "link-to-file.png").symlink_to(p / "ok.png")
    (p / "link-to-dir").symlink_to(p / "sub")
    (p / "dangling.png").symlink_to(p / "nowhere.png")
    (p / "loop-a").symlink_to(p / "loop-b")
    (p / "loop-b").symlink_to(p / "loop-a")
    os.mkfifo(p / "fifo.png")
    (p / "exact.bin").write_bytes(b"e" * (1024 * 1024))
    (p / "over.bin").write_bytes(b"o" * (1024 * 1024 + 1))


# (id, args, exit code, words in stderr or stdout prefix)
UPLOAD_CASES = [
    ("unicode-name", ["ünï cöde.png"], 0, "oss://"),
    ("space-name", ["with space.png"], 0, "oss://"),
    ("newline-name", ["new\nline.png"], 0, "oss://"),
    ("leading-dash-after--", ["--", "-dash.png"], 0, "oss://"),
    ("leading-dash-without--", ["-dash.png"], 2, "error"),
    ("dotdot-path", ["../project/ok.png"], 0, "oss://"),
    ("symlink-to-file", ["link-to-file.png"], 0, "oss://"),
    ("symlink-to-dir", ["link-to-dir"], 10, "is a directory"),
    ("dangling-symlink", ["dangling.png"], 10, "broken symbolic link"),
    ("symlink-loop", ["loop-a"], 10, "symbolic link loop"),
    ("fifo", ["fifo.png"], 10, "not a regular file"),
    ("char-device-null", ["/dev/null"], 10, "not a regular file"),
    ("char-device-zero", ["/dev/zero"], 10, "not a regular file"),
    ("directory", ["sub"], 10, "is a directory"),
    ("empty-file", ["empty.png"], 10, "empty (0 bytes)"),
    ("exactly-at-limit", ["exact.bin"], 0, "oss://"),
    ("one-byte-over-limit", ["over.bin"], 10, "over the 1 MiB limit"),
    ("missing", ["missing.png"], 10, "no such file"),
    ("empty-string", [""], 10, "empty string"),
    ("file-uri-no-path", ["file://"], 10, "no path"),
    ("file-uri-remote-host", ["file://server/share/x.png"], 10, "remote host"),
    ("file-uri-query", ["file:///tmp/x.png?x=1"], 10, "query or fragment"),
    ("file-uri-missing", ["file:///definitely/not/here.png"], 10, "no such file"),
    ("file-uri-encoded", ["FILE_URI_ENCODED"], 0, "oss://"),
    ("url-with-credentials", ["https://user:hunter22@example.com/x.png"], 10, "user name or password"),
    ("unsupported-scheme", ["ftp://example.com/x.png"], 10, "unsupported URL scheme"),
    ("name-too-long", ["x" * 300 + ".png"], 10, "too long"),
    ("bad-model", ["ok.png", "--model", "no spaces allowed"], 2, "model"),
    ("concurrency-out-of-range", ["ok.png", "--concurrency", "999"], 2, "concurrency"),
]


@pytest.fixture(scope="module")
def small_sandbox():
    from conftest import start_sandbox

    box = start_sandbox("--max-file-mb", "1")
    yield box
    box.stop()


@pytest.mark.skipif(WINDOWS, reason="Windows: these inputs are POSIX ones (links, a FIFO, a newline in a name, "
                    "/dev/zero); tests/test_windows_paths.py covers Windows paths and file:// URIs")
@pytest.mark.parametrize("case,args,code,word", UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_upload_inputs(small_sandbox, env, project, case, args, code, word):
    prepare(project)
    args = [str(project / "with space.png").replace(" ", "%20").join(["file://", ""]) if a == "FILE_URI_ENCODED"
            else a for a in args]
    if "--model" not in args:
        args = [*args[:1], *args[1:], "--model", MODEL] if args[0] != "--" else ["--model", MODEL, *args]
    before = snapshot(project)
    result = run_script("upload_file.py", *args, env=sandbox_env(env, small_sandbox), cwd=project, timeout=60)
    assert result.code == code, (case, result.err)
    if code == 0:
        assert result.out.startswith(word) and result.out[-1] == "\n" and len(result.out.splitlines()) == 1
    else:
        assert_clean_error(result)
        assert word in result.err
        assert "hunter22" not in result.err
    assert snapshot(project) == before


def test_very_long_argument_list(sb, env, project):
    names = []
    for i in range(300):
        (project / f"n{i:03d}.bin").write_bytes(os.urandom(64))
        names.append(f"n{i:03d}.bin")
    before = sb.counts()["getPolicy"]
    result = run_script("upload_file.py", *names, "--model", MODEL, "--concurrency", "16", env=sandbox_env(env, sb),
                        cwd=project, timeout=300)
    assert result.code == 0 and len(result.out.split()) == 300 and sb.counts()["getPolicy"] == before + 1


def test_file_that_grows_while_uploading_is_reported_not_uploaded(sb, env, project):
    path = project / "growing.bin"
    path.write_bytes(os.urandom(2 * 1024 * 1024))
    grown = []

    def grow(source, sent, total):
        if not grown:
            grown.append(True)
            with open(path, "ab") as handle:
                handle.write(b"more")

    before = {o["key"] for o in sb.stats()["objects"]}
    outcome = upload_many([str(path)], MODEL, settings=Settings.from_process(cwd=project, env=sandbox_env(env, sb)),
                          use_cache=False, progress=grow)[0]
    assert outcome.upload is None and outcome.error.exit_code == 10 and "changed" in outcome.error.message
    assert {o["key"] for o in sb.stats()["objects"]} == before  # no partial object was kept


def test_file_deleted_mid_batch(sb, env, project):
    first, second = project / "first.bin", project / "second.bin"
    first.write_bytes(os.urandom(1000))
    second.write_bytes(os.urandom(1000))

    def delete_second(source, sent, total):
        second.unlink(missing_ok=True)

    outcomes = upload_many([str(first), str(second)], MODEL, concurrency=1, use_cache=False, progress=delete_second,
                           settings=Settings.from_process(cwd=project, env=sandbox_env(env, sb)))
    assert outcomes[0].upload is not None and outcomes[1].error.exit_code == 10
    assert "no such file" in outcomes[1].error.message


def test_file_changing_between_check_and_read(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 1000)
    checked = check_file(path)
    path.write_bytes(b"b" * 10)
    with pytest.raises(QwenOpsError, match="changed"):
        list(HashedReader(checked))


def test_hashed_reader_reads_once_into_a_few_buffers_and_notices_a_change(tmp_path):
    """The temporary-storage body: every byte once, in order, hashed on the way, through four reusable
    buffers (no allocation per chunk); a file that changes meanwhile is an error, never a digest."""
    import hashlib
    import threading

    data = os.urandom(9 * 1024 * 1024 + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    reader = HashedReader(check_file(path))
    seen, buffers = [], set()
    for view in reader:
        seen.append(bytes(view))
        buffers.add(id(view.obj))
    assert b"".join(seen) == data and reader.hexdigest() == hashlib.sha256(data).hexdigest()
    assert len(seen) == 10 and len(buffers) <= 4
    small = tmp_path / "small.bin"
    small.write_bytes(b"xyz")
    tiny = HashedReader(check_file(small))
    assert [bytes(v) for v in tiny] == [b"xyz"] and tiny.hexdigest() == hashlib.sha256(b"xyz").hexdigest()

    checked = check_file(path)
    threads = threading.active_count()
    growing = HashedReader(checked)
    with pytest.raises(QwenOpsError, match="changed"):
        for i, _view in enumerate(growing):
            if i == 3:
                with open(path, "ab") as handle:
                    handle.write(b"more")
    with pytest.raises(RuntimeError):
        growing.hexdigest()
    abandoned = iter(HashedReader(check_file(path)))
    next(abandoned)
    abandoned.close()  # a send that failed half-way: the hashing thread ends with it
    assert threading.active_count() == threads


def test_nul_byte_in_path_library(tmp_path):
    outcome = upload_many(["a\x00b.png"], MODEL, settings=Settings.from_process(cwd=tmp_path, env={}))[0]
    assert outcome.error.exit_code == 10 and "NUL" in outcome.error.message


# ------------------------------------------------------------------ .env files and settings

ENV_CASES = [
    ("binary-dotenv", lambda p: (p / ".env").write_bytes(b"\x00\x01\x02DASH"), {}, 9, "binary"),
    ("huge-dotenv", lambda p: (p / ".env").write_bytes(b"# x\n" * 300_000), {}, 9, "larger than"),
    ("non-utf8-dotenv", lambda p: (p / ".env").write_bytes(b"DASHSCOPE_API_KEY=\xff\xfe\n"), {}, 9, "UTF-8"),
    ("utf16-dotenv", lambda p: (p / ".env").write_bytes("\ufeffDASHSCOPE_API_KEY=GOODKEY\r\n".encode("utf-16-le")), {},
     9, "saved as UTF-16"),
    ("dotenv-is-directory", lambda p: (p / ".env").mkdir(), {}, 3, "no API key"),
    ("dotenv-is-fifo", lambda p: os.mkfifo(p / ".env"), {}, 3, "no API key"),
    ("dotenv-duplicate-keys", lambda p: (p / ".env").write_text(
        "DASHSCOPE_API_KEY=sk-wrongfirst1\nDASHSCOPE_API_KEY=GOODKEY\n"), {}, 0, "200"),
    ("dotenv-conflicting-keys", lambda p: (p / ".env").write_text(
        "DASHSCOPE_API_KEY=GOODKEY\nQIANWEN_API_KEY=sk-aliaswins1\n"), {}, 5, "401"),
    ("dotenv-symlinked", lambda p: ((p.parent / "real.env").write_text("DASHSCOPE_API_KEY=GOODKEY\n"),
                                    (p / ".env").symlink_to(p.parent / "real.env")), {}, 0, "200"),
    ("base-url-malformed", None, {"QWEN_BASE_URL": "http//broken"}, 9, "QWEN_BASE_URL"),
    ("base-url-not-http", None, {"QWEN_BASE_URL": "file:///etc/passwd"}, 9, "https://"),
    ("base-url-remote-http", None, {"QWEN_BASE_URL": "http://dashscope.aliyuncs.com"}, 9, "plain http"),
    ("base-url-userinfo", None, {"QWEN_BASE_URL": "https://me:hunter22@x.example.com"}, 9, "user name"),
    ("base-url-bad-port", None, {"QWEN_BASE_URL": "https://x.example.com:70000"}, 9, "valid URL"),
    ("base-url-bad-path", None, {"QWEN_BASE_URL": "https://x.example.com/v9/other"}, 9, "path"),
    ("region-unknown", None, {"QWEN_REGION": "moon", "QWEN_BASE_URL": ""}, 9, "QWEN_REGION"),
    ("dotenv-redirects-key-to-unknown-host", lambda p: (p / ".env").write_text(
        "QWEN_BASE_URL=https://collector.example.com\n"), {"DASHSCOPE_API_KEY": "sk-abcdef123456"}, 9,
     "not a documented host"),
    ("dotenv-base-url-loopback-refused", lambda p: (p / ".env").write_text("QWEN_BASE_URL=SANDBOX\n"),
     {"DASHSCOPE_API_KEY": "GOODKEY"}, 9, "loopback host"),
]


_PLATFORM_MARKS = {"dotenv-is-fifo": needs_fifo, "dotenv-symlinked": needs_symlinks}


@pytest.mark.parametrize("case,setup,extra,code,word",
                         [pytest.param(*c, id=c[0], marks=_PLATFORM_MARKS.get(c[0], ())) for c in ENV_CASES])
def test_probe_settings(sb, env, project, case, setup, extra, code, word):
    run_env = dict(env, QWEN_BASE_URL=sb.base_url)
    if setup is None:
        run_env["DASHSCOPE_API_KEY"] = "sk-abcdef123456"
    else:
        setup(project)
        for path in (project / ".env", project.parent / "real.env"):
            if path.is_file() and not path.is_symlink():
                text = path.read_text(errors="surrogateescape")
                if "GOODKEY" in text or "SANDBOX" in text:
                    path.write_text(text.replace("GOODKEY", sb.api_key).replace("SANDBOX", sb.base_url))
        dotenv = project / ".env"
        if dotenv.is_file() and "QWEN_BASE_URL" in dotenv.read_text(errors="replace"):
            run_env.pop("QWEN_BASE_URL")
    run_env.update({k: (sb.api_key if v == "GOODKEY" else v) for k, v in extra.items()})
    if run_env.get("QWEN_BASE_URL") == "":
        run_env.pop("QWEN_BASE_URL")
    before = snapshot(project)
    result = run_script("probe.py", env=run_env, cwd=project, timeout=60)
    assert result.code == code, (case, result.err)
    if code == 0 or word.isdigit():
        assert result.out.strip() == word
    else:
        assert_clean_error(result)
        assert word in result.err and "hunter22" not in result.err
    assert snapshot(project) == before


SETTING_CASES = [
    ("oss-expiry-zero", "upload_file.py", ["f.png", "--model", MODEL], {"QWEN_TMP_OSS_URL_EXPIRES": "0"}, 9),
    ("oss-expiry-negative", "upload_file.py", ["f.png", "--model", MODEL], {"QWEN_TMP_OSS_URL_EXPIRES": "-5"}, 9),
    ("oss-expiry-huge", "upload_file.py", ["f.png", "--model", MODEL], {"QWEN_TMP_OSS_URL_EXPIRES": "1e9"}, 9),
    ("oss-region-garbage", "upload_file.py", ["f.png", "--model", MODEL], {"QWEN_TMP_OSS_REGION": "../../x"}, 9),
    ("oss-endpoint-from-dotenv-unknown-host", "upload_file.py", ["f.png", "--model", MODEL],
     {"QWEN_TMP_OSS_ENDPOINT": None, "DOTENV": "QWEN_TMP_OSS_ENDPOINT=https://collector.example.com\n"}, 9),
    ("sandbox-qps-zero", "sandbox.py", ["--qps", "0"], {}, 2),
    ("sandbox-ttl-huge", "sandbox.py", ["--policy-ttl", "99999999"], {}, 2),
    ("sandbox-max-mb-zero", "sandbox.py", ["--max-file-mb", "0"], {}, 2),
    ("probe-timeout-zero", "probe.py", ["--timeout", "0"], {}, 2),
    ("probe-timeout-nan", "probe.py", ["--timeout", "nan"], {}, 2),
    ("doctor-timeout-huge", "doctor.py", ["--timeout", "1e9"], {}, 2),
    ("gossamer-two-actions", "gossamer.py", ["--dismiss", "--never-install"], {}, 2),
    ("setup-unknown-flag", "setup_env.py", ["--key", "sk-abc12345678"], {}, 2),  # key-shaped: 8+ after sk-
]


@pytest.mark.parametrize("case,script,args,extra,code", SETTING_CASES, ids=[c[0] for c in SETTING_CASES])
def test_out_of_range_settings(sb, env, project, case, script, args, extra, code):
    (project / "f.png").write_bytes(b"f")
    run_env = dict(env, QWEN_BASE_URL=sb.base_url, DASHSCOPE_API_KEY=sb.api_key)
    if script == "upload_file.py":
        info = sb.info
        run_env.update(QWEN_TMP_OSS_BUCKET=info["oss_bucket"], QWEN_TMP_OSS_REGION=info["oss_region"],
                       QWEN_TMP_OSS_ENDPOINT=info["oss_endpoint"], QWEN_TMP_OSS_AK_ID=info["oss_access_key_id"],
                       QWEN_TMP_OSS_AK_SECRET=info["oss_access_key_secret"])
    for name, value in extra.items():
        if name == "DOTENV":
            (project / ".env").write_text(value)
        elif value is None:
            run_env.pop(name, None)
        else:
            run_env[name] = value
    before = snapshot(project)
    result = run_script(script, *args, env=run_env, cwd=project, timeout=60)
    assert result.code == code, (case, result.err)
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert "abc12345678" not in result.err
    assert snapshot(project) == before
