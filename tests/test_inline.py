"""--inline / resolve_file(inline=True): small files as data: URLs, nothing sent; the sandbox reads them."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest

from conftest import CANARY_KEY, assert_clean_error, chat, leaks, run_script, sandbox_env
from qianwen_ops.errors import INPUT_FILE, QwenOpsError
from qianwen_ops.inline import MAX_DATA_URL_BYTES, max_inline_bytes
from qianwen_ops.settings import Settings
from qianwen_ops.uploads import resolve_file, upload_file
from qianwen_sandbox.dashscope_api import MAX_DATA_URI_BYTES

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)


def decoded(url: str) -> tuple:
    header, payload = url.split(",", 1)
    return header, base64.b64decode(payload, validate=True)


def test_inline_png_is_the_exact_bytes_and_nothing_is_sent(sb, env, project):
    (project / "photo.png").write_bytes(PNG)
    before = sb.counts()
    result = run_script("upload_file.py", "--inline", "photo.png", "--json", env=sandbox_env(env, sb), cwd=project)
    assert result.code == 0, result.err
    record = json.loads(result.out)
    header, raw = decoded(record["url"])
    assert header == "data:image/png;base64" and raw == PNG
    assert record["backend"] == "inline" and record["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert record["bytes"] == len(PNG) and record["expires_at"] is None
    assert sb.counts() == before  # no getPolicy, no upload, no request of any kind
    # the sandbox's model reads the data: URL and reports the bytes it got, as it does for oss://
    status, body = chat(sb, [record["url"]])
    assert status == 200 and f"sha256={record['sha256']}" in body["choices"][0]["message"]["content"]
    # the evidence keeps neither the content nor the URL's payload
    evidence = "".join(p.read_text() for p in (project / "output").rglob("*") if p.is_file())
    assert "data:image/png;base64,..." in evidence and record["url"][30:90] not in evidence


def test_inline_needs_no_key_and_no_model(env, project):
    (project / "a.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 100)
    result = run_script("upload_file.py", "--inline", "a.jpg", env=env, cwd=project)
    assert result.code == 0 and result.out.startswith("data:image/jpeg;base64,"), result.err
    missing = run_script("upload_file.py", "a.jpg", env=env, cwd=project)
    assert missing.code == 2 and "--model" in missing.err


def test_an_oversized_file_is_refused_in_one_line_and_the_others_still_come_out(sb, env, project):
    limit = max_inline_bytes("image/png")
    (project / "big.png").write_bytes(b"\0" * (limit + 1))
    (project / "edge.png").write_bytes(b"\0" * limit)
    before = sb.counts()
    result = run_script("upload_file.py", "--inline", "big.png", "edge.png", env=sandbox_env(env, sb), cwd=project)
    assert result.code == INPUT_FILE
    assert_clean_error(result)
    assert len(result.err.strip().splitlines()) == 1 and "too large to inline" in result.err
    urls = result.out.split()
    prefix = len("data:image/png;base64,")
    assert len(urls) == 1 and len(urls[0]) == MAX_DATA_URL_BYTES - (MAX_DATA_URL_BYTES - prefix) % 4
    assert sb.counts() == before
    status, body = chat(sb, urls)  # exactly at our limit: the service's limit takes it
    assert status == 200, body


def test_our_limit_is_the_services(sb):
    assert MAX_DATA_URL_BYTES == MAX_DATA_URI_BYTES == 10485760
    too_big = "data:image/png;base64," + "A" * (MAX_DATA_URI_BYTES - len("data:image/png;base64,") + 4)
    status, body = chat(sb, [too_big])
    assert status == 400 and "max bytes per data-uri item : 10485760" in body["message"]
    for bad in ("data:;base64,AAAA", "data:image/png,AAAA", "data:image/png;base64,@@@@"):
        assert chat(sb, [bad])[0] == 400, bad


@pytest.mark.parametrize("name", [".env", "id_rsa", "server.pem"])
def test_credential_files_are_never_inlined(env, project, name):
    (project / name).write_text("DASHSCOPE_API_KEY=sk-abcdefabcdef1234\n")
    result = run_script("upload_file.py", "--inline", name, env=env, cwd=project)
    assert result.code == INPUT_FILE and result.out == ""
    assert f"refusing to inline {name}: it holds credentials" in result.err and "upload" not in result.err  # none sent


def test_a_file_holding_a_configured_key_is_never_inlined(env, project, tmp_path):
    (project / "notes.txt").write_text(f"my key is {CANARY_KEY}\n")
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\n")
    result = run_script("upload_file.py", "--inline", "notes.txt", env=env, cwd=project)
    assert result.code == INPUT_FILE and "holds credentials" in result.err
    assert not leaks(result.out + result.err)
    sdk_file = tmp_path / "home" / ".dashscope" / "api_key"  # the SDK's key file, by name and by path
    sdk_file.parent.mkdir()
    sdk_file.write_text(CANARY_KEY)
    for spelling in (str(sdk_file), "~/.dashscope/api_key"):
        result = run_script("upload_file.py", "--inline", spelling, env=env, cwd=project)
        assert result.code == INPUT_FILE and "holds credentials" in result.err


def test_library_inline(tmp_path):
    (tmp_path / "p.webp").write_bytes(b"RIFF\0\0\0\0WEBP" + b"v" * 50)
    (tmp_path / "noext").write_bytes(PNG)
    settings = Settings.from_process(cwd=tmp_path, env={"HOME": str(tmp_path)})
    url = resolve_file(tmp_path / "p.webp", "qwen-vl-plus", settings, inline=True)
    assert decoded(url) == ("data:image/webp;base64", (tmp_path / "p.webp").read_bytes())
    upload = upload_file(tmp_path / "noext", "", settings, inline=True)  # no model needed
    assert upload.url.startswith("data:image/png;base64,") and upload.backend == "inline"
    assert resolve_file("https://example.com/x.png", "", settings, inline=True) == "https://example.com/x.png"
    (tmp_path / "big.bin").write_bytes(b"\0" * (max_inline_bytes("application/octet-stream") + 1))
    with pytest.raises(QwenOpsError) as info:
        resolve_file(tmp_path / "big.bin", "", settings, inline=True)
    assert info.value.exit_code == INPUT_FILE and "too large to inline" in info.value.message


def test_the_library_needs_a_model_only_to_upload(tmp_path):
    """As upload_file.py's --model: optional with inline, required (a usage error, exit 2) to upload."""
    from qianwen_ops import errors

    (tmp_path / "p.png").write_bytes(PNG)
    settings = Settings.from_process(cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert decoded(resolve_file(tmp_path / "p.png", settings=settings, inline=True))[1] == PNG
    with pytest.raises(QwenOpsError) as info:
        resolve_file(tmp_path / "p.png", settings=settings)
    assert info.value.exit_code == errors.USAGE and "model must be a model name" in info.value.message
