"""Every script's --json output: one error shape {"error": {"code", "message", "exit_code"}}, ASCII only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import CANARY_KEY, MODEL, SCRIPTS, UPDATE_SKILL, leaks, run_script, sandbox_env
from qianwen_ops import cli, errors

ALL_SCRIPTS = sorted([*SCRIPTS.glob("*.py"), UPDATE_SKILL / "scripts" / "check_update.py"], key=lambda p: p.name)


def with_json_flag() -> list:
    found = []
    for script in ALL_SCRIPTS:
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
        if "--json" in done.stdout:
            found.append(script.name)
    return found


JSON_SCRIPTS = with_json_flag()


def error_of(stdout: str, index: int = -1) -> dict:
    """The error object of the JSON line at ``index``; checks the shape on the way."""
    obj = json.loads(stdout.strip().splitlines()[index])
    error = obj["error"]
    assert set(error) == {"code", "message", "exit_code"}, error
    assert error["code"] == errors.ERROR_NAMES[error["exit_code"]]
    assert "\n" not in error["message"] and error["message"]
    return error


def test_the_scripts_with_json_output():
    assert JSON_SCRIPTS == ["doctor.py", "probe.py", "upload_file.py"]


def test_every_exit_code_has_a_stable_name():
    assert set(errors.ERROR_NAMES) == set(errors.EXIT_CODES) - {errors.OK}
    assert len(set(errors.ERROR_NAMES.values())) == len(errors.ERROR_NAMES)
    assert errors.error_object(errors.NO_KEY, "line one\nline two") == {
        "error": {"code": "no_key", "message": "line one\\nline two", "exit_code": 3}}


@pytest.mark.parametrize("script", JSON_SCRIPTS)
def test_usage_errors_under_json(script, env, project):
    result = run_script(script, "--json", "--no-such-flag", env=env, cwd=project)
    assert result.code == errors.USAGE and "error:" in result.err  # the stderr line stays
    assert error_of(result.out) == {"code": "usage", "exit_code": 2, "message": error_of(result.out)["message"]}
    plain = run_script(script, "--no-such-flag", env=env, cwd=project)
    assert plain.code == errors.USAGE and plain.out == ""  # without --json: no JSON


@pytest.mark.parametrize("argv,code", [
    (["probe.py", "--json"], errors.NO_KEY),
    (["probe.py", "--json", "--all-regions"], errors.NO_KEY),
    (["doctor.py", "--json", "--offline"], errors.NO_KEY),
    (["probe.py", "--json", "--timeout", "0"], errors.USAGE),
    (["upload_file.py", "--json", "--model", "qwen-vl-plus", "--concurrency", "0", "a.png"], errors.USAGE),
])
def test_failures_carry_the_error_object(argv, code, env, project):
    result = run_script(*argv, env=env, cwd=project)
    assert result.code == code, (result.out, result.err)
    error = error_of(result.out)
    assert error["exit_code"] == code


def test_a_configuration_error_before_any_request(env, project):
    result = run_script("probe.py", "--json", env=dict(env, DASHSCOPE_API_KEY="sk-0123456789abcdef",
                                                       QWEN_BASE_URL="ftp://x"), cwd=project)
    assert result.code == errors.CONFIG and error_of(result.out)["code"] == "config"


def test_doctor_json_keeps_its_report_and_adds_the_error(env, project):
    data = json.loads(run_script("doctor.py", "--json", "--offline", env=env, cwd=project).out)
    assert data["ok"] is False and data["exit_code"] == errors.NO_KEY and data["checks"]
    assert data["error"]["code"] == "no_key" and data["error"]["message"].startswith("api key: no API key found")


def test_upload_json_per_input_errors(env, project):
    (project / "ok.png").write_bytes(b"\x89PNG fine")
    result = run_script("upload_file.py", "--json", "--inline", "ok.png", "missing.png", CANARY_KEY,
                        env=env, cwd=project)
    assert result.code == errors.INPUT_FILE
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert lines[0]["url"].startswith("data:image/png;base64,") and "error" not in lines[0]
    assert lines[1]["source"] == "missing.png" and error_of(result.out, 1)["code"] == "input_file"
    assert lines[2]["source"] == "<redacted>" and error_of(result.out, 2)["exit_code"] == errors.INPUT_FILE
    assert not leaks(result.out + result.err)
    no_key = run_script("upload_file.py", "--json", "--model", "qwen-vl-plus", "ok.png", env=env, cwd=project)
    assert no_key.code == errors.NO_KEY and error_of(no_key.out)["code"] == "no_key"
    assert json.loads(no_key.out)["source"] == "ok.png"


def test_an_internal_error_under_json(capsys, monkeypatch):
    def main() -> int:
        raise RuntimeError(f"boom {CANARY_KEY}")

    monkeypatch.setattr(cli, "_json_output", True)
    with pytest.raises(SystemExit) as info:
        cli.run(main)
    out, err = capsys.readouterr()
    assert info.value.code == errors.INTERNAL and "internal error (RuntimeError)" in err
    assert error_of(out) == {"code": "internal", "exit_code": 1, "message": error_of(out)["message"]}
    assert not leaks(out + err)


def test_json_output_and_evidence_are_ascii_escaped(sb, env, project):
    name = "图片 ünï name.png"               # printable non-ASCII: escaped in JSON, never lost
    (project / name).write_bytes(b"picture")
    done = run_script("upload_file.py", name, "missing-\u2067.png", "--model", MODEL, "--json", "--no-cache",
                      env=sandbox_env(env, sb), cwd=project)
    assert done.code == 10 and done.out.isascii(), done.out
    first, second = (json.loads(line) for line in done.out.splitlines())
    assert first["source"] == name and first["url"].endswith("_u56feu7247_u00fcnu00ef_name.png") and "error" in second
    evidence = project / "output" / "qianwen-ops-auth"
    texts = [path.read_bytes() for path in evidence.rglob("*") if path.is_file()]
    assert texts and all(text.isascii() for text in texts)
    assert any("图片" in json.loads(line).get("source", "") for line in (evidence / "uploads.jsonl").read_text()
               .splitlines())
