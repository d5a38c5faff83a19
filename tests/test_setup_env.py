"""setup_env.py edits exactly the binding in effect, or refuses with the file byte-identical."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import (
    CANARY_KEY,
    SCRIPTS,
    assert_clean_error,
    git,
    leaks,
    mode_is,
    needs_rlimit,
    needs_symlinks,
    run_script,
)
from qianwen_ops.credentials import PLACEHOLDER, STANDARD, Secret, find_api_key
from qianwen_ops.dotenv_editor import PLACEHOLDER_LINE, setup_env
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.settings import Settings

NEW_KEY = "sk-Rl9-Vx2-real"
UNCHANGED = "already sets DASHSCOPE_API_KEY (placeholder); left unchanged"



def key_in_effect(cwd: Path) -> tuple:
    """(status, source, value) the scripts would use, environment left out."""
    found = find_api_key(Settings.from_process(cwd=cwd, env={"HOME": str(cwd)}))
    return found.status, found.source, found.secret.reveal() if found.secret else None


def stdin_key(project: Path, env: dict, data: bytes, key: str = NEW_KEY, cwd: Path | None = None):
    (project / ".env").write_bytes(data)
    return run_script("setup_env.py", "--from-stdin", env=env, cwd=cwd or project, stdin=key + "\n")


# ------------------------------------------------------------------ placeholder (no --from-stdin)

def test_creates_placeholder_0600_and_is_idempotent(env, project):
    first = run_script("setup_env.py", env=env, cwd=project)
    assert first.code == 0
    data = (project / ".env").read_bytes()
    assert data == (PLACEHOLDER_LINE + "\n").encode()
    assert mode_is(project / ".env", 0o600)
    assert first.out.splitlines()[0] == f"created {project / '.env'}: {PLACEHOLDER_LINE}"
    assert first.out.strip().splitlines()[-1].startswith("Next: open .env and replace sk-your-key-here")
    assert "https://platform.qianwenai.com/home/api-keys" in first.out
    second = run_script("setup_env.py", env=env, cwd=project)
    assert second.code == 0 and (project / ".env").read_bytes() == data
    assert second.out.splitlines()[0] == f"{project / '.env'} {UNCHANGED}"


def test_appends_without_breaking_the_last_line(env, project):
    (project / ".env").write_bytes(b"OTHER=1\r\nLAST=2")
    run_script("setup_env.py", env=env, cwd=project)
    assert (project / ".env").read_bytes() == b"OTHER=1\r\nLAST=2\r\n" + PLACEHOLDER_LINE.encode() + b"\r\n"


def test_dry_run_wording_and_changes_nothing(env, project):
    git(project, "init", "-q")
    result = run_script("setup_env.py", "--dry-run", env=env, cwd=project)
    assert result.code == 0 and not (project / ".env").exists() and not (project / ".gitignore").exists()
    assert result.out.splitlines()[:2] == [f"would create {project / '.env'}: {PLACEHOLDER_LINE}",
                                           f"would add .env, /output/qianwen-ops-auth/ to {project / '.gitignore'}"]
    (project / ".env").write_bytes(b"DASHSCOPE_API_KEY=sk-your-key-here\n")
    again = run_script("setup_env.py", "--dry-run", env=env, cwd=project)
    assert again.out.splitlines()[0] == f"{project / '.env'} {UNCHANGED}"
    assert "would " + str(project) not in again.out   # the garbled "would /…/.env already has…" is gone


@needs_symlinks
def test_refuses_symlink(env, project, tmp_path):
    target = tmp_path / "elsewhere.env"
    target.write_bytes(b"X=1\n")
    (project / ".env").symlink_to(target)
    result = run_script("setup_env.py", env=env, cwd=project)
    assert result.code == 12 and target.read_bytes() == b"X=1\n"
    assert_clean_error(result)


def test_refuses_directory_named_env(env, project):
    (project / ".env").mkdir()
    result = run_script("setup_env.py", env=env, cwd=project)
    assert result.code == 12
    assert_clean_error(result)


def test_binary_env_is_left_alone(env, project):
    (project / ".env").write_bytes(b"\x00\x01binary")
    result = run_script("setup_env.py", env=env, cwd=project)
    assert result.code == 9 and (project / ".env").read_bytes() == b"\x00\x01binary"
    assert_clean_error(result)


@pytest.mark.parametrize("args", [[], ["--from-stdin"]])
def test_a_utf16_env_is_named_in_one_line_and_left_alone(env, project, args):
    """What PowerShell 5.1's ``echo DASHSCOPE_API_KEY=... > .env`` writes: never rewritten in another encoding."""
    data = "\ufeffDASHSCOPE_API_KEY=sk-your-key-here\r\n".encode("utf-16-le")
    (project / ".env").write_bytes(data)
    result = run_script("setup_env.py", *args, env=env, cwd=project, stdin=NEW_KEY + "\n")
    assert result.code == 9 and (project / ".env").read_bytes() == data
    assert_clean_error(result)
    assert len(result.err.strip().splitlines()) == 1 and "is saved as UTF-16" in result.err
    assert "save it as UTF-8" in result.err and "Rl9-Vx2" not in result.out + result.err


def test_appends_with_the_files_own_line_break(project):
    for before, newline in ((b"A=1\r\nB=2", b"\r\n"), (b"A=1\rB=2\r", b"\r"), (b"A=1\nB=2\r\n", b"\r\n")):
        (project / ".env").write_bytes(before)
        setup_env(project, env={})
        ending = b"" if before.endswith((b"\n", b"\r")) else newline
        assert (project / ".env").read_bytes() == before + ending + PLACEHOLDER_LINE.encode() + newline


def test_key_in_the_environment_means_no_env_file(env, project):
    result = run_script("setup_env.py", env=dict(env, QIANWEN_API_KEY=CANARY_KEY), cwd=project)
    assert result.code == 0 and not (project / ".env").exists()
    assert result.out.splitlines()[0] == ("the key comes from the environment variable QIANWEN_API_KEY; "
                                          "no .env change needed")
    assert not leaks(result.out + result.err)


# ------------------------------------------------------------------ where it writes

def test_subfolder_never_shadows_the_key_at_the_repository_root(env, project):
    git(project, "init", "-q")
    (project / ".env").write_bytes(b"DASHSCOPE_API_KEY=sk-working-root-key1\n")
    sub = project / "app" / "src"
    sub.mkdir(parents=True)
    result = run_script("setup_env.py", env=env, cwd=sub)
    assert result.code == 0 and not (sub / ".env").exists()
    assert (project / ".env").read_bytes() == b"DASHSCOPE_API_KEY=sk-working-root-key1\n"
    assert key_in_effect(sub) == (STANDARD, str(project / ".env"), "sk-working-root-key1")


def test_subfolder_writes_the_project_root_env(env, project):
    git(project, "init", "-q")
    sub = project / "app"
    sub.mkdir()
    (sub / ".env").write_bytes(b"PORT=8080\n")   # the app's own settings, no key: not the place for it
    result = run_script("setup_env.py", env=env, cwd=sub)
    assert result.code == 0 and (sub / ".env").read_bytes() == b"PORT=8080\n"
    assert (project / ".env").read_bytes() == (PLACEHOLDER_LINE + "\n").encode()
    assert key_in_effect(sub)[:2] == (PLACEHOLDER, str(project / ".env"))


def test_from_stdin_in_a_subfolder_edits_the_env_in_effect(env, project):
    git(project, "init", "-q")
    (project / ".env").write_bytes(b"A=1\nDASHSCOPE_API_KEY=sk-your-key-here\n")
    sub = project / "pkg"
    sub.mkdir()
    result = run_script("setup_env.py", "--from-stdin", env=env, cwd=sub, stdin=NEW_KEY + "\n")
    assert result.code == 0 and not (sub / ".env").exists()
    assert (project / ".env").read_bytes() == f"A=1\nDASHSCOPE_API_KEY={NEW_KEY}\n".encode()


def test_never_writes_into_an_installed_skill_folder(env, tmp_path):
    project = tmp_path / "proj"
    skill = project / ".agents" / "skills" / "qianwen-ops-auth"
    shutil.copytree(SCRIPTS, skill / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    (skill / "skills" / "qianwen-update-check").mkdir(parents=True)   # what makes the copy look like a root
    git(project, "init", "-q")
    before = sorted(p.relative_to(skill) for p in skill.rglob("*"))
    done = subprocess.run([sys.executable, str(skill / "scripts" / "setup_env.py")], cwd=skill, env=env,
                          capture_output=True, text=True, timeout=60)
    assert sorted(p.relative_to(skill) for p in skill.rglob("*")) == before
    if done.returncode == 0:   # the project root was found: the .env went there
        assert (project / ".env").read_bytes() == (PLACEHOLDER_LINE + "\n").encode()
    else:
        assert done.returncode == 12 and "installed skill folder" in done.stderr


# ------------------------------------------------------------------ --from-stdin: exactly the binding in effect

@pytest.mark.parametrize("before,after", [
    (b"A=1\r\nexport DASHSCOPE_API_KEY=sk-your-key-here # fill me\r\nB=2\r\n",
     b"A=1\r\nexport DASHSCOPE_API_KEY=" + NEW_KEY.encode() + b"\r\nB=2\r\n"),
    # duplicates: the last one is in effect (the first line used to be replaced, the placeholder stayed in force)
    (b"DASHSCOPE_API_KEY=sk-your-key-here\nX=1\nDASHSCOPE_API_KEY='sk-your-key-here'\n",
     b"DASHSCOPE_API_KEY=sk-your-key-here\nX=1\nDASHSCOPE_API_KEY=" + NEW_KEY.encode() + b"\n"),
    # the alias wins over DASHSCOPE_API_KEY
    (b"DASHSCOPE_API_KEY=sk-your-key-here\nQIANWEN_API_KEY=sk-your-key-here\n",
     b"DASHSCOPE_API_KEY=sk-your-key-here\nQIANWEN_API_KEY=" + NEW_KEY.encode() + b"\n"),
    # a key-looking line inside a quoted value is that value's text: never edited
    (b'HELP="put it like this:\nDASHSCOPE_API_KEY=sk-your-key-here\n"\nDASHSCOPE_API_KEY=sk-your-key-here\n',
     b'HELP="put it like this:\nDASHSCOPE_API_KEY=sk-your-key-here\n"\nDASHSCOPE_API_KEY=' + NEW_KEY.encode() + b"\n"),
    (b'HELP="DASHSCOPE_API_KEY=sk-your-key-here"\n',
     b'HELP="DASHSCOPE_API_KEY=sk-your-key-here"\nDASHSCOPE_API_KEY=' + NEW_KEY.encode() + b"\n"),
    # CRLF inside and around a quoted value: every line break stays as it was
    (b'HELP="like this:\r\nDASHSCOPE_API_KEY=sk-your-key-here\r\n"\r\nDASHSCOPE_API_KEY=sk-your-key-here\r\nZ=1',
     b'HELP="like this:\r\nDASHSCOPE_API_KEY=sk-your-key-here\r\n"\r\nDASHSCOPE_API_KEY=' + NEW_KEY.encode()
     + b"\r\nZ=1"),
    # a BOM no longer hides the key line (it used to get a second one appended)
    (b"\xef\xbb\xbfDASHSCOPE_API_KEY=sk-your-key-here\r\n",
     b"\xef\xbb\xbfDASHSCOPE_API_KEY=" + NEW_KEY.encode() + b"\r\n"),
    (b"DASHSCOPE_API_KEY=\nA=1\nexport ",
     b"DASHSCOPE_API_KEY=\nA=1\nexport \nDASHSCOPE_API_KEY=" + NEW_KEY.encode() + b"\n"),
], ids=["comment-crlf", "duplicates", "alias", "multiline-value", "quoted-only", "multiline-crlf", "bom",
        "empty-and-export"])
def test_from_stdin_replaces_exactly_the_binding_in_effect(project, before, after):
    (project / ".env").write_bytes(before)
    report = setup_env(project, key=Secret(NEW_KEY), env={})   # the script's path, in-process (faster)
    assert report.key_state == STANDARD and report.target == project / ".env"
    assert (project / ".env").read_bytes() == after
    assert key_in_effect(project) == (STANDARD, str(project / ".env"), NEW_KEY)
    assert "Rl9-Vx2" not in "\n".join(report.lines)


@pytest.mark.parametrize("data", [
    b"DASHSCOPE_API_KEY=sk-your-key-here\nDASHSCOPE_API_KEY=sk-working-key-77\n",   # a real key in effect
    b"QIANWEN_API_KEY=sk-working-key-77\nDASHSCOPE_API_KEY=sk-your-key-here\n",     # the alias holds a real key
    b'DASHSCOPE_API_KEY="sk-your-key-here\nA=1\n',                                  # unclosed quote: ambiguous
    b'DASHSCOPE_API_KEY="sk-your-key-here" trailing\n',                             # junk after the value
], ids=["real-last", "real-alias", "unclosed-quote", "junk"])
def test_from_stdin_refuses_with_the_file_byte_identical(env, project, data):
    if data.startswith(b"DASHSCOPE_API_KEY=sk-your"):   # one case through the script: exit code, one line
        result = stdin_key(project, env, data)
        assert result.code == 12 and len(result.err.strip().splitlines()) == 1
        assert_clean_error(result)
        assert "Rl9-Vx2" not in result.out + result.err
    else:
        (project / ".env").write_bytes(data)
        with pytest.raises(QwenOpsError) as refused:
            setup_env(project, key=Secret(NEW_KEY), env={})
        assert refused.value.exit_code == 12 and "\n" not in refused.value.message
        assert "Rl9-Vx2" not in refused.value.message
    assert (project / ".env").read_bytes() == data


def test_unreadable_key_line_is_refused_without_stdin_too(env, project):
    data = b'A=1\nDASHSCOPE_API_KEY="sk-your-key-here\n'
    (project / ".env").write_bytes(data)
    result = run_script("setup_env.py", env=env, cwd=project)
    assert result.code == 12 and (project / ".env").read_bytes() == data
    assert "line 2 sets DASHSCOPE_API_KEY but cannot be read" in result.err


def test_from_stdin_keeps_the_file_mode_and_creates_new_files_0600(env, project):
    (project / ".env").write_bytes(b"DASHSCOPE_API_KEY=sk-your-key-here\n")
    os.chmod(project / ".env", 0o640)
    assert run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin=NEW_KEY + "\n").code == 0
    assert mode_is(project / ".env", 0o640)
    other = project / "other"
    other.mkdir()
    assert run_script("setup_env.py", "--from-stdin", env=env, cwd=other, stdin=NEW_KEY + "\n").code == 0
    assert mode_is(other / ".env", 0o600)
    assert (other / ".env").read_bytes() == f"DASHSCOPE_API_KEY={NEW_KEY}\n".encode()


def test_from_stdin_same_key_again_is_a_no_op_and_another_is_refused(env, project):
    stdin_key(project, env, b"DASHSCOPE_API_KEY=sk-your-key-here\n")
    data = (project / ".env").read_bytes()
    again = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin=NEW_KEY + "\n")
    assert again.code == 0 and "already holds this key" in again.out and (project / ".env").read_bytes() == data
    other = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin="sk-Other-9zz\n")
    assert other.code == 12 and (project / ".env").read_bytes() == data


def test_from_stdin_refuses_bad_keys(env, project):
    for bad in ("", "sk-your-key-here", "Bearer sk-abc", " sk-abc", "\xff\xfe"):
        result = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin=bad + "\n")
        assert result.code == 3, bad
        assert_clean_error(result)
    assert not (project / ".env").exists()


def test_from_stdin_reads_at_most_4_kib(env, project):
    result = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin=CANARY_KEY * 400)
    assert result.code == 2 and not (project / ".env").exists()
    assert_clean_error(result)
    assert len(result.err.strip().splitlines()) == 1 and not leaks(result.out + result.err)


def test_canary_key_is_never_echoed(env, project):
    result = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin=CANARY_KEY + "\n")
    assert result.code == 0 and not leaks(result.out + result.err)
    assert (project / ".env").read_text() == f"DASHSCOPE_API_KEY={CANARY_KEY}\n"
    refused = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin=CANARY_KEY[:-1] + "x\n")
    assert refused.code == 12 and not leaks(refused.out + refused.err)


def test_a_key_on_the_command_line_is_refused_and_not_echoed(env, project):
    for args in (["--key", CANARY_KEY], ["--from-stdin", CANARY_KEY], [CANARY_KEY]):
        result = run_script("setup_env.py", *args, env=env, cwd=project, stdin="")
        assert result.code == 2 and not (project / ".env").exists(), args
        assert not leaks(result.out + result.err), args


def test_from_stdin_refuses_a_env_that_git_tracks(env, project):
    git(project, "init", "-q")
    (project / ".env").write_bytes(b"DASHSCOPE_API_KEY=sk-your-key-here\n")
    subprocess.run(["git", "add", "-f", ".env"], cwd=project, check=True)
    result = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin=NEW_KEY + "\n")
    assert result.code == 12 and "tracked by git" in result.err
    assert "run: git rm --cached .env, then add it to .gitignore" in result.err   # placeholders only: untrack it
    assert (project / ".env").read_bytes() == b"DASHSCOPE_API_KEY=sk-your-key-here\n"


def test_refusing_a_tracked_env_never_advises_untracking_its_redirecting_values(env, project):
    """The advice doctor gives (project_findings.tracked_dotenv_advice): untracking a cloned repository's
    .env would make its base URL trusted, so the editor says to delete those lines instead."""
    git(project, "init", "-q")
    data = b"DASHSCOPE_API_KEY=sk-your-key-here\nQWEN_BASE_URL=https://gateway.example.com\n"
    (project / ".env").write_bytes(data)
    subprocess.run(["git", "add", "-f", ".env"], cwd=project, check=True)
    result = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin=NEW_KEY + "\n")
    assert result.code == 12 and "sets QWEN_BASE_URL" in result.err and "do not just run git rm --cached" in result.err
    assert "run: git rm --cached" not in result.err and (project / ".env").read_bytes() == data
    assert len(result.err.splitlines()) == 1 and not leaks(result.out + result.err)


def test_environment_key_overrides_note(env, project):
    result = run_script("setup_env.py", "--from-stdin", env=dict(env, DASHSCOPE_API_KEY="sk-stale-env-key1"),
                        cwd=project, stdin=NEW_KEY + "\n")
    assert result.code == 0 and (project / ".env").read_text() == f"DASHSCOPE_API_KEY={NEW_KEY}\n"
    assert "note: the environment variable DASHSCOPE_API_KEY is set and overrides .env" in result.out


# ------------------------------------------------------------------ a failed write leaves nothing partial

def _limit_file_size():
    import resource  # POSIX only: the tests using it are marked needs_rlimit

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # a too-large write fails with EFBIG, like ENOSPC
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))


@needs_rlimit
@pytest.mark.parametrize("existing", [None, b"A=1\nDASHSCOPE_API_KEY=sk-your-key-here\n"])
def test_a_write_that_fails_leaves_the_env_as_it_was(env, project, existing):
    if existing is not None:
        (project / ".env").write_bytes(existing)
    args = ["--from-stdin"] if existing else []
    done = subprocess.run([sys.executable, str(SCRIPTS / "setup_env.py"), *args], cwd=project, env=env,
                          input=NEW_KEY + "\n", capture_output=True, text=True, timeout=60,
                          preexec_fn=_limit_file_size)
    assert done.returncode == 12 and "it is unchanged" in done.stderr and "Traceback" not in done.stderr
    if existing is None:
        assert not (project / ".env").exists()          # no 0-byte or partial .env
    else:
        assert (project / ".env").read_bytes() == existing
    assert sorted(p.name for p in project.iterdir()) == ([".env"] if existing else [])   # no temp file left


# ------------------------------------------------------------------ .gitignore

def test_gitignore_created_0644_with_env_and_evidence(env, project):
    git(project, "init", "-q")
    run_script("setup_env.py", env=env, cwd=project)
    assert (project / ".gitignore").read_text() == ".env\n/output/qianwen-ops-auth/\n"
    assert mode_is(project / ".gitignore", 0o644)
    for path in (".env", "output/qianwen-ops-auth/probe.json"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=project).returncode == 0, path
    run_script("setup_env.py", env=env, cwd=project)
    assert (project / ".gitignore").read_text() == ".env\n/output/qianwen-ops-auth/\n"


def test_existing_gitignore_is_only_appended_to_and_keeps_its_mode(env, project):
    git(project, "init", "-q")
    (project / ".gitignore").write_bytes(b"*.env\n.env\n# mine")
    os.chmod(project / ".gitignore", 0o664)
    run_script("setup_env.py", env=env, cwd=project)
    assert (project / ".gitignore").read_bytes() == b"*.env\n.env\n# mine\n/output/qianwen-ops-auth/\n"
    assert mode_is(project / ".gitignore", 0o664)


# ------------------------------------------------------------------ --custom-oss

def test_custom_oss_adds_the_missing_lines(env, project):
    git(project, "init", "-q")
    (project / ".env").write_bytes(b"DASHSCOPE_API_KEY=sk-working-key-77\nQWEN_TMP_OSS_REGION=cn-beijing\n")
    result = run_script("setup_env.py", "--custom-oss", "--bucket", "my-bucket", "--region", "cn-beijing",
                        env=env, cwd=project)
    assert result.code == 0, result.err
    assert (project / ".env").read_bytes() == (
        b"DASHSCOPE_API_KEY=sk-working-key-77\nQWEN_TMP_OSS_REGION=cn-beijing\nQWEN_TMP_OSS_BUCKET=my-bucket\n"
        b"QWEN_TMP_OSS_AK_ID=your-accesskey-id\nQWEN_TMP_OSS_AK_SECRET=your-accesskey-secret\n")
    assert "replace your-accesskey-id and your-accesskey-secret" in result.out
    assert subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=project).returncode == 0
    again = run_script("setup_env.py", "--custom-oss", "--bucket", "my-bucket", "--region", "cn-beijing",
                       env=env, cwd=project)
    assert again.code == 0 and (project / ".env").read_bytes().count(b"QWEN_TMP_OSS_BUCKET") == 1


def test_custom_oss_new_file_is_0600_and_real_access_keys_are_kept(env, project):
    result = run_script("setup_env.py", "--custom-oss", "--bucket", "b-1", "--region", "cn-hangzhou",
                        env=dict(env, QWEN_TMP_OSS_AK_ID="LTAI-x", QWEN_TMP_OSS_AK_SECRET="s"), cwd=project)
    assert result.code == 0 and mode_is(project / ".env", 0o600)
    assert (project / ".env").read_text() == "QWEN_TMP_OSS_BUCKET=b-1\nQWEN_TMP_OSS_REGION=cn-hangzhou\n"
    assert "your-accesskey" not in result.out


def test_custom_oss_never_changes_another_bucket(env, project):
    data = b"QWEN_TMP_OSS_BUCKET=theirs\n"
    (project / ".env").write_bytes(data)
    result = run_script("setup_env.py", "--custom-oss", "--bucket", "mine", "--region", "cn-beijing",
                        env=env, cwd=project)
    assert result.code == 12 and (project / ".env").read_bytes() == data
    assert_clean_error(result)


@pytest.mark.parametrize("args", [
    ["--custom-oss"], ["--custom-oss", "--bucket", "Bad_Bucket", "--region", "cn-beijing"],
    ["--custom-oss", "--bucket", "ok-bucket", "--region", "not a region"], ["--bucket", "ok-bucket"],
    ["--custom-oss", "--from-stdin", "--bucket", "ok-bucket", "--region", "cn-beijing"]])
def test_custom_oss_bad_arguments(env, project, args):
    result = run_script("setup_env.py", *args, env=env, cwd=project, stdin="")
    assert result.code == 2 and not (project / ".env").exists()
    assert_clean_error(result)


def test_library_reports_state(tmp_path):
    (tmp_path / ".env").write_text("DASHSCOPE_API_KEY=sk-your-key-here\n")
    report = setup_env(tmp_path, key=Secret("sk-Lib-7q-key"), env={})
    assert report.key_state == STANDARD and report.target == tmp_path / ".env"
    assert (tmp_path / ".env").read_text() == "DASHSCOPE_API_KEY=sk-Lib-7q-key\n"



@pytest.mark.skipif(shutil.which("bash") is None, reason="the recipe is for bash")
def test_the_from_stdin_recipe_in_the_help_works_as_written(env, project):
    """The bash line --help and references/settings.md give: the key typed at read's hidden prompt (here: on
    bash's stdin) reaches .env, and is on no command line (printf is a builtin)."""
    from conftest import ROOT

    help_text = run_script("setup_env.py", "--help", env=env, cwd=project).out
    [recipe] = [line.split("bash, zsh:", 1)[1].strip() for line in help_text.splitlines() if "bash, zsh:" in line]
    assert recipe in (ROOT / "references" / "settings.md").read_text()
    command = recipe.replace("<skill-dir>", str(ROOT)).replace("python3 ", f"{sys.executable} ", 1)
    (project / ".env").write_text("DASHSCOPE_API_KEY=sk-your-key-here\n")
    done = subprocess.run(["bash", "-c", command], input=NEW_KEY + "\n", env=env, cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (project / ".env").read_text() == f"DASHSCOPE_API_KEY={NEW_KEY}\n"
    assert NEW_KEY not in done.stdout + done.stderr and NEW_KEY not in command
