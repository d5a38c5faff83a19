"""Which host the key goes to."""

from __future__ import annotations

import pytest

from conftest import assert_clean_error, run_script
from qianwen_ops.endpoints import parse_base_url, resolve_endpoint
from qianwen_ops.errors import CONFIG, QwenOpsError
from qianwen_ops.settings import Settings


def endpoint(tmp_path, **env):
    return resolve_endpoint(Settings.from_process(cwd=tmp_path, env=env))


@pytest.mark.parametrize("region,root", [
    (None, "https://dashscope.aliyuncs.com"), ("cn", "https://dashscope.aliyuncs.com"),
    ("intl", "https://dashscope-intl.aliyuncs.com"), ("US", "https://dashscope-us.aliyuncs.com"),
])
def test_regions(tmp_path, region, root):
    ep = endpoint(tmp_path, **({"QWEN_REGION": region} if region else {}))
    assert ep.root == root
    assert ep.compatible_base == root + "/compatible-mode/v1" and ep.native_base == root + "/api/v1"


@pytest.mark.parametrize("raw", [
    "https://example.aliyuncs.com", "https://example.aliyuncs.com/", "https://example.aliyuncs.com/compatible-mode/v1",
    "https://example.aliyuncs.com/api/v1/", "  https://example.aliyuncs.com  ",
])
def test_base_url_forms_give_one_root(raw):
    assert parse_base_url(raw) == "https://example.aliyuncs.com"


def test_base_url_keeps_port_and_loopback_http():
    assert parse_base_url("http://127.0.0.1:8080/api/v1") == "http://127.0.0.1:8080"
    assert parse_base_url("http://localhost:1") == "http://localhost:1"
    assert parse_base_url("http://[::1]:9/") == "http://[::1]:9"


@pytest.mark.parametrize("raw,fragment", [
    ("ftp://example.com", "https://"), ("example.com", "https://"), ("http://example.com", "plain http"),
    ("https://user:pw@example.com", "user name"), ("https://example.com/v2", "path"),
    ("https://example.com/?x=1", "query"), ("https://", "host"), ("https://example.com:99999", "valid URL"),
    ("http://10.0.0.1", "plain http"), ("https://a..invalid", "malformed host"),
    ("https://" + "a" * 64 + ".example.com", "malformed host"), ("https://-x.example.com", "malformed host"),
    ("https://[::g]:1", "QWEN_BASE_URL"), ("https://[fe80::1%25eth0]", "malformed host"),
    ("https://x-.example.com", "starting or ending with '-'"),
])
def test_bad_base_urls(raw, fragment):
    with pytest.raises(QwenOpsError) as info:
        parse_base_url(raw)
    assert info.value.exit_code == 9 and fragment in str(info.value)
    assert "pw" not in str(info.value)


def test_unknown_region(tmp_path):
    with pytest.raises(QwenOpsError, match="QWEN_REGION"):
        endpoint(tmp_path, QWEN_REGION="mars")


def test_base_url_wins_over_region_and_token_plan_host_detected(tmp_path):
    ep = endpoint(tmp_path, QWEN_REGION="intl", QWEN_BASE_URL="https://token-plan.cn-beijing.maas.aliyuncs.com")
    assert ep.is_token_plan and ep.region == "custom"


def test_documented_host_from_a_dotenv_is_fine_and_an_unknown_one_is_not(tmp_path):
    (tmp_path / ".env").write_text("QWEN_BASE_URL=https://dashscope-intl.aliyuncs.com\n")
    assert resolve_endpoint(Settings.from_process(cwd=tmp_path, env={})).region == "custom"
    (tmp_path / ".env").write_text("QWEN_BASE_URL=http://localhost:8080\n")
    with pytest.raises(QwenOpsError, match="loopback host"):
        resolve_endpoint(Settings.from_process(cwd=tmp_path, env={}))
    assert resolve_endpoint(Settings.from_process(cwd=tmp_path, env={"QWEN_BASE_URL": "http://localhost:8080"}))


def test_a_dotenv_may_name_a_documented_host_only_on_the_https_port(tmp_path):
    """A cloned .env cannot move the key to another port of a documented host (or of *.aliyuncs.com)."""
    for url in ("https://dashscope.aliyuncs.com:443", "https://dashscope.aliyuncs.com"):
        (tmp_path / ".env").write_text(f"QWEN_BASE_URL={url}\n")
        assert resolve_endpoint(Settings.from_process(cwd=tmp_path, env={})).host == "dashscope.aliyuncs.com"
    (tmp_path / ".env").write_text("QWEN_BASE_URL=https://dashscope.aliyuncs.com:18050\n")
    with pytest.raises(QwenOpsError, match="port 18050") as info:
        resolve_endpoint(Settings.from_process(cwd=tmp_path, env={}))
    assert info.value.exit_code == CONFIG
    env = {"QWEN_BASE_URL": "https://dashscope.aliyuncs.com:18050"}  # the user's own environment decides
    assert resolve_endpoint(Settings.from_process(cwd=tmp_path, env=env)).root.endswith(":18050")


def test_malformed_host_label_in_base_url_is_exit_9(env, project):
    """(more malformed hosts in test_endpoints.py, without a subprocess)"""
    result = run_script("probe.py", env=dict(env, DASHSCOPE_API_KEY="sk-abcdef123456",
                                             QWEN_BASE_URL="https://a..invalid"), cwd=project)
    assert result.code == 9 and "QWEN_BASE_URL" in result.err
    assert_clean_error(result)
