"""oss_v4 signs exactly as oss2 (the official SDK, here the judge) does, and parses answers in linear time."""

from __future__ import annotations

import datetime as dt

import oss2
import pytest

from qianwen_ops import oss_v4
from qianwen_ops.credentials import Secret

FROZEN = dt.datetime(2026, 12, 3, 4, 5, 6)
AK, SK, TOKEN = "LTAI5tJudgeKeyId0001", "JudgeSecret/with+odd=chars", "STS.token/abc+def=="
KEYS = ["a.png", "dir/sub/x y.bin", "中文/名字.jpg", "weird !'()*;:@&=+$,?#[]~.bin", "p/2026-12-03/ab_c.d"]


@pytest.fixture
def frozen(monkeypatch):
    class Frozen(dt.datetime):
        @classmethod
        def utcnow(cls):
            return FROZEN

    monkeypatch.setattr(oss2.auth, "datetime", Frozen)
    monkeypatch.setattr(oss_v4, "_now", lambda: FROZEN.strftime("%Y%m%dT%H%M%SZ"))


class _Recorder:
    """An HttpSession stand-in: keeps what would be sent."""

    def __init__(self):
        self.sent = []

    def request(self, method, url, headers, body):
        self.sent.append((method, url, headers, body))


def ours(endpoint: str, token: str | None):
    session = _Recorder()
    client = oss_v4.OssV4(endpoint, "judge-bucket", "cn-beijing", Secret(AK), Secret(SK),
                          Secret(token) if token else None, session)
    return client, session


def judge(endpoint: str, token: str | None):
    provider = oss2.credentials.StaticCredentialsProvider(AK, SK, token)
    return oss2.Bucket(oss2.ProviderAuthV4(provider), endpoint, "judge-bucket", region="cn-beijing")


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("method,query,headers", [
    ("PUT", {}, {"Content-Type": "image/png"}),
    ("POST", {"uploads": ""}, {"Content-Type": "application/octet-stream"}),
    ("PUT", {"partNumber": "7", "uploadId": "0A1B/2C+3D=="}, {}),
    ("GET", {"uploadId": "0A1B2C3D", "part-number-marker": "1000"}, {}),
    ("DELETE", {"uploadId": "0A1B2C3D"}, {}),
])
def test_request_signature_is_oss2s(frozen, key, token, method, query, headers):
    client, session = ours("https://oss-cn-beijing.aliyuncs.com", token)
    client.request(method, key, query, headers)
    _, url, sent, _ = session.sent[0]
    bucket = judge("https://oss-cn-beijing.aliyuncs.com", token)
    req = oss2.http.Request(method, "https://judge-bucket.oss-cn-beijing.aliyuncs.com/x", params=dict(query),
                            headers=dict(headers), region="cn-beijing", product="oss")
    bucket.auth._sign_request(req, "judge-bucket", key)
    assert sent["Authorization"] == req.headers["authorization"]
    assert sent.get("x-oss-security-token") == (token or None)
    assert url.startswith("https://judge-bucket.oss-cn-beijing.aliyuncs.com/")


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("endpoint", ["https://oss-cn-beijing.aliyuncs.com", "http://127.0.0.1:9000",
                                      "http://localhost:9000"])
def test_presigned_url_is_oss2s(frozen, key, token, endpoint):
    client, _ = ours(endpoint, token)
    assert client.presign(key, 3600) == judge(endpoint, token).sign_url("GET", key, 3600, slash_safe=True)
