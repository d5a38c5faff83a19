"""Which key is in effect, and what doctor says about it (never a value), plus api_settings."""

from __future__ import annotations

import json
import pickle

import pytest

from conftest import CANARY_KEY, leaks, run_script, sandbox_env
from qianwen_ops import api_settings
from qianwen_ops.credentials import STANDARD, bailian_key, find_api_key, key_candidates
from qianwen_ops.errors import NO_KEY, QwenOpsError
from qianwen_ops.settings import Settings

OTHER_KEY = "sk-Other-Key-4f7a9c2e"


def write_cli_config(folder, data) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(data if isinstance(data, str) else json.dumps(data))


def settings_for(cwd, env):
    return Settings.from_process(cwd=cwd, env=env)


# -- the Model Studio CLI's file, read the way the CLI reads it

def test_cli_active_profile_and_config_dir(tmp_path):
    home = tmp_path / "home"
    write_cli_config(home / ".bailian", {"api_key": "sk-toplevel1", "active_config": "work",
                                         "work": {"api_key": "sk-workprofile1"}})
    env = {"HOME": str(home)}
    assert bailian_key(settings_for(tmp_path, env)) == ("sk-workprofile1", "~/.bailian/config.json (profile work)")
    write_cli_config(home / ".bailian", {"api_key": "sk-toplevel1", "active_config": "default"})
    assert bailian_key(settings_for(tmp_path, env)) == ("sk-toplevel1", "~/.bailian/config.json")
    elsewhere = tmp_path / "cfg"
    write_cli_config(elsewhere, {"api_key": "sk-fromdir1"})
    key = find_api_key(settings_for(tmp_path, dict(env, BAILIAN_CONFIG_DIR=str(elsewhere))))
    assert key.status == STANDARD and key.source == "$BAILIAN_CONFIG_DIR/config.json"


@pytest.mark.parametrize("content", [
    "[" * 200000, "{" * 100000, '{"api_key": 5}', "[]", '"sk-abc"', "\x00\xff", '{"active_config": "gone"}',
    '{"active_config": "../x", "api_key": 7}', '{"active_config": "p", "p": []}', "{" + '"a":1,' * 10 + "}",
])
def test_hostile_cli_config_never_crashes(tmp_path, content):
    write_cli_config(tmp_path / "home" / ".bailian", content)
    assert bailian_key(settings_for(tmp_path, {"HOME": str(tmp_path / "home")})) is None


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


# -- doctor: which key is in effect

def doctor_lines(result) -> list:
    return [line for line in result.out.splitlines() if "key sources" in line or "your code" in line]


def test_env_overrides_a_different_dotenv_key(sb, env, project):
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\n")
    result = run_script("doctor.py", env=sandbox_env(env, sb), cwd=project)
    assert result.code == 0
    warning = [line for line in doctor_lines(result) if "overrides" in line]
    assert len(warning) == 1 and "DASHSCOPE_API_KEY" in warning[0] and str(project / ".env") in warning[0]
    assert not leaks(result.out + result.err, (CANARY_KEY, sb.api_key[10:]))


def test_same_key_in_both_places_is_not_a_warning(sb, env, project):
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={sb.api_key}\n")
    result = run_script("doctor.py", env=sandbox_env(env, sb), cwd=project)
    assert not [line for line in doctor_lines(result) if "overrides" in line]


def test_alias_and_cli_config_are_named(sb, env, project, tmp_path):
    write_cli_config(tmp_path / "cli", {"api_key": OTHER_KEY})
    run_env = dict(sandbox_env(env, sb, key=CANARY_KEY), QIANWEN_API_KEY=sb.api_key,
                   BAILIAN_CONFIG_DIR=str(tmp_path / "cli"))
    result = run_script("doctor.py", "--offline", env=run_env, cwd=project)
    text = "\n".join(doctor_lines(result))
    assert "QIANWEN_API_KEY overrides a different key in DASHSCOPE_API_KEY" in text
    assert "$BAILIAN_CONFIG_DIR/config.json holds a different key" in text
    assert "QIANWEN_API_KEY, which the DashScope SDK" in text
    assert not leaks(result.out, (CANARY_KEY, OTHER_KEY, sb.api_key[10:]))


def test_key_only_in_dotenv_tells_how_code_can_load_it(sb, env, project):
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={sb.api_key}\n")
    run_env = dict(env, QWEN_BASE_URL=sb.base_url)
    result = run_script("doctor.py", env=run_env, cwd=project)
    assert result.code == 0
    line = [x for x in doctor_lines(result) if "your code" in x]
    assert len(line) == 1 and "load_dotenv()" in line[0] and "api_settings" in line[0]


def test_fingerprints_are_salted_per_run(tmp_path):
    settings = settings_for(tmp_path, {"DASHSCOPE_API_KEY": "sk-abc123456"})
    first, second = key_candidates(settings, "salt-a")[0], key_candidates(settings, "salt-b")[0]
    assert first.fingerprint != second.fingerprint and "abc123" not in first.fingerprint


# -- doctor: the endpoint and the key/host checks

def test_loopback_endpoint_proves_nothing_about_dashscope(sb, env, project):
    result = run_script("doctor.py", env=sandbox_env(env, sb), cwd=project)
    assert result.code == 0 and "a 200 there proves nothing about DashScope" in result.out


def test_token_plan_key_on_the_standard_host(env, project):
    result = run_script("doctor.py", "--offline", env=dict(env, DASHSCOPE_API_KEY="sk-sp-0123456789abcdef"),
                        cwd=project)
    assert result.code == 4 and "a Token Plan key (sk-sp-) on a standard host" in result.out


def test_standard_key_on_the_token_plan_host(env, project):
    run_env = dict(env, DASHSCOPE_API_KEY="sk-0123456789abcdef",
                   QWEN_BASE_URL="https://token-plan.cn-beijing.maas.aliyuncs.com")
    result = run_script("doctor.py", "--offline", env=run_env, cwd=project)
    assert result.code == 9 and "a standard key on the Token Plan host" in result.out


# -- api_settings for the user's own code

def test_api_settings(tmp_path):
    (tmp_path / ".env").write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\nQWEN_REGION=intl\n")
    found = api_settings(cwd=tmp_path, env={})
    assert found.base_url == "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    assert found.native_base_url == "https://dashscope-intl.aliyuncs.com/api/v1"
    assert found.headers == {"Authorization": f"Bearer {CANARY_KEY}"} and found.key_status == STANDARD
    assert not leaks(repr(found) + str(found) + f"{found}")
    with pytest.raises(TypeError):
        pickle.dumps(found)


def test_api_settings_without_a_key_raises_with_advice(tmp_path):
    found = api_settings(cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert found.key_status == "not set"
    with pytest.raises(QwenOpsError) as info:
        found.headers  # noqa: B018 - the property raises
    assert info.value.exit_code == NO_KEY
