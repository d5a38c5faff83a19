"""The API key: its chain (environment, .env files, the SDK's key file, the Model Studio CLI's config), its
classification, and its bounds; never its value."""

from __future__ import annotations

import json

import pytest

from conftest import (
    MODEL,
    run_script,
    sandbox_env,
    settings_at,
    write_cli_config,
)
from qianwen_ops.credentials import (
    MALFORMED,
    NOT_SET,
    PLACEHOLDER,
    STANDARD,
    TOKEN_PLAN,
    Secret,
    bailian_key,
    classify_key,
    find_api_key,
    key_candidates,
)
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.project import find_project
from qianwen_ops.settings import Settings


def settings(cwd, env=None, home=None):
    s = Settings.from_process(cwd=cwd, env=env or {})
    if home is not None:
        s.home = home
    return s


@pytest.mark.parametrize("value,status", [
    (None, NOT_SET), ("", NOT_SET),
    ("sk-your-key-here", PLACEHOLDER), ("sk-xxxxxxxxxxxxxxxx", PLACEHOLDER), ("sk-...", PLACEHOLDER),
    ("sk-<your key>", PLACEHOLDER), ("sk-", PLACEHOLDER), ("sk-sp-your-key-here", PLACEHOLDER),
    ("sk-0123456789abcdef0123", STANDARD), ("sk-sp-0123456789abcdef", TOKEN_PLAN),
    (" sk-abc123", MALFORMED), ("sk-abc123\n", MALFORMED), ("'sk-abc123'", MALFORMED), ('"sk-abc123"', MALFORMED),
    ("Bearer sk-abc123", MALFORMED), ("sk-abc 123", MALFORMED), ("sk-abc123é", MALFORMED),
    ("abc123", MALFORMED), ("sk-abc\x01def", MALFORMED),
])
def test_classification(value, status):
    assert classify_key(value)[0] == status


def test_malformed_reason_never_contains_the_value():
    status, problem = classify_key(" sk-secretvalue123")
    assert status == MALFORMED and "secretvalue" not in problem and problem


def test_secret_hides_its_value_everywhere():
    secret = Secret("sk-Qz7-conceal-9")
    assert "conceal" not in repr(secret) and "conceal" not in str(secret) and "conceal" not in f"{secret}"
    assert "conceal" not in repr([secret]) and secret.reveal() == "sk-Qz7-conceal-9"
    with pytest.raises(TypeError):
        __import__("pickle").dumps(secret)
    assert len(secret.fingerprint()) == 16 and "conceal" not in secret.fingerprint()


def test_alias_wins_over_dashscope(tmp_path):
    key = find_api_key(settings(tmp_path, {"QIANWEN_API_KEY": "sk-alias1", "DASHSCOPE_API_KEY": "sk-main1"}))
    assert key.source == "env:QIANWEN_API_KEY" and key.secret.reveal() == "sk-alias1"


def test_env_beats_dotenv_and_dotenv_is_not_written_to_environment(tmp_path):
    (tmp_path / ".env").write_text("DASHSCOPE_API_KEY=sk-fromfile1\n")
    env = {"DASHSCOPE_API_KEY": "sk-fromenv1"}
    key = find_api_key(settings(tmp_path, env))
    assert key.secret.reveal() == "sk-fromenv1" and env == {"DASHSCOPE_API_KEY": "sk-fromenv1"}


def test_cwd_dotenv_then_repo_root_dotenv(tmp_path):
    root = tmp_path / "repo"
    sub = root / "a" / "b"
    sub.mkdir(parents=True)
    (root / ".git").mkdir()
    (root / ".env").write_text("DASHSCOPE_API_KEY=sk-rootkey1\n")
    assert find_project(sub) == root
    key = find_api_key(settings(sub))
    assert key.secret.reveal() == "sk-rootkey1" and key.source == str(root / ".env")
    (sub / ".env").write_text("export QIANWEN_API_KEY='sk-cwdkey1'\n")
    key = find_api_key(settings(sub))
    assert key.secret.reveal() == "sk-cwdkey1" and key.source == str(sub / ".env")


def test_skills_folder_is_not_a_project_marker(tmp_path):
    (tmp_path / "skills").mkdir()
    (tmp_path / "deep").mkdir()
    assert find_project(tmp_path / "deep") == tmp_path / "deep"


def test_bailian_cli_config_is_last(tmp_path):
    home = tmp_path / "home"
    (home / ".bailian").mkdir(parents=True)
    (home / ".bailian" / "config.json").write_text(json.dumps({"api_key": "sk-fromcli1"}))
    key = find_api_key(settings(tmp_path / "home", {}, home))
    assert key.status == STANDARD and key.source == "~/.bailian/config.json"
    key = find_api_key(settings(tmp_path / "home", {"DASHSCOPE_API_KEY": "sk-env1"}, home))
    assert key.source == "env:DASHSCOPE_API_KEY"


def test_empty_values_fall_through(tmp_path):
    (tmp_path / ".env").write_text("DASHSCOPE_API_KEY=\nQIANWEN_API_KEY=sk-second1\n")
    key = find_api_key(settings(tmp_path, {"DASHSCOPE_API_KEY": ""}))
    assert key.secret.reveal() == "sk-second1"


def test_nothing_anywhere_is_not_set(tmp_path):
    key = find_api_key(settings(tmp_path, {}, tmp_path))
    assert key.status == NOT_SET and key.secret is None and key.source == ""


@pytest.mark.parametrize("content,why", [
    (b"DASHSCOPE_API_KEY=sk-a\x00b\n", "binary"),
    (b"\xff\xfeD\x00A\x00", "binary"),
    (b"A=" + b"x" * (1024 * 1024 + 10), "larger"),
])
def test_bad_dotenv_is_a_clean_config_error(tmp_path, content, why):
    (tmp_path / ".env").write_bytes(content)
    with pytest.raises(QwenOpsError) as info:
        find_api_key(settings(tmp_path, {}, tmp_path))
    assert info.value.exit_code == 9
    assert why in str(info.value) or "UTF-8" in str(info.value)


def test_broken_dotenv_does_not_matter_when_env_is_set(tmp_path):
    (tmp_path / ".env").write_bytes(b"\x00\x01\x02")
    key = find_api_key(settings(tmp_path, {"DASHSCOPE_API_KEY": "sk-envonly1"}))
    assert key.status == STANDARD


@pytest.mark.parametrize("length", [201, 10_000])
def test_an_over_long_key_is_malformed_and_nothing_is_sent(sb, env, project, length):
    from qianwen_ops.credentials import MALFORMED, classify_key

    key = "sk-" + "a" * (length - 3)
    assert classify_key(key) == (MALFORMED, "longer than 200 characters; real keys have about 35")
    before = sb.counts()
    probe = run_script("probe.py", env=sandbox_env(env, sb, key=key), cwd=project)
    (project / "x.png").write_bytes(b"a picture")
    upload = run_script("upload_file.py", "x.png", "--model", MODEL, env=sandbox_env(env, sb, key=key), cwd=project)
    assert probe.code == 3 and upload.code == 3 and "malformed (longer than 200 characters" in probe.err
    assert sb.counts() == before and "a" * 40 not in probe.err + upload.err


def test_every_key_shape_in_use_fits_the_bound(sb):
    from qianwen_ops.credentials import STANDARD, TOKEN_PLAN, classify_key

    assert classify_key(sb.api_key)[0] == STANDARD and classify_key("sk-ws-" + "b" * 32)[0] == STANDARD
    assert classify_key("sk-sp-" + "c" * 32)[0] == TOKEN_PLAN and classify_key("sk-" + "d" * 197)[0] == STANDARD


def test_cli_active_profile_and_config_dir(tmp_path):
    home = tmp_path / "home"
    write_cli_config(home / ".bailian", {"api_key": "sk-toplevel1", "active_config": "work",
                                         "work": {"api_key": "sk-workprofile1"}})
    env = {"HOME": str(home)}
    assert bailian_key(settings_at(tmp_path, env)) == ("sk-workprofile1", "~/.bailian/config.json (profile work)")
    write_cli_config(home / ".bailian", {"api_key": "sk-toplevel1", "active_config": "default"})
    assert bailian_key(settings_at(tmp_path, env)) == ("sk-toplevel1", "~/.bailian/config.json")
    elsewhere = tmp_path / "cfg"
    write_cli_config(elsewhere, {"api_key": "sk-fromdir1"})
    key = find_api_key(settings_at(tmp_path, dict(env, BAILIAN_CONFIG_DIR=str(elsewhere))))
    assert key.status == STANDARD and key.source == "$BAILIAN_CONFIG_DIR/config.json"


@pytest.mark.parametrize("content", [
    "[" * 200000, "{" * 100000, '{"api_key": 5}', "[]", '"sk-abc"', "\x00\xff", '{"active_config": "gone"}',
    '{"active_config": "../x", "api_key": 7}', '{"active_config": "p", "p": []}', "{" + '"a":1,' * 10 + "}",
])
def test_hostile_cli_config_never_crashes(tmp_path, content):
    write_cli_config(tmp_path / "home" / ".bailian", content)
    assert bailian_key(settings_at(tmp_path, {"HOME": str(tmp_path / "home")})) is None


@pytest.mark.parametrize("script", ["probe.py", "upload_file.py"])
def test_nested_cli_config_does_not_stop_the_scripts(tmp_path, env, project, script):
    write_cli_config(tmp_path / "home" / ".bailian", "[" * 200000)
    (project / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    args = ["a.png", "--model", "qwen-vl-plus"] if script == "upload_file.py" else []
    result = run_script(script, *args, env=env, cwd=project)
    assert result.code == 3 and "Traceback" not in result.err and "no API key" in result.err


def test_huge_cli_config_is_ignored(tmp_path, env, project):
    write_cli_config(tmp_path / "home" / ".bailian", json.dumps({"api_key": "sk-abc123456", "pad": "x" * 2_000_000}))
    assert run_script("probe.py", env=env, cwd=project).code == 3


def test_fingerprints_are_salted_per_run(tmp_path):
    settings = settings_at(tmp_path, {"DASHSCOPE_API_KEY": "sk-abc123456"})
    first, second = key_candidates(settings, "salt-a")[0], key_candidates(settings, "salt-b")[0]
    assert first.fingerprint != second.fingerprint and "abc123" not in first.fingerprint
