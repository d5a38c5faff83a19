"""Red-team findings: credential files never uploaded, git never runs a project's programs, upload
hosts checked, JSON output ASCII-escaped, retries bounded by an overall deadline."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_custom_oss import oss_env, without_notice

from conftest import CANARY_KEY, assert_clean_error, leaks, run_script, sandbox_env
from qianwen_ops.secret_files import is_credential_name

MODEL = "qwen-vl-plus"


@pytest.mark.parametrize("name", [".env", ".env.local", "prod.env", ".netrc", ".pgpass", ".npmrc", ".pypirc",
                                  "credentials", ".bailian/config.json", "id_rsa", "id_ed25519", "server.pem",
                                  "tls.key", ".git-credentials"])
def test_credential_file_names_are_recognised(name):
    assert is_credential_name(Path("/p") / name)


@pytest.mark.parametrize("name", ["photo.png", "config.json", "environment.txt", "keys.png", "report.pdf"])
def test_ordinary_names_are_not_credentials(name):
    assert not is_credential_name(Path("/p") / name)


def _sent(box) -> int:
    counts = box.counts()
    return counts["getPolicy"] + counts["postObject"] + counts["oss"]


@pytest.mark.parametrize("backend", ["temp", "custom-oss"])
def test_credential_files_are_refused_before_any_byte_is_sent(sb, env, project, backend):
    run_env = sandbox_env(env, sb) if backend == "temp" else oss_env(env, sb)
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={sb.api_key}\n")
    (project / "notes.txt").write_text(f"my key is {sb.api_key[3:]} (keep it safe)\n")
    secret = sb.info["oss_access_key_secret"] if backend == "custom-oss" else sb.api_key
    (project / "dump.bin").write_bytes(b"\x00\x01" * 100 + secret.encode() + b"\xff")
    (project / "ok.png").write_bytes(b"fine picture")
    before = _sent(sb)
    for name in (".env", "notes.txt", "dump.bin"):
        done = run_script("upload_file.py", name, "--model", MODEL, "--no-cache", env=run_env, cwd=project)
        assert done.code == 10, (name, done.err)
        assert f"refusing to upload {name}: it holds credentials" in done.err
        assert_clean_error(without_notice(done) if done.err.startswith("note: ") else done)
        assert done.out == "" and sb.api_key[6:18] not in done.out + done.err
        assert leaks(done.out + done.err, (CANARY_KEY, secret)) == []
    assert _sent(sb) == before                       # not even a getPolicy or a bucket call
    done = run_script("upload_file.py", "ok.png", "--model", MODEL, "--no-cache", env=run_env, cwd=project)
    assert done.code == 0 and done.out.strip() and _sent(sb) > before  # the same set-up uploads a picture
