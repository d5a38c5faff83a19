"""The operating system's proxy settings (Windows registry, macOS System Configuration), used when no proxy
variable is set, with the variables' rules: NO_PROXY, the system's own bypass list, http:// proxies only, and
credentials never shown.

Linux has no such store, so the system lookup is injected: ``proxy_for(..., system=...)`` in-process, and
``network._system`` (the per-process answer of ``system_proxies()``) in a real script started through a small
wrapper. ``check_update.py`` uses urllib, whose ``getproxies()`` is what reads those settings there.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from forward_proxy import ForwardProxy

from conftest import SCRIPTS, UPDATE_SKILL, Result, api_address, assert_clean_error, leaks
from qianwen_ops import network
from qianwen_ops.errors import CONFIG, QwenOpsError
from qianwen_ops.redaction import redact

SystemProxies = network.SystemProxies
SECRET = "Sy5-Wq8n-Kd2p"


def system(https="http://10.1.2.3:8080", http="http://10.1.2.3:8080", bypass=()):
    return SystemProxies({k: v for k, v in (("https", https), ("http", http)) if v},
                         lambda host: host in bypass)


def test_the_system_proxy_applies_when_no_variable_is_set():
    found = network.proxy_for("https", "dashscope.aliyuncs.com", None, {}, system())
    assert (found.host, found.port, found.variable) == ("10.1.2.3", 8080, "system settings")
    assert found.label == "proxy 10.1.2.3:8080 (from system settings)"
    assert network.proxy_for("http", "example.com", None, {}, system(https=None)).port == 8080
    assert network.proxy_for("https", "example.com", None, {}, system(https=None)) is None


def test_a_proxy_variable_for_any_scheme_wins_over_the_system():
    assert network.proxy_for("https", "a.example", None, {"HTTPS_PROXY": "http://1.2.3.4:3128"},
                             system()).variable == "HTTPS_PROXY"
    assert network.proxy_for("https", "a.example", None, {"http_proxy": "http://1.2.3.4:3128"}, system()) is None
    assert network.proxy_for("https", "a.example", None, {"HTTP_PROXY": " "}, system()).variable == "system settings"


def test_no_proxy_and_the_system_bypass_list_both_apply():
    rules = {"NO_PROXY": "internal.example,10.0.0.0/8"}
    assert network.proxy_for("https", "api.internal.example", None, rules, system()) is None
    assert network.proxy_for("https", "10.9.9.9", None, rules, system()) is None
    assert network.proxy_for("https", "dashscope.aliyuncs.com", None, rules, system()) is not None
    listed = system(bypass=("dashscope.aliyuncs.com", "[::1]:8443", "intranet"))
    assert network.proxy_for("https", "dashscope.aliyuncs.com", 443, {}, listed) is None   # default port: host only
    assert network.proxy_for("https", "::1", 8443, {}, listed) is None                      # else host:port
    assert network.proxy_for("https", "intranet", None, {}, listed) is None


def test_a_broken_bypass_list_keeps_the_proxy():
    def broken(host):
        raise OSError("registry unreadable")

    assert network.proxy_for("https", "a.example", None, {}, SystemProxies({"https": "http://p:1"}, broken)) \
        is not None


def test_system_credentials_are_redacted_and_never_shown():
    found = network.proxy_for("https", "a.example", None, {},
                              system(https=f"http://corp%5Cuser:{SECRET}@proxy.corp:3128"))
    assert found.authorization.startswith("Basic ") and SECRET in found.url
    for text in (repr(found), str(found), found.label, redact(f"failed via {found.url} {found.authorization}")):
        assert SECRET not in text and not leaks(text, (SECRET,))


@pytest.mark.parametrize("value,words", [("socks4://10.0.0.1:1080", "SOCKS"), ("https://10.0.0.1:443", "https://"),
                                         ("http://bad host:1", "spaces")])
def test_an_unusable_system_proxy_is_one_config_line_that_says_what_to_do(value, words):
    with pytest.raises(QwenOpsError) as caught:
        network.proxy_for("https", "a.example", None, {}, system(https=value))
    message = caught.value.message
    assert caught.value.exit_code == CONFIG and words in message and "HTTPS_PROXY" in message
    assert "\n" not in message and "10.0.0.1" not in message


class FakeWinreg:
    """The few winreg calls the registry reader makes, over a dict of Internet Settings values."""

    HKEY_CURRENT_USER = "HKCU"

    def __init__(self, values: dict | None):
        self.values, self.closed = values, False

    def OpenKey(self, root, path):  # noqa: N802 - winreg's names
        assert (root, path) == ("HKCU", network.INTERNET_SETTINGS)
        if self.values is None:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return "key"

    def QueryValueEx(self, key, name):  # noqa: N802
        if name not in self.values:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return self.values[name], 1

    def CloseKey(self, key):  # noqa: N802
        self.closed = True


@pytest.mark.parametrize("values,expected", [
    ({"ProxyEnable": 1, "ProxyServer": "proxy.corp:8080"},
     {"http": "http://proxy.corp:8080", "https": "http://proxy.corp:8080"}),
    ({"ProxyEnable": 1, "ProxyServer": "http=p1:80;https=p2:3128;ftp=p3:21"},
     {"http": "http://p1:80", "https": "http://p2:3128", "ftp": "http://p3:21"}),
    ({"ProxyEnable": 1, "ProxyServer": "https=https://p2:443"}, {"https": "https://p2:443"}),
    ({"ProxyEnable": 1, "ProxyServer": "socks=s:1080"},
     {"socks": "socks://s:1080", "http": "socks://s:1080", "https": "socks://s:1080"}),
    ({"ProxyEnable": 0, "ProxyServer": "proxy.corp:8080"}, {}),
    ({"ProxyEnable": 1}, {}),
    ({"ProxyEnable": 1, "ProxyServer": " "}, {}),
    (None, {}),
])
def test_the_windows_registry_is_read_as_urllib_reads_it(values, expected):
    registry = FakeWinreg(values)
    assert network.registry_proxies(registry) == expected
    assert registry.closed or values is None


def test_a_socks_only_registry_setting_is_refused_with_what_to_do():
    socks = SystemProxies(network.registry_proxies(FakeWinreg({"ProxyEnable": 1, "ProxyServer": "socks=s:1080"})),
                          lambda host: False)
    with pytest.raises(QwenOpsError, match="SOCKS proxies are not supported.*HTTPS_PROXY"):
        network.proxy_for("https", "dashscope.aliyuncs.com", None, {}, socks)


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="there the real system settings are read")
def test_here_there_is_no_system_store():
    assert network.system_proxies() is None
    assert network.direct_reason() == "no proxy variable applies to this host"


# ------------------------------------------------------------------ real scripts, the system lookup injected

WRAPPER = """
import runpy, sys
sys.path.insert(0, {scripts!r})
from qianwen_ops import network
network._system[:] = [network.SystemProxies({proxies!r}, lambda host: host in {bypass!r})]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_with_system_proxy(script: str, args: list, proxy_url: str, env: dict, cwd, bypass=()):
    code = WRAPPER.format(scripts=str(SCRIPTS), proxies={"https": proxy_url, "http": proxy_url},
                          bypass=tuple(bypass))
    return subprocess.run([sys.executable, "-c", code, str(SCRIPTS / script), *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_probe_and_doctor_go_through_the_system_proxy(proxies, net_env, pki, tls_box, project):  # noqa: F811
    proxy = proxies(routes={"dashscope.aliyuncs.com:443": api_address(tls_box)})
    run_env = dict(net_env, SSL_CERT_FILE=pki["server-ca"])
    probe = run_with_system_proxy("probe.py", [], proxy.url(), run_env, project)
    assert (probe.returncode, probe.stdout, probe.stderr) == (0, "200\n", "")
    assert proxy.connects() == ["CONNECT dashscope.aliyuncs.com:443 HTTP/1.1"]
    doctor = run_with_system_proxy("doctor.py", [], proxy.url(), run_env, project)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"network: through proxy 127.0.0.1:{proxy.port} (from system settings); CA certificates from " \
           "SSL_CERT_FILE" in doctor.stdout
    direct = run_with_system_proxy("doctor.py", ["--offline"], proxy.url(), run_env, project,
                                   bypass=("dashscope.aliyuncs.com",))
    assert "network: direct (no proxy variable or system proxy setting applies to this host)" in direct.stdout


def test_a_system_proxy_that_wants_credentials_says_how_to_give_them(proxies, net_env, pki, tls_box,  # noqa: F811
                                                                      project):
    proxy = proxies(routes={"dashscope.aliyuncs.com:443": api_address(tls_box)}, credentials=("lin", SECRET))
    run_env = dict(net_env, SSL_CERT_FILE=pki["server-ca"])
    done = run_with_system_proxy("probe.py", [], proxy.url("lin", "wrong-" + SECRET[:4]), run_env, project)
    assert (done.returncode, done.stdout) == (9, "000\n")
    assert_clean_error(Result(done.returncode, done.stdout, done.stderr))
    assert "407" in done.stderr and "system settings hold no user and password" in done.stderr
    assert "HTTPS_PROXY=http://user:password@host:port" in done.stderr and "wrong-" not in done.stderr


def test_the_update_check_follows_urllibs_system_lookup(env, project, tmp_path):
    """check_update.py (stdlib only) asks urllib, whose getproxies() reads the registry / System Configuration
    when no variable is set: with that answer injected, its request goes to the proxy."""
    proxy = ForwardProxy()
    try:
        code = ("import runpy, sys, urllib.request\n"
                f"urllib.request.getproxies = lambda: {{'http': {proxy.url()!r}}}\n"
                "urllib.request.proxy_bypass = lambda host: False\n"
                "sys.argv = sys.argv[1:]\n"
                "runpy.run_path(sys.argv[0], run_name='__main__')\n")
        run_env = dict(env, QWEN_UPDATE_URL="http://updates.invalid/version.json",
                       QWEN_SKILLS_STATE=str(tmp_path / "state.json"))
        done = subprocess.run([sys.executable, "-c", code, str(UPDATE_SKILL / "scripts" / "check_update.py"),
                               "--print-response", "--force"], env=run_env, cwd=project, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["error"] == "HTTP 403 from the update server"   # the proxy's refusal
        assert [line for line, _ in proxy.seen] == ["GET http://updates.invalid/version.json HTTP/1.1"]
    finally:
        proxy.close()
