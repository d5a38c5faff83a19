"""The credential chain and key classification (no network)."""

from __future__ import annotations

import json

import pytest

from qianwen_ops.credentials import (
    MALFORMED,
    NOT_SET,
    PLACEHOLDER,
    STANDARD,
    TOKEN_PLAN,
    Secret,
    classify_key,
    find_api_key,
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
