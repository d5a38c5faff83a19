"""The official dashscope SDK's own settings (key files, region, workspace, base URL) read as the SDK reads them,
under the trust rules; and what the user's own application must use once a region accepts the key."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import trustme
from forward_proxy import ForwardProxy

from conftest import CANARY_KEY, OTHER_KEY, REGION_HOSTS, leaks, run_script, sandbox_env, start_sandbox
from qianwen_ops.credentials import STANDARD, find_api_key, key_candidates
from qianwen_ops.endpoints import MAAS_REGIONS, app_settings, region_endpoints, resolve_endpoint, sdk_endpoint
from qianwen_ops.errors import CONFIG, QwenOpsError
from qianwen_ops.settings import Settings

WORKSPACE = "ws1"
MAAS_HOSTS = tuple(f"{WORKSPACE}.{r}.maas.aliyuncs.com" for r in MAAS_REGIONS)
UNAUTHORIZED = json.dumps({"code": "InvalidApiKey", "message": "Invalid API-key provided."}).encode()


def settings(tmp_path, **env):
    env.setdefault("HOME", str(tmp_path / "home"))
    return Settings.from_process(cwd=tmp_path, env=env)


def sdk_file(home, value: str, name=".dashscope/api_key"):
    path = home / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)
    return path


# -- the key chain: the SDK's key files

def test_key_only_in_the_sdks_default_file(tmp_path):
    sdk_file(tmp_path / "home", f"{CANARY_KEY}\n")  # save_api_key() writes no newline; a hand-made file may
    key = find_api_key(settings(tmp_path))
    assert (key.status, key.source, key.secret.reveal()) == (STANDARD, "~/.dashscope/api_key", CANARY_KEY)


def test_key_file_named_by_the_variable_and_only_that_one(tmp_path):
    named = sdk_file(tmp_path, OTHER_KEY, "secrets/ds.txt")
    sdk_file(tmp_path / "home", CANARY_KEY)
    key = find_api_key(settings(tmp_path, DASHSCOPE_API_KEY_FILE_PATH=str(named)))
    assert key.secret.reveal() == OTHER_KEY and key.source == f"$DASHSCOPE_API_KEY_FILE_PATH ({named})"
    # like the SDK: a variable naming a missing file does not fall back to ~/.dashscope/api_key
    assert find_api_key(settings(tmp_path, DASHSCOPE_API_KEY_FILE_PATH=str(tmp_path / "gone"))).status == "not set"
    # only the process environment names the file (the SDK reads it from there): a .env cannot
    (tmp_path / ".env").write_text(f"DASHSCOPE_API_KEY_FILE_PATH={named}\n")
    assert find_api_key(settings(tmp_path)).secret.reveal() == CANARY_KEY


def test_place_in_the_chain(tmp_path):
    home = tmp_path / "home"
    sdk_file(home, OTHER_KEY)
    (home / ".bailian").mkdir()
    (home / ".bailian" / "config.json").write_text(json.dumps({"api_key": "sk-fromthecli1"}))
    assert find_api_key(settings(tmp_path)).secret.reveal() == OTHER_KEY            # before the CLI's file
    (tmp_path / ".env").write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\n")
    assert find_api_key(settings(tmp_path)).secret.reveal() == CANARY_KEY           # after the .env files
    assert find_api_key(settings(tmp_path, DASHSCOPE_API_KEY="sk-fromenv12")).source == "env:DASHSCOPE_API_KEY"
    sources = [c.source for c in key_candidates(settings(tmp_path), "salt")]
    assert sources == [str(tmp_path / ".env"), "~/.dashscope/api_key", "~/.bailian/config.json"]


@pytest.mark.parametrize("spoil", ["other owner", "folder writable by others", "too large", "fifo", "empty"])
def test_untrusted_or_odd_key_files_are_not_read(tmp_path, spoil, monkeypatch):
    path = sdk_file(tmp_path / "home", CANARY_KEY)
    if spoil == "other owner" and os.geteuid() == 0:
        os.chown(path, 12345, 12345)  # root gives the file away
    elif spoil == "other owner":
        monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)  # or becomes someone else
    elif spoil == "folder writable by others":
        os.chmod(path.parent, 0o777)  # noqa: S103 - the point of the test
    elif spoil == "too large":
        path.write_text(CANARY_KEY + " " * 70000)
    elif spoil == "fifo":
        path.unlink()
        os.mkfifo(path)
    else:
        path.write_text("  \n")
    key = find_api_key(settings(tmp_path))
    assert key.status == "not set"


def test_doctor_names_the_sdk_file_and_a_different_key_there(sb, env, project, tmp_path):
    sdk_file(tmp_path / "home", OTHER_KEY)
    result = run_script("doctor.py", "--offline", env=sandbox_env(env, sb), cwd=project)
    line = [x for x in result.out.splitlines() if "key sources" in x]
    assert len(line) == 1 and "~/.dashscope/api_key" in line[0] and "dashscope SDK" in line[0]
    assert not leaks(result.out, (OTHER_KEY, sb.api_key[10:]))


def test_scripts_work_with_the_key_only_in_the_sdk_file(sb, env, project, tmp_path):
    sdk_file(tmp_path / "home", sb.api_key)
    run_env = dict(env, QWEN_BASE_URL=sb.base_url)
    assert run_script("probe.py", env=run_env, cwd=project).out.strip() == "200"
    doctor = json.loads(run_script("doctor.py", "--json", env=run_env, cwd=project).out)
    assert doctor["ok"] is True and doctor["key_source"] == "~/.dashscope/api_key"


# -- the endpoint: the SDK's region, workspace and base URL

@pytest.mark.parametrize("env,root", [
    ({"DASHSCOPE_API_REGION": "ap-southeast-1", "DASHSCOPE_WORKSPACE_ID": "ws-7a"},
     "https://ws-7a.ap-southeast-1.maas.aliyuncs.com"),
    ({"DASHSCOPE_API_REGION": "eu-central-1", "DASHSCOPE_WORKSPACE_ID": "W_1"}, "https://W_1.eu-central-1.maas.aliyuncs.com"),
    ({"DASHSCOPE_API_REGION": "cn-beijing", "DASHSCOPE_WORKSPACE_ID": "ws"}, "https://dashscope.aliyuncs.com"),
    ({"DASHSCOPE_API_REGION": "mars-north-9"}, "https://dashscope.aliyuncs.com"),  # the SDK's default too
    ({"DASHSCOPE_HTTP_BASE_URL": "https://dashscope-intl.aliyuncs.com/api/v1"}, "https://dashscope-intl.aliyuncs.com"),
    ({"DASHSCOPE_HTTP_BASE_URL": "https://dashscope-us.aliyuncs.com/api/v1", "DASHSCOPE_API_REGION": "us-east-1",
      "DASHSCOPE_WORKSPACE_ID": "ws"}, "https://dashscope-us.aliyuncs.com"),  # the explicit base URL wins
    ({"QWEN_REGION": "ap-northeast-1", "DASHSCOPE_WORKSPACE_ID": "ws9"}, "https://ws9.ap-northeast-1.maas.aliyuncs.com"),
    ({"QWEN_REGION": "cn-beijing"}, "https://dashscope.aliyuncs.com"),
    ({"QWEN_REGION": "intl", "DASHSCOPE_HTTP_BASE_URL": "https://dashscope-us.aliyuncs.com"},
     "https://dashscope-intl.aliyuncs.com"),  # the skill's own setting wins
])
def test_sdk_settings_choose_the_host(tmp_path, env, root):
    assert resolve_endpoint(settings(tmp_path, **env)).root == root


@pytest.mark.parametrize("env,fragment", [
    ({"DASHSCOPE_API_REGION": "ap-southeast-1"}, "needs DASHSCOPE_WORKSPACE_ID"),
    ({"QWEN_REGION": "cn-hongkong"}, "set DASHSCOPE_WORKSPACE_ID"),
    ({"DASHSCOPE_API_REGION": "ap-southeast-1", "DASHSCOPE_WORKSPACE_ID": "evil.com/x"}, "workspace id"),
    ({"DASHSCOPE_API_REGION": "ap-southeast-1", "DASHSCOPE_WORKSPACE_ID": "a@b"}, "workspace id"),
    ({"DASHSCOPE_API_REGION": "x.evil.com"}, "one DNS label"),
    ({"DASHSCOPE_API_REGION": "-bad"}, "one DNS label"),
    ({"DASHSCOPE_HTTP_BASE_URL": "http://dashscope.aliyuncs.com/api/v1"}, "https://"),
])
def test_bad_sdk_settings_are_refused(tmp_path, env, fragment):
    with pytest.raises(QwenOpsError) as info:
        resolve_endpoint(settings(tmp_path, **env))
    assert info.value.exit_code == CONFIG and fragment in info.value.message


def test_sdk_settings_from_a_dotenv_follow_the_trust_rules(tmp_path):
    (tmp_path / ".env").write_text("DASHSCOPE_HTTP_BASE_URL=https://collector.example.com/api/v1\n")
    with pytest.raises(QwenOpsError, match="not a documented host"):
        resolve_endpoint(settings(tmp_path))
    (tmp_path / ".env").write_text("DASHSCOPE_HTTP_BASE_URL=https://ws1.ap-southeast-1.maas.aliyuncs.com:8443\n")
    with pytest.raises(QwenOpsError, match="port 8443"):
        resolve_endpoint(settings(tmp_path))
    (tmp_path / ".env").write_text("DASHSCOPE_API_REGION=us-east-1\nDASHSCOPE_WORKSPACE_ID=ws1\n")
    assert resolve_endpoint(settings(tmp_path)).root == "https://ws1.us-east-1.maas.aliyuncs.com"  # a MaaS host
    (tmp_path / ".env").write_text("QWEN_BASE_URL=https://token-plan.ap-southeast-1.maas.aliyuncs.com\n")
    found = resolve_endpoint(settings(tmp_path))
    assert found.is_token_plan and found.host == "token-plan.ap-southeast-1.maas.aliyuncs.com"


@pytest.mark.parametrize("line", ["DASHSCOPE_HTTP_BASE_URL=https://dashscope-intl.aliyuncs.com/api/v1",
                                  "DASHSCOPE_API_REGION=us-east-1\nDASHSCOPE_WORKSPACE_ID=ws1"])
def test_a_git_tracked_dotenv_may_not_redirect_through_the_sdk_settings(tmp_path, line):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".env").write_text(line + "\n")
    subprocess.run(["git", "add", "-f", ".env"], cwd=tmp_path, check=True)
    with pytest.raises(QwenOpsError, match="git tracks that file"):
        resolve_endpoint(settings(tmp_path))


def test_app_settings_name_both_bases_and_the_sdk_variables(tmp_path):
    intl = resolve_endpoint(settings(tmp_path, QWEN_REGION="intl"))
    assert app_settings(intl) == {
        "base_url": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "native_base_url": "https://dashscope-intl.aliyuncs.com/api/v1",
        "sdk": {"DASHSCOPE_HTTP_BASE_URL": "https://dashscope-intl.aliyuncs.com/api/v1"},
        "scripts": {"QWEN_REGION": "intl"}}
    maas = sdk_endpoint(settings(tmp_path, DASHSCOPE_API_REGION="cn-hongkong", DASHSCOPE_WORKSPACE_ID="ws1"))
    assert app_settings(maas)["sdk"] == {"DASHSCOPE_HTTP_BASE_URL": "https://ws1.cn-hongkong.maas.aliyuncs.com/api/v1",
                                         "DASHSCOPE_API_REGION": "cn-hongkong", "DASHSCOPE_WORKSPACE_ID": "ws1"}


def test_all_regions_reaches_the_maas_regions_only_with_a_workspace(tmp_path):
    assert [e.host for e in region_endpoints(settings(tmp_path))] == list(REGION_HOSTS)
    hosts = [e.host for e in region_endpoints(settings(tmp_path, DASHSCOPE_WORKSPACE_ID=WORKSPACE))]
    assert hosts == [*REGION_HOSTS, *MAAS_HOSTS]
    assert [e.host for e in region_endpoints(settings(tmp_path, DASHSCOPE_WORKSPACE_ID="a.b"))] == list(REGION_HOSTS)


# -- doctor: the scripts' host and the user's code's host

def test_doctor_warns_when_the_sdk_in_the_users_code_calls_another_host(env, project):
    run_env = dict(env, DASHSCOPE_API_KEY="sk-0123456789abcdef", QWEN_REGION="intl")
    result = run_script("doctor.py", "--offline", env=run_env, cwd=project)
    line = [x for x in result.out.splitlines() if "app host" in x]
    assert len(line) == 1 and "dashscope SDK in your code calls dashscope.aliyuncs.com" in line[0]
    assert "DASHSCOPE_HTTP_BASE_URL=https://dashscope-intl.aliyuncs.com/api/v1" in line[0]
    same = run_script("doctor.py", "--offline", env=dict(run_env, DASHSCOPE_HTTP_BASE_URL=
                                                         "https://dashscope-intl.aliyuncs.com/api/v1"), cwd=project)
    assert "app host" not in same.out
    other = run_script("doctor.py", "--offline", cwd=project, env=dict(
        run_env, DASHSCOPE_BASE_URL="https://dashscope-us.aliyuncs.com/api/v1",
        DASHSCOPE_COMPATIBLE_BASE_URL="https://dashscope.aliyuncs.com/compatible-mode/v1"))
    assert "DASHSCOPE_BASE_URL (env:DASHSCOPE_BASE_URL) sends the SDK's v2 client" in other.out
    assert "DASHSCOPE_COMPATIBLE_BASE_URL (env:DASHSCOPE_COMPATIBLE_BASE_URL) sends the SDK's OpenAI" in other.out


def test_doctor_reports_the_model_studio_clis_base_url(env, project, tmp_path):
    (tmp_path / "home" / ".bailian").mkdir(parents=True)
    (tmp_path / "home" / ".bailian" / "config.json").write_text(json.dumps(
        {"api_key": "sk-fromthecli1", "base_url": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"}))
    result = run_script("doctor.py", "--offline", env=env, cwd=project)
    assert "Model Studio CLI's ~/.bailian/config.json has base_url host dashscope-intl.aliyuncs.com" in result.out
    assert "reported, not used" in result.out


# -- real TLS through a proxy: a key accepted on one region only (no packet leaves this machine)

@pytest.fixture(scope="module")
def region_pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.issue_cert(*REGION_HOSTS, *MAAS_HOSTS).private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    box = start_sandbox("--tls-cert", str(folder / "server.pem"), "--tls-key", str(folder / "server.pem"))
    yield ca, str(folder / "ca.pem"), box
    box.stop()


@pytest.fixture
def only_on(region_pki, env):
    """(run environment, proxy) where ``host`` accepts the sandbox key and every other region host says 401."""
    ca, ca_file, box = region_pki
    made = []

    def make(host: str):
        port = int(box.base_url.rsplit(":", 1)[1])
        answers = {f"{h}:443": (401, UNAUTHORIZED) for h in (*REGION_HOSTS, *MAAS_HOSTS) if h != host}
        proxy = ForwardProxy(routes={f"{host}:443": ("127.0.0.1", port)}, answers=answers, inspect_ca=ca)
        made.append(proxy)
        clean = {k: v for k, v in env.items() if "proxy" not in k.lower()}
        return dict(clean, HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=ca_file, DASHSCOPE_API_KEY=box.api_key), proxy

    yield make
    for proxy in made:
        proxy.close()


def test_doctor_gives_the_app_the_intl_base_url_when_only_intl_accepts_the_key(only_on, project):
    run_env, proxy = only_on("dashscope-intl.aliyuncs.com")
    result = run_script("doctor.py", env=run_env, cwd=project)
    assert result.code == 5, (result.out, proxy.errors)
    assert "your key works on intl: set QWEN_REGION=intl" in result.out
    app = [x for x in result.out.splitlines() if "app endpoint" in x]
    assert len(app) == 1 and "base_url https://dashscope-intl.aliyuncs.com/compatible-mode/v1" in app[0]
    assert "DASHSCOPE_HTTP_BASE_URL=https://dashscope-intl.aliyuncs.com/api/v1" in app[0]
    data = json.loads(run_script("doctor.py", "--json", env=run_env, cwd=project).out)
    assert data["app"]["base_url"] == "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    assert data["error"]["code"] == "auth_rejected" and data["error"]["exit_code"] == 5


def test_all_regions_with_a_workspace_finds_a_maas_region(only_on, project):
    host = f"{WORKSPACE}.ap-southeast-1.maas.aliyuncs.com"
    run_env, proxy = only_on(host)
    run_env["DASHSCOPE_WORKSPACE_ID"] = WORKSPACE
    result = run_script("probe.py", "--all-regions", env=run_env, cwd=project)
    assert result.code == 0, (result.out, result.err, proxy.errors)
    lines = result.out.splitlines()
    assert lines[:8] == ["cn 401", "intl 401", "us 401", "ap-southeast-1 200", "us-east-1 401", "cn-hongkong 401",
                         "eu-central-1 401", "ap-northeast-1 401"]
    assert "use: QWEN_REGION=ap-southeast-1 (these scripts)" in lines
    assert f"use: base_url https://{host}/compatible-mode/v1 (OpenAI-compatible clients)" in lines
    assert any(x.startswith("use: DASHSCOPE_API_REGION=ap-southeast-1 DASHSCOPE_WORKSPACE_ID=ws1") for x in lines)
    assert sorted(c.split()[1] for c in proxy.connects()) == sorted(f"{h}:443" for h in (*REGION_HOSTS, *MAAS_HOSTS))
    data = json.loads(run_script("probe.py", "--all-regions", "--json", env=run_env, cwd=project).out)
    assert data["app"]["region"] == "ap-southeast-1" and "error" not in data
