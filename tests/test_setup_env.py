"""setup_env.py never harms an existing .env; new files are 0600; idempotent."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SCRIPTS, assert_clean_error, run_script
from qianwen_ops.credentials import PLACEHOLDER, STANDARD, Secret
from qianwen_ops.envfile import PLACEHOLDER_LINE, setup_env


def test_creates_placeholder_0600_and_is_idempotent(env, project):
    first = run_script("setup_env.py", env=env, cwd=project)
    assert first.code == 0
    data = (project / ".env").read_bytes()
    assert data == (PLACEHOLDER_LINE + "\n").encode()
    assert stat.S_IMODE(os.stat(project / ".env").st_mode) == 0o600
    assert first.out.strip().splitlines()[-1].startswith("Next: open .env and replace sk-your-key-here")
    assert "https://platform.qianwenai.com/home/api-keys" in first.out
    second = run_script("setup_env.py", env=env, cwd=project)
    assert second.code == 0 and (project / ".env").read_bytes() == data


def test_appends_without_breaking_the_last_line(env, project):
    (project / ".env").write_bytes(b"OTHER=1\r\nLAST=2")
    run_script("setup_env.py", env=env, cwd=project)
    assert (project / ".env").read_bytes() == b"OTHER=1\r\nLAST=2\r\n" + PLACEHOLDER_LINE.encode() + b"\r\n"


def test_dry_run_changes_nothing(env, project):
    result = run_script("setup_env.py", "--dry-run", env=env, cwd=project)
    assert result.code == 0 and "would create" in result.out and not (project / ".env").exists()


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


def test_gitignore_added_only_when_needed(env, project):
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    run_script("setup_env.py", env=env, cwd=project)
    assert (project / ".gitignore").read_text() == ".env\n"
    check = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=project)
    assert check.returncode == 0
    run_script("setup_env.py", env=env, cwd=project)
    assert (project / ".gitignore").read_text() == ".env\n"


def test_gitignore_untouched_when_already_ignored(env, project):
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    (project / ".gitignore").write_bytes(b"*.env\n.env\n# mine")
    run_script("setup_env.py", env=env, cwd=project)
    assert (project / ".gitignore").read_bytes() == b"*.env\n.env\n# mine"


def test_from_stdin_replaces_placeholder_in_place(env, project):
    (project / ".env").write_bytes(b"A=1\r\nexport DASHSCOPE_API_KEY=sk-your-key-here # fill me\r\nB=2\r\n")
    result = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin="sk-Rl9-Vx2-real\n")
    assert result.code == 0 and "sk-Rl9" not in result.out + result.err
    assert (project / ".env").read_bytes() == b"A=1\r\nexport DASHSCOPE_API_KEY=sk-Rl9-Vx2-real\r\nB=2\r\n"
    again = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin="sk-Other-9zz\n")
    assert again.code == 12 and b"sk-Rl9-Vx2-real" in (project / ".env").read_bytes()


def test_from_stdin_refuses_bad_keys(env, project):
    for bad in ("", "sk-your-key-here", "Bearer sk-abc"):
        result = run_script("setup_env.py", "--from-stdin", env=env, cwd=project, stdin=bad + "\n")
        assert result.code == 3
    assert not (project / ".env").exists()


def test_key_never_on_argv():
    text = (SCRIPTS / "setup_env.py").read_text()
    assert "--key" not in text and "sys.argv" not in text


_lines = st.lists(st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from(["# comment", "export A=1", "A='x y'", 'B="q"', "", "  "])), max_size=6)
_key_line = st.sampled_from([
    "DASHSCOPE_API_KEY=sk-your-key-here", "DASHSCOPE_API_KEY=sk-real-abc123", "export QIANWEN_API_KEY='sk-a1'",
    'DASHSCOPE_API_KEY="sk-b2"', "DASHSCOPE_API_KEY=", "  DASHSCOPE_API_KEY = sk-c3  # mine",
    "DASHSCOPE_API_KEY=\"unterminated",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=_lines, key=_key_line, after=_lines, newline=st.sampled_from(["\n", "\r\n"]),
       trailing=st.booleans())
def test_existing_key_line_means_byte_identical(tmp_path_factory, before, key, after, newline, trailing):
    folder = tmp_path_factory.mktemp("prop")
    data = (newline.join([*before, key, *after]) + (newline if trailing else "")).encode("utf-8")
    (folder / ".env").write_bytes(data)
    setup_env(Path(folder))
    assert (folder / ".env").read_bytes() == data


@settings(max_examples=100, deadline=None)
@given(before=_lines, newline=st.sampled_from(["\n", "\r\n"]))
def test_without_key_line_original_bytes_are_kept_as_prefix(tmp_path_factory, before, newline):
    folder = tmp_path_factory.mktemp("prop")
    data = newline.join(before).encode("utf-8")
    (folder / ".env").write_bytes(data)
    try:
        report = setup_env(Path(folder))
    except Exception:  # e.g. generated text that is not a valid .env is refused untouched
        assert (folder / ".env").read_bytes() == data
        return
    result = (folder / ".env").read_bytes()
    assert result.startswith(data)
    if report.key_state == PLACEHOLDER:
        assert result.rstrip(b"\r\n").endswith(PLACEHOLDER_LINE.encode())


def test_library_reports_state(tmp_path):
    (tmp_path / ".env").write_text("DASHSCOPE_API_KEY=sk-your-key-here\n")
    assert setup_env(tmp_path, key=Secret("sk-Lib-7q-key")).key_state == STANDARD
    assert (tmp_path / ".env").read_text() == "DASHSCOPE_API_KEY=sk-Lib-7q-key\n"
