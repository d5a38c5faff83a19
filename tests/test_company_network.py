"""Company networks: a TLS-inspecting proxy named when it breaks a connection, and reported when it does not.

The real parts of tests/test_network.py: a CONNECT proxy that re-signs TLS with its own CA
(tests/forward_proxy.py) in front of the sandbox over TLS (trustme CAs). DashScope's host names are
routed to loopback by the proxy, so nothing leaves the machine.
"""

from __future__ import annotations

import json
import ssl

import pytest

from conftest import api_address, leaks, run_script
from qianwen_ops import interception

HOST = "dashscope.aliyuncs.com"


def system_bundle() -> str:
    """The file a managed machine typically puts in SSL_CERT_FILE: the platform's own CA bundle."""
    import os

    cafile = ssl.get_default_verify_paths().openssl_cafile
    if cafile and os.path.isfile(cafile):
        return cafile
    import certifi

    return certifi.where()


@pytest.fixture
def inspecting(proxies, pki, tls_box):  # noqa: F811
    return proxies(routes={f"{HOST}:443": api_address(tls_box)}, inspect_ca=pki["company_ca"],
                   upstream_ca=pki["server_ca"])


@pytest.mark.parametrize("ca_variable", ["none", "SSL_CERT_FILE=system bundle"])
def test_certificate_failure_names_the_inspecting_proxy(inspecting, net_env, project, ca_variable):  # noqa: F811
    run_env = dict(net_env, HTTPS_PROXY=inspecting.url())
    if ca_variable != "none":
        run_env["SSL_CERT_FILE"] = system_bundle()
    result = run_script("probe.py", env=run_env, cwd=project)
    assert (result.code, result.out.strip()) == (8, "000")
    [line] = result.err.splitlines()
    assert f"the TLS certificate of {HOST} is not trusted" in line
    store = "the system store" if ca_variable == "none" else f"SSL_CERT_FILE ({system_bundle()})"
    assert store in line  # the store in use, by name
    assert "inspects HTTPS" in line and "system CAs plus that root" in line and "company-networks.md" in line
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "NODE_EXTRA_CA_CERTS"):
        assert variable in line
    assert f"through proxy 127.0.0.1:{inspecting.port}" in line
    assert inspecting.inner == []  # the key never went into the tunnel


def test_doctor_says_tls_is_intercepted_when_the_proxy_ca_is_trusted(inspecting, net_env, pki, project):  # noqa: F811
    run_env = dict(net_env, HTTPS_PROXY=inspecting.url(), SSL_CERT_FILE=pki["company-ca"])
    doctor = run_script("doctor.py", env=run_env, cwd=project)
    assert doctor.code == 0, (doctor.out, inspecting.errors)
    [tls] = [line for line in doctor.out.splitlines() if line.startswith("[warn] tls: ")]
    assert f"TLS to {HOST} is intercepted" in tls and "can read the API key" in tls and "SSL_CERT_FILE" in tls
    result = doctor.out.splitlines()[-1]
    assert result.startswith(f"result: authentication works: {HOST} accepted the key; TLS is intercepted")
    data = json.loads(run_script("doctor.py", "--json", env=run_env, cwd=project).out)
    assert data["tls_intercepted"] is True and data["verified"] == "authentication"
    # the extra check opened TLS twice (public roots, then the configured store) and sent nothing inside
    carried_key = [h for _, h in inspecting.inner if "authorization" in h]
    assert len(carried_key) == 2  # the two probes (text and --json), nothing else
    assert len(inspecting.connects()) == 6
    assert not leaks(doctor.out + doctor.err, (net_env["DASHSCOPE_API_KEY"][10:],))


def test_a_loopback_endpoint_with_a_test_ca_is_not_called_intercepted(net_env, pki, tls_box, project):  # noqa: F811
    run_env = dict(net_env, QWEN_BASE_URL=tls_box.base_url, SSL_CERT_FILE=pki["server-ca"])
    doctor = run_script("doctor.py", env=run_env, cwd=project)
    assert doctor.code == 0, doctor.out
    [tls] = [line for line in doctor.out.splitlines() if " tls: " in line]
    assert tls.startswith("[info] tls: 127.0.0.1 is this machine") and "intercepted" not in tls
    assert doctor.out.splitlines()[-1].startswith("result: authentication works on 127.0.0.1 (this machine")


def test_inspect_compares_with_public_roots_only(inspecting, pki, tls_box, monkeypatch):  # noqa: F811
    env = {"HTTPS_PROXY": inspecting.url(), "SSL_CERT_FILE": pki["company-ca"]}
    found = interception.inspect(f"https://{HOST}", env, timeout=5)
    assert found.intercepted is True and found.compared_with == "certifi's public roots"
    assert found.issuer  # the company CA's name, as the configured store saw it
    # were the sandbox's CA a public root, the direct route is not intercepted (and the variables are not used)
    public = ssl.create_default_context(cafile=pki["server-ca"])
    monkeypatch.setattr(interception, "public_roots", lambda: (public, "certifi's public roots"))
    direct = {"SSL_CERT_FILE": pki["server-ca"]}
    assert interception.inspect(tls_box.base_url, direct, timeout=5).intercepted is False
    assert interception.inspect(f"https://{HOST}", env, timeout=5).intercepted is True


def test_update_check_certificate_failure_names_the_inspecting_proxy(proxies, net_env, pki, project):  # noqa: F811
    proxy = proxies(answers={"updates.example.test:443": (200, b"{}")}, inspect_ca=pki["company_ca"])
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), QWEN_UPDATE_URL="https://updates.example.test/version.json")
    data = json.loads(run_script("check_update.py", "--force", "--print-response", env=run_env, cwd=project).out)
    assert data["has_update"] is False
    assert "TLS certificate is not trusted" in data["error"] and "the system store" in data["error"]
    assert "company proxy" in data["error"] and "company-networks.md" in data["error"]


def test_inspect_says_when_it_cannot_tell(monkeypatch):
    """No public store to compare with, or the same store the requests used: "cannot tell", never "not
    intercepted"; requests that trusted certifi alone were not re-signed. Nothing is opened in these cases."""
    from qianwen_ops import network

    monkeypatch.setattr(interception, "public_roots", lambda: (None, ""))
    found = interception.inspect(f"https://{HOST}", {}, timeout=1)
    assert found.intercepted is None and "pip install certifi" in found.why
    platform = ssl.create_default_context()
    monkeypatch.setattr(interception, "public_roots", lambda: (platform, "the platform's default store"))
    found = interception.inspect(f"https://{HOST}", {}, timeout=1)
    assert found.intercepted is None and "pip install certifi" in found.why
    monkeypatch.setattr(network, "ssl_context", lambda env=None: (platform, "certifi"))
    assert interception.inspect(f"https://{HOST}", {}, timeout=1).intercepted is False


def test_a_loopback_host_with_an_unknown_issuer_is_not_blamed_on_a_proxy(net_env, tls_box, project):  # noqa: F811
    """The sandbox over TLS without its CA: no proxy is configured and the host is this machine, so the
    line says a local server's own CA, never "a company proxy that inspects HTTPS"."""
    result = run_script("probe.py", env=dict(net_env, QWEN_BASE_URL=tls_box.base_url), cwd=project)
    [line] = result.err.splitlines()
    assert result.code == 8 and "is not trusted" in line and "company proxy" not in line and "inspects" not in line
    assert "127.0.0.1 is this machine" in line and "SSL_CERT_FILE" in line


def test_the_company_networks_guide_is_named_by_a_path_that_works_from_here(tmp_path, monkeypatch):
    """Error lines run from the project root: the guide is named relative to it (or absolute), never as a
    bare references/... that only works from inside the skill's folder."""
    import os

    from conftest import ROOT
    from qianwen_ops import network

    monkeypatch.chdir(tmp_path)
    line = network.certificate_advice("dashscope.aliyuncs.com", "system", "unable to get local issuer certificate")
    guide = line.rsplit("see ", 1)[1]
    assert guide == str(ROOT / "references" / "company-networks.md") and os.path.isfile(guide)
    monkeypatch.chdir(ROOT.parent)
    line = network.certificate_advice("dashscope.aliyuncs.com", "system", "self-signed certificate in chain")
    guide = line.rsplit("see ", 1)[1]
    assert guide == f"{ROOT.name}/references/company-networks.md" and os.path.isfile(guide)


def test_update_check_on_this_machine_blames_no_proxy(net_env, tls_box, project):  # noqa: F811
    from conftest import ROOT

    run_env = dict(net_env, QWEN_UPDATE_URL=f"{tls_box.base_url}/version.json")
    data = json.loads(run_script("check_update.py", "--force", "--print-response", env=run_env, cwd=project).out)
    assert "TLS certificate is not trusted" in data["error"] and "company proxy" not in data["error"]
    assert f"see {ROOT / 'references' / 'company-networks.md'}" in data["error"]  # a path that works from here
