"""api_settings() for the user's own code: the scripts' key chain and host, the key never shown or pickled."""

from __future__ import annotations

import pickle

import pytest

from conftest import CANARY_KEY, leaks
from qianwen_ops import api_settings
from qianwen_ops.credentials import STANDARD
from qianwen_ops.errors import NO_KEY, QwenOpsError


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


def test_api_settings_follows_the_sdk_settings(tmp_path):
    found = api_settings(cwd=tmp_path, env={"HOME": str(tmp_path), "DASHSCOPE_API_REGION": "ap-southeast-1",
                                            "DASHSCOPE_WORKSPACE_ID": "ws1"})
    assert found.base_url == "https://ws1.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1"
    assert found.native_base_url == "https://ws1.ap-southeast-1.maas.aliyuncs.com/api/v1"
