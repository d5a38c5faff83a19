"""doctor.py's report: which key is in effect and which it hides, hints that name real settings and files, the
project's .env findings (and advice that never makes a cloned repository's settings trusted), text no folder
name can forge, and a last line that says what was verified, never more."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from conftest import (
    CANARY_KEY,
    OTHER_KEY,
    git,
    leaks,
    needs_posix_modes,
    run_script,
    sandbox_env,
    write_cli_config,
)
from qianwen_ops.project_findings import project_findings
from qianwen_ops.settings import Settings

FORGERY = "p\n[ok]   probe: HTTP 200 in 5 ms\nresult: authentication works\n"


def test_a_folder_name_cannot_forge_doctor_lines(env, tmp_path):
    import re

    project = tmp_path / FORGERY
    project.mkdir()
    git(project, "init", "-q")
    (project / ".env").write_text("DASHSCOPE_API_KEY=sk-your-key-here\n")
    git(project, "add", ".env")
    doctor = run_script("doctor.py", "--offline", env=env, cwd=project)
    assert doctor.code == 3, doctor.err
    lines = doctor.out.splitlines()
    line = re.compile(r"^(qianwen-ops-auth \S+ doctor \(Python [^)]*\)|\[(ok|FAIL|skip|info|warn)\] +[A-Za-z0-9 .-]+: "
                      r".*|evidence: .*|result: .*)$")
    assert all(line.match(text) for text in lines), lines
    assert [text for text in lines if text.startswith("result:")] == ["result: not ready (exit 3)"]
    assert not [text for text in lines if text.startswith("[ok]   probe")]
    assert "p\\n[ok]   probe" in doctor.out                   # the path is there, escaped
    probe = run_script("probe.py", env=env, cwd=project)
    assert probe.code == 3 and len(probe.err.splitlines()) == 1 and "\\nresult: authentication works" in probe.err


def tracked_dotenv_findings(project: Path, dotenv: str, env: dict) -> dict:
    """{name: [(state, detail)...]} of doctor's project findings for a git project that tracks ``.env``."""
    (project / ".env").write_text(dotenv)
    git(project, "init", "-q")
    git(project, "add", ".env")
    found = {}
    for name, state, detail in project_findings(Settings.from_process(cwd=project, env=env)):
        found.setdefault(name, []).append((state, detail))
    return found


@pytest.mark.parametrize("line", ["QWEN_BASE_URL=https://dashscope-intl.aliyuncs.com",
                                  "QWEN_TMP_OSS_BUCKET=someone-elses-bucket", "HTTPS_PROXY=http://proxy.example:3128",
                                  "SSL_CERT_FILE=certs/theirs.pem"])
def test_doctor_never_advises_untracking_foreign_settings(env, project, line):
    found = tracked_dotenv_findings(project, f"DASHSCOPE_API_KEY=sk-your-key-here\n{line}\n", env)
    [(state, detail)] = found[".env in git"]
    assert state == "warn" and line.split("=")[0] in detail and "do not just run git rm --cached" in detail
    assert "run: git rm --cached" not in detail and "real credentials" not in detail


@pytest.mark.parametrize("line,name", [("DASHSCOPE_API_KEY=sk-" + "3f" * 16, "DASHSCOPE_API_KEY"),
                                       ("QIANWEN_API_KEY=sk-sp-" + "a1" * 16, "QIANWEN_API_KEY"),
                                       ("OSS_ACCESS_KEY_SECRET=Yb7cNe5dTf9gUa1hQw3e", "OSS_ACCESS_KEY_SECRET"),
                                       ("QWEN_TMP_OSS_AK_SECRET=Yb7cNe5dTf9gUa1hQw3e", "QWEN_TMP_OSS_AK_SECRET")])
def test_doctor_flags_committed_real_credentials(env, project, line, name):
    found = tracked_dotenv_findings(project, line + "\n", env)
    [(state, detail)] = [line for line in found[".env in git"] if "holds real credentials" in line[1]]
    assert state == "warn" and name in detail and "if they are yours, rotate them now" in detail
    assert "if this is a clone of someone else's repository they are not yours: do not use them" in detail
    assert line.split("=", 1)[1] not in detail                                # names only, never the value


def test_a_tracked_env_with_placeholders_only_keeps_the_plain_advice(env, project):
    found = tracked_dotenv_findings(project, "DASHSCOPE_API_KEY=sk-your-key-here\n"
                                    "QWEN_TMP_OSS_AK_SECRET=your-accesskey-secret\nQWEN_REGION=intl\n", env)
    [(state, detail)] = found[".env in git"]
    assert "real credentials" not in detail and "run: git rm --cached .env, then add it to .gitignore" in detail


def test_region_ignored_while_base_url_is_set_is_one_warning(sb, env, project):
    result = run_script("doctor.py", "--offline", env=dict(sandbox_env(env, sb), QWEN_REGION="intl"), cwd=project)
    warnings = [line for line in result.out.splitlines() if "QWEN_BASE_URL overrides QWEN_REGION=intl" in line]
    assert len(warnings) == 1 and warnings[0].startswith("[warn]"), result.out
    alone = run_script("doctor.py", "--offline", env=sandbox_env(env, sb), cwd=project)
    assert "overrides QWEN_REGION" not in alone.out


def test_token_plan_hint_names_a_reference_file_that_exists(sb, env, project):
    result = run_script("doctor.py", "--offline", env=sandbox_env(env, sb, key=sb.info["token_plan_key"]),
                        cwd=project)
    shown = re.search(r"see (\S+tokenplan\.md)\)", result.out)
    assert shown, result.out
    assert (project / shown.group(1)).is_file()  # absolute here (the skill is outside the project)
    assert shown.group(1) != "references/tokenplan.md"


def test_offline_never_claims_authentication_works(sb, env, project):
    run_env = sandbox_env(env, sb)  # a key the endpoint would accept: offline, nothing finds that out
    text = run_script("doctor.py", "--offline", env=run_env, cwd=project)
    assert text.code == 0
    assert "authentication works" not in text.out
    assert text.out.splitlines()[-1] == "result: settings look right; authentication not verified (--offline)"
    data = json.loads(run_script("doctor.py", "--offline", "--json", env=run_env, cwd=project).out)
    assert (data["ok"], data["verified"]) == (True, "settings")
    assert data["result"] == "settings look right; authentication not verified (--offline)"
    saved = [json.loads(p.read_text()) for p in (project / "output" / "qianwen-ops-auth").glob("doctor-*.json")]
    assert sorted(r["verified"] for r in saved) == ["settings", "settings"]


def test_the_verdict_names_the_host_that_accepted_the_key(sb, env, project):
    data = json.loads(run_script("doctor.py", "--json", env=sandbox_env(env, sb), cwd=project).out)
    assert (data["ok"], data["verified"]) == (True, "authentication")
    host = sb.base_url.split("//")[1].split(":")[0]
    assert data["result"].startswith(f"authentication works on {host} (this machine, e.g. the sandbox); "
                                     "DashScope itself was not checked")


def test_not_ready_verifies_nothing(sb, env, project):
    run_env = sandbox_env(env, sb, key="sk-revokedrevoked1")
    text = run_script("doctor.py", env=run_env, cwd=project)
    assert text.code == 5 and text.out.splitlines()[-1] == "result: not ready (exit 5)"
    data = json.loads(run_script("doctor.py", "--json", env=run_env, cwd=project).out)
    assert (data["ok"], data["verified"], data["result"]) == (False, "none", "not ready (exit 5)")


def doctor_lines(result) -> list:
    return [line for line in result.out.splitlines() if "key sources" in line or "your code" in line]


def test_env_overrides_a_different_dotenv_key(sb, env, project):
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\n")
    result = run_script("doctor.py", env=sandbox_env(env, sb), cwd=project)
    assert result.code == 0
    warning = [line for line in doctor_lines(result) if "overrides" in line]
    assert len(warning) == 1 and "DASHSCOPE_API_KEY" in warning[0] and str(project / ".env") in warning[0]
    assert not leaks(result.out + result.err, (CANARY_KEY, sb.api_key[10:]))


def test_a_tracked_dotenv_key_hiding_the_users_own_is_never_to_be_copied(env, project):
    """A clone's committed key wins over the user's ~/.dashscope/api_key: doctor names it as someone else's and
    says how to use one's own, never "make them the same key, or delete the stale one"."""
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\n")
    git(project, "init", "-q")
    git(project, "add", ".env")
    home = Path(env["HOME"])
    (home / ".dashscope").mkdir(parents=True, exist_ok=True)
    (home / ".dashscope" / "api_key").write_text(OTHER_KEY + "\n")
    (home / ".dashscope" / "api_key").chmod(0o600)
    run_env = {k: v for k, v in env.items() if k not in ("DASHSCOPE_API_KEY", "QIANWEN_API_KEY")}
    result = run_script("doctor.py", "--offline", env=run_env, cwd=project)
    [line] = [x for x in doctor_lines(result) if "key sources" in x]
    assert "which git tracks" in line and "someone else's key" in line and "set DASHSCOPE_API_KEY" in line
    assert "same key" not in line and "delete" not in line
    assert not leaks(result.out + result.err, (CANARY_KEY, OTHER_KEY))


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


def findings(cwd: Path) -> dict:
    """{name: (state, detail)} of doctor's project findings for ``cwd`` (no environment, the skill elsewhere)."""
    settings = Settings(env={}, cwd=cwd, home=cwd, skill_dir=cwd / "x")
    return {name: (state, detail) for name, state, detail in project_findings(settings)}


@needs_posix_modes
def test_findings_dotenv_not_ignored_tracked_and_readable_by_others(tmp_path):
    git(tmp_path, "init", "-q")
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\n")
    os.chmod(dotenv, 0o644)
    found = findings(tmp_path)
    assert found["project"][0] == "info" and str(tmp_path) in found["project"][1]
    assert found[".env in git"][0] == "warn" and "not ignored" in found[".env in git"][1]
    assert found[".env permissions"] == ("warn", f"{dotenv} is readable by other users (mode 644); "
                                                 f"run: chmod 600 {dotenv}")
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o644  # reported, never fixed unasked
    (tmp_path / ".gitignore").write_text(".env\n")
    os.chmod(dotenv, 0o600)
    found = findings(tmp_path)
    assert ".env in git" not in found and ".env permissions" not in found
    git(tmp_path, "add", "-f", ".env")
    assert "tracked by git" in findings(tmp_path)[".env in git"][1]
    assert all(leaks(detail) == [] for _, detail in findings(tmp_path).values())


@needs_posix_modes
def test_doctor_reports_findings_without_values(tmp_path, env, project):
    git(project, "init", "-q")
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={CANARY_KEY}\n")
    os.chmod(project / ".env", 0o640)
    result = run_script("doctor.py", "--offline", "--json", env=env, cwd=project)
    data = json.loads(result.out)
    names = {check["name"]: check for check in data["checks"]}
    assert names[".env permissions"]["status"] == "warn" and "chmod 600" in names[".env permissions"]["detail"]
    assert names[".env in git"]["status"] == "warn"
    assert data["evidence_dir"] == str(project / "output" / "qianwen-ops-auth")
    assert leaks(result.out + result.err) == [] and result.code == 0


def test_a_base_url_naming_a_region_host_is_a_region(proxies, net_env, pki, tls_box, project):
    """QWEN_BASE_URL=https://dashscope.aliyuncs.com is the cn region: a 401 there runs the region scan, and
    the advice also unsets the variable that would keep overriding QWEN_REGION."""
    from conftest import UNAUTHORIZED, api_address

    proxy = proxies(routes={"dashscope-intl.aliyuncs.com:443": api_address(tls_box)},
                    answers={"dashscope.aliyuncs.com:443": (401, UNAUTHORIZED),
                             "dashscope-us.aliyuncs.com:443": (401, UNAUTHORIZED)}, inspect_ca=pki["server_ca"])
    run_env = dict(net_env, HTTPS_PROXY=proxy.url(), SSL_CERT_FILE=pki["server-ca"],
                   QWEN_BASE_URL="https://dashscope.aliyuncs.com/compatible-mode/v1")
    result = run_script("doctor.py", env=run_env, cwd=project)
    assert result.code == 5, (result.out, proxy.errors)
    assert ("your key works on intl: set QWEN_REGION=intl and unset QWEN_BASE_URL (env:QWEN_BASE_URL), which wins "
            "over it (it was rejected on cn;") in result.out
    assert "base_url https://dashscope-intl.aliyuncs.com/compatible-mode/v1" in result.out


def test_region_of_names_documented_region_hosts_only():
    from qianwen_ops.doctor import region_of
    from qianwen_ops.endpoints import Endpoint

    assert region_of(Endpoint("https://dashscope-us.aliyuncs.com", "custom", "QWEN_BASE_URL (env)")) == "us"
    assert region_of(Endpoint("https://ws1.eu-central-1.maas.aliyuncs.com", "custom", "x")) == "eu-central-1"
    assert region_of(Endpoint("https://intl", "intl", "QWEN_REGION")) == "intl"
    for root in ("https://gateway.example.test", "https://token-plan.cn-beijing.maas.aliyuncs.com",
                 "https://ws1.mars-1.maas.aliyuncs.com", "http://127.0.0.1:8080"):
        assert region_of(Endpoint(root, "custom", "x")) == "", root
