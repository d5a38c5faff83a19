"""doctor's last line (and --json's "verified"/"result") says what was verified, never more."""

from __future__ import annotations

import json

from conftest import run_script, sandbox_env


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
