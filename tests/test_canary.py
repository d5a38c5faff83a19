"""Secrets never leak: canary key and OSS secret across every entry point and mode.

Each case puts the canaries in the environment *and* in .env, runs one entry point in
one mode (checking the exit code proves the mode happened), then searches stdout,
stderr, evidence files, the reuse cache and the state file for any 6-character slice
of either canary.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CANARY_KEY, CANARY_OSS_ID, CANARY_OSS_SECRET, MODEL, SCRIPTS, leaks, run_script


@pytest.fixture(scope="module")
def loud_sandbox(tmp_path_factory):
    """A sandbox that logs every request to a file, so its log lines can be searched too."""
    log = tmp_path_factory.mktemp("log") / "sandbox.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([sys.executable, str(SCRIPTS / "sandbox.py")], stdout=subprocess.PIPE,
                                stderr=handle, text=True)
    from conftest import SandboxProc, read_json_line

    box = SandboxProc(read_json_line(proc), proc)
    box.log = log
    yield box
    box.stop()


def canary_env(env, box, key=CANARY_KEY, oss=None):
    out = dict(env, QWEN_BASE_URL=box.base_url, DASHSCOPE_API_KEY=key, OSS_ACCESS_KEY_SECRET=CANARY_OSS_SECRET,
               OSS_ACCESS_KEY_ID=CANARY_OSS_ID)
    if key != CANARY_KEY:
        out["QIANWEN_CANARY_DUMMY"] = CANARY_KEY  # the canary still sits in the environment
    if oss:
        info = box.info
        out.update(QWEN_TMP_OSS_BUCKET=info["oss_bucket"], QWEN_TMP_OSS_REGION=info["oss_region"],
                   QWEN_TMP_OSS_ENDPOINT=info["oss_endpoint"])
        if oss == "good":
            out.update(QWEN_TMP_OSS_AK_ID=info["oss_access_key_id"],
                       QWEN_TMP_OSS_AK_SECRET=info["oss_access_key_secret"])
        elif oss == "wrong":
            out.update(QWEN_TMP_OSS_AK_ID=info["oss_access_key_id"], QWEN_TMP_OSS_AK_SECRET=CANARY_OSS_SECRET)
    return out


DOTENV = (f"DASHSCOPE_API_KEY={CANARY_KEY}\nQWEN_TMP_OSS_AK_SECRET={CANARY_OSS_SECRET}\n"
          f"OSS_ACCESS_KEY_SECRET={CANARY_OSS_SECRET}\n")

# (name, script args, key: "good"|"canary"|literal, oss mode, fault, expected exit)
CASES = [
    ("probe-success", ["probe.py"], "good", None, None, 0),
    ("probe-json-success", ["probe.py", "--json"], "good", None, None, 0),
    ("probe-401", ["probe.py"], "canary", None, None, 5),
    ("probe-json-401", ["probe.py", "--json"], "canary", None, None, 5),
    ("probe-no-key", ["probe.py"], "", None, None, 3),
    ("probe-placeholder", ["probe.py"], "sk-your-key-here", None, None, 3),
    ("probe-malformed", ["probe.py"], f" {CANARY_KEY}", None, None, 3),
    ("probe-token-plan", ["probe.py", "--json"], "sk-sp-" + CANARY_KEY[3:], None, None, 4),
    ("probe-all-regions-token-plan", ["probe.py", "--all-regions"], "sk-sp-" + CANARY_KEY[3:], None, None, 4),
    ("probe-403", ["probe.py"], "good", None, {"route": "chat", "status": 403}, 5),
    ("probe-429", ["probe.py"], "good", None, {"route": "chat", "status": 429}, 6),
    ("probe-5xx", ["probe.py", "--json"], "good", None, {"route": "chat", "status": 500}, 7),
    ("probe-timeout", ["probe.py", "--timeout", "0.3"], "good", None, {"route": "chat", "delay_s": 1.5}, 8),
    ("probe-reset", ["probe.py"], "good", None, {"route": "chat", "action": "reset"}, 8),
    ("doctor-success", ["doctor.py", "--json"], "good", None, None, 0),
    ("doctor-401", ["doctor.py"], "canary", None, None, 5),
    ("doctor-offline", ["doctor.py", "--offline", "--json"], "canary", None, None, 0),
    ("doctor-oss-good", ["doctor.py", "--check-oss", "--json"], "good", "good", None, 0),
    ("doctor-oss-wrong", ["doctor.py", "--check-oss"], "good", "wrong", None, 5),
    ("setup-existing", ["setup_env.py"], "canary", None, None, 0),
    ("setup-dry", ["setup_env.py", "--dry-run"], "canary", None, None, 0),
    ("setup-custom-oss", ["setup_env.py", "--custom-oss", "--bucket", "my-bucket", "--region", "cn-beijing"],
     "canary", None, None, 0),
    ("upload-success", ["upload_file.py", "f.png", "--model", MODEL, "--json"], "good", None, None, 0),
    ("upload-401", ["upload_file.py", "f.png", "--model", MODEL], "canary", None, None, 5),
    ("upload-429", ["upload_file.py", "f.png", "--model", MODEL, "--no-cache"], "good", None,
     {"route": "getPolicy", "status": 429, "count": 8}, 6),
    ("upload-5xx", ["upload_file.py", "f.png", "--model", MODEL, "--no-cache"], "good", None,
     {"route": "postObject", "status": 500, "count": 8}, 7),
    ("upload-reset", ["upload_file.py", "f.png", "--model", MODEL, "--no-cache"], "good", None,
     {"route": "postObject", "action": "reset", "count": 8}, 8),
    ("upload-bad-file", ["upload_file.py", "missing.png", "--model", MODEL], "good", None, None, 10),
    ("upload-inline", ["upload_file.py", "f.png", "--inline", "--json"], "canary", None, None, 0),
    ("upload-inline-json-bad-file", ["upload_file.py", "missing.png", "--inline", "--json"], "canary", None, None, 10),
    ("probe-json-bad-flag", ["probe.py", "--json", f"--x={CANARY_KEY}"], "canary", None, None, 2),
    ("upload-token-plan", ["upload_file.py", "f.png", "--model", MODEL], "sk-sp-" + CANARY_KEY[3:], None, None, 4),
    ("upload-oss-good", ["upload_file.py", "f.png", "--model", MODEL, "--json"], "canary", "good", None, 0),
    ("upload-oss-wrong", ["upload_file.py", "f.png", "--model", MODEL], "canary", "wrong", None, 5),
    ("upload-oss-no-pair", ["upload_file.py", "f.png", "--model", MODEL], "canary", "none", None, 9),
    ("upload-oss-without-oss2", ["upload_file.py", "f.png", "--model", MODEL], "canary", "good", "no-oss2", 0),
    ("gossamer-status", ["gossamer.py", "--status"], "canary", None, None, 0),
    ("gossamer-run", ["gossamer.py"], "canary", None, None, 0),
    ("check-update", ["check_update.py", "--print-response", "--force"], "canary", None, None, 0),
    ("demo-sandbox", ["demo.py", "--sandbox"], "canary", None, None, 0),
    ("demo-real-key-401", ["demo.py"], "canary", None, None, 5),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,args,key,oss,fault,expected", CASES, ids=[c[0] for c in CASES])
def test_no_canary_anywhere(loud_sandbox, env, project, tmp_path, name, args, key, oss, fault, expected):
    box = loud_sandbox
    box.clear_faults()
    real_key = {"good": box.api_key, "canary": CANARY_KEY}.get(key, key)
    run_env = canary_env(env, box, key=real_key, oss=oss)
    run_env["QWEN_SKILLS_STATE"] = str(tmp_path / "state.json")
    if key == "":
        run_env.pop("DASHSCOPE_API_KEY")
    (project / ".env").write_text(DOTENV if key != "" else f"OSS_ACCESS_KEY_SECRET={CANARY_OSS_SECRET}\n")
    if name.startswith("setup") or key == "":
        (project / ".env").write_text(f"OSS_ACCESS_KEY_SECRET={CANARY_OSS_SECRET}\n" + (
            f"DASHSCOPE_API_KEY={CANARY_KEY}\n" if name.startswith("setup") else ""))
    (project / "f.png").write_bytes(b"\x89PNG canary test")
    if fault == "no-oss2":
        blocker = tmp_path / "block"
        blocker.mkdir()
        (blocker / "oss2.py").write_text("raise ImportError('blocked')\n")
        run_env["PYTHONPATH"] = str(blocker)
    elif fault:
        box.fault(**fault)
    result = run_script(args[0], *args[1:], env=run_env, cwd=project, timeout=120)
    box.clear_faults()
    assert result.code == expected, (name, result.out[-500:], result.err[-500:])
    assert "Traceback" not in result.err
    found = leaks(result.out) + leaks(result.err)
    for folder in (project / "output", tmp_path / "cache", tmp_path / "state"):
        for path in (folder.rglob("*") if folder.exists() else []):
            if path.is_file():
                found += leaks(path.read_text(errors="replace"))
    if Path(run_env["QWEN_SKILLS_STATE"]).exists():
        found += leaks(Path(run_env["QWEN_SKILLS_STATE"]).read_text())
    assert found == [], (name, found)


def test_sandbox_log_has_no_credentials(loud_sandbox, env, project, tmp_path):
    """Whatever else ran on this sandbox (the canary cases above, when selected), it logs a chat call, a
    temporary-storage upload and a custom-OSS upload made here, and none of their credentials."""
    (project / "f.png").write_bytes(b"\x89PNG log test")
    for oss in (None, "good"):
        run_env = dict(canary_env(env, loud_sandbox, key=loud_sandbox.api_key, oss=oss),
                       QWEN_SKILLS_STATE=str(tmp_path / "state.json"))
        assert run_script("probe.py", env=run_env, cwd=project).code == 0
        assert run_script("upload_file.py", "f.png", "--model", MODEL, "--no-cache", env=run_env, cwd=project).code == 0
    text = loud_sandbox.log.read_text()
    assert "sandbox: POST /compatible-mode/v1/chat/completions" in text  # the log is being written
    for needle in ("Authorization", "Bearer", "Signature=", "x-oss-signature", "OSSAccessKeyId=", "policy=",
                   loud_sandbox.api_key, loud_sandbox.info["oss_access_key_secret"]):
        assert needle not in text, needle
    assert leaks(text) == []


def test_library_exceptions_hold_no_secret(loud_sandbox, env, project):
    from qianwen_ops.errors import QwenOpsError
    from qianwen_ops.settings import Settings
    from qianwen_ops.uploads import resolve_file

    (project / "f.png").write_bytes(b"x")
    cases = [canary_env(env, loud_sandbox), canary_env(env, loud_sandbox, key=loud_sandbox.api_key, oss="wrong"),
             canary_env(env, loud_sandbox, key=" " + CANARY_KEY)]
    for case in cases:
        with pytest.raises(QwenOpsError) as info:
            resolve_file(str(project / "f.png"), MODEL, settings=Settings.from_process(cwd=project, env=case),
                         use_cache=False)
        text = f"{info.value} {info.value!r} {info.value.args} {info.value.__cause__!r} {info.value.__context__!r}"
        assert leaks(text) == [], text


def test_library_results_hold_no_secret(loud_sandbox, env, project):
    """The objects other skills' code receives: probe records, doctor reports, upload outcomes."""
    import json

    from qianwen_ops.credentials import find_api_key
    from qianwen_ops.doctor import diagnose
    from qianwen_ops.probe import run_probe
    from qianwen_ops.settings import Settings
    from qianwen_ops.uploads import upload_many

    box = loud_sandbox
    (project / ".env").write_text(DOTENV)
    (project / "f.png").write_bytes(b"library canary")
    texts = []
    for case in (canary_env(env, box), canary_env(env, box, key=box.api_key, oss="wrong"),
                 canary_env(env, box, key=box.api_key, oss="good")):
        settings = Settings.from_process(cwd=project, env=case)
        texts.append(repr(settings) + repr(find_api_key(settings)))
        texts.append(json.dumps(run_probe(settings).record()))
        texts.append(json.dumps(diagnose(settings, check_oss="QWEN_TMP_OSS_BUCKET" in case).as_dict()))
        for outcome in upload_many([str(project / "f.png"), str(project / "missing.png")], MODEL,
                                   settings=settings, use_cache=False):
            texts.append(repr(outcome.upload) + str(outcome.error) + repr(outcome.error))
    joined = "\n".join(texts)
    assert "QWEN_TMP_OSS_AK_ID/QWEN_TMP_OSS_AK_SECRET is wrong" in joined  # the wrong-secret case ran
    assert "backend='custom-oss'" in joined and "backend='temp-storage'" not in joined  # first case: 401
    assert "key rejected" in joined or "Invalid API-key" in joined
    assert leaks(joined) == [], leaks(joined)
