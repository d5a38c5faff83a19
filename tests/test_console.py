"""Output on any console: a reader that goes away early, and encodings that cannot show every character.

Run without PYTHONUNBUFFERED (the ``env`` fixture drops it, as a user's shell does): stdout is then
block-buffered into a pipe, and a reader that stopped reading used to turn every script's exit code
into 120 with "Exception ignored ... BrokenPipeError" on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import RESOLVE, SCRIPTS, UPDATE_SKILL, chat, sandbox_env

PNG_HEAD = b"\x89PNG\r\n\x1a\n"


def closed_stdout(argv: list, env: dict, cwd) -> tuple:
    """Run a script whose stdout reader is gone before it writes; (exit code, stderr)."""
    assert "PYTHONUNBUFFERED" not in env
    proc = subprocess.Popen([sys.executable, *map(str, argv)], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err.decode("utf-8", "replace")


@pytest.mark.parametrize("argv,code", [
    (["probe.py"], 0),
    (["probe.py", "--json"], 0),
    (["probe.py", "--all-regions"], 3),   # the sandbox key is not sent to the real hosts: no key there
    (["doctor.py"], 0),
    (["doctor.py", "--json"], 0),
    (["setup_env.py"], 0),
    (["upload_file.py", "photo.png", "--model", "qwen-vl-plus"], 0),
    (["upload_file.py", "photo.png", "--model", "qwen-vl-plus", "--json"], 0),
    (["gossamer.py"], 0),
    (["gossamer.py", "--status"], 0),
    (["upload_file.py", "--help"], 0),
])
def test_every_script_keeps_its_exit_code_when_stdout_closes(sb, env, project, argv, code):
    (project / "photo.png").write_bytes(PNG_HEAD + b"closed pipe")
    run_env = sandbox_env(env, sb)
    if argv == ["probe.py", "--all-regions"]:
        run_env.pop("DASHSCOPE_API_KEY")
    got, err = closed_stdout([SCRIPTS / argv[0], *argv[1:]], run_env, project)
    assert got == code, err
    if code == 0:
        assert err.strip() == "" or err.startswith("custom OSS"), err
    assert "Exception ignored" not in err and "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.slow
def test_demo_and_update_check_keep_exit_code_zero_when_stdout_closes(env, project, tmp_path):
    got, err = closed_stdout([SCRIPTS / "demo.py", "--sandbox"], dict(env, TMPDIR=str(tmp_path)), project)
    assert got == 0 and "Exception ignored" not in err and "Traceback" not in err, err
    check = UPDATE_SKILL / "scripts" / "check_update.py"
    got, err = closed_stdout([check, "--print-response"], dict(env, QWEN_SKILLS_STATE=str(tmp_path / "s.json")),
                             project)
    assert (got, err) == (0, "")


def test_a_non_ascii_file_name_on_a_cp1252_console_still_prints_its_url(sb, env, project):
    """The upload succeeds and its URL reaches stdout exactly: temporary-storage names are ASCII (u7167 for
    照), so a console that cannot show the character gets a URL that still names the object."""
    (project / "照片.png").write_bytes(PNG_HEAD + b"legacy console")
    run_env = dict(sandbox_env(env, sb), PYTHONIOENCODING="cp1252")
    done = subprocess.run([sys.executable, str(SCRIPTS / "upload_file.py"), "照片.png", "--model", "qwen-vl-plus"],
                          env=run_env, cwd=project, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("cp1252")
    url = out.strip()
    assert url.startswith("oss://") and url.endswith("_u7167u7247.png") and "\\" not in url
    status, _ = chat(sb, [url], RESOLVE)
    assert status == 200   # the printed URL is the object's
    assert b"UnicodeEncodeError" not in done.stderr and b"internal error" not in done.stderr
    # --json is ASCII whatever the console, and gives the exact URL back
    done = subprocess.run([sys.executable, str(SCRIPTS / "upload_file.py"), "照片.png", "--model", "qwen-vl-plus",
                           "--json"], env=run_env, cwd=project, capture_output=True, timeout=120)
    assert done.returncode == 0
    record = json.loads(done.stdout)
    assert record["url"].startswith("oss://") and record["url"].endswith("_u7167u7247.png")


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_doctor_and_setup_keep_every_line_and_exit_code_on_a_legacy_console(env, tmp_path, encoding):
    """A project path the console cannot show: each line still arrives (escaped) with the documented code."""
    project = tmp_path / "项目"
    project.mkdir()
    run_env = dict(env, PYTHONIOENCODING=encoding)
    steps = ((["setup_env.py"], 0), (["doctor.py", "--offline"], 3), (["doctor.py", "--offline", "--json"], 3),
             (["gossamer.py", "--status"], 0))
    for argv, code in steps:
        done = subprocess.run([sys.executable, str(SCRIPTS / argv[0]), *argv[1:]], env=run_env, cwd=project,
                              capture_output=True, timeout=120)
        out = done.stdout.decode(encoding)
        assert done.returncode == code and b"internal error" not in done.stderr and b"Traceback" not in done.stderr
        if argv[-1] == "--json":
            assert json.loads(out)["key_source"].endswith(os.path.join("项目", ".env"))   # exact once parsed
        elif argv[0] != "gossamer.py":
            assert "\\u9879\\u76ee" in out and (argv[0] != "doctor.py" or "result: not ready (exit 3)" in out)
