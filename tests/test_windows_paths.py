"""Windows paths without Windows: file:// URIs and paths read with ntpath/nturl2path semantics (drive letters,
UNC, ``~``), the interpreter named in hints, and doctor's .env permission finding where mode bits mean nothing.
"""

from __future__ import annotations

import ntpath
import nturl2path
import os
import posixpath
import sys
from pathlib import Path

import pytest

from qianwen_ops import project_findings, skill_paths
from qianwen_ops.errors import QwenOpsError
from qianwen_ops.local_files import local_path_text

HOME = "C:\\Users\\Lin Wei"


@pytest.mark.parametrize("source,expected", [
    ("file:///C:/photos/cat.png", "C:\\photos\\cat.png"),
    ("file:///c:/photos/cat.png", "C:\\photos\\cat.png"),
    ("file:/C:/photos/cat.png", "C:\\photos\\cat.png"),
    ("file://localhost/C:/photos/cat.png", "C:\\photos\\cat.png"),
    ("file:///C|/photos/cat.png", "C:\\photos\\cat.png"),
    ("file://C:/photos/cat.png", "C:\\photos\\cat.png"),                  # a common misspelling
    ("file:///D:/My%20Photos/%E7%8C%AB.png", "D:\\My Photos\\猫.png"),
    ("file://server/share/photos/cat.png", "\\\\server\\share\\photos\\cat.png"),   # UNC
    ("file:////server/share/cat.png", "\\\\server\\share\\cat.png"),                 # UNC, empty host
    ("file://~/cat.png", HOME + "\\cat.png"),
    ("~\\photos\\cat.png", HOME + "\\photos\\cat.png"),
    ("~/photos/cat.png", HOME + "\\photos/cat.png"),
    ("~", HOME),
    ("C:\\photos\\cat.png", "C:\\photos\\cat.png"),
    ("C:/photos/cat.png", "C:/photos/cat.png"),
    ("C://photos/cat.png", "C://photos/cat.png"),            # a drive, not a URL scheme "c"
    ("\\\\server\\share\\cat.png", "\\\\server\\share\\cat.png"),
    ("photos\\cat.png", "photos\\cat.png"),
])
def test_windows_inputs(source, expected):
    assert local_path_text(source, home=HOME, pathmod=ntpath) == expected


def test_drive_letter_uris_follow_url2pathname():
    for path in ("/C:/x/y.png", "/C|/x/y.png", "/C:/a%20b/%C3%A9.png", "//server/share/x.png"):
        assert local_path_text("file://" + path, pathmod=ntpath) == nturl2path.url2pathname(path)


@pytest.mark.parametrize("path", ["C:\\photos\\cat.png", "D:\\My Photos\\猫 #1.png", "\\\\server\\share\\x.png"])
def test_a_windows_path_round_trips_through_its_file_uri(path):
    uri = "file:" + nturl2path.pathname2url(path)
    assert local_path_text(uri, pathmod=ntpath) == path


@pytest.mark.parametrize("source,words", [
    ("file://server/share/x.png", "remote host"),
    ("file:///C:/x.png?size=1", "query or fragment"),
    ("file://", "no path"),
    ("ftp://example.com/x.png", "unsupported URL scheme"),
])
def test_posix_refusals_stay(source, words):
    with pytest.raises(QwenOpsError, match=words):
        local_path_text(source, home="/home/lin", pathmod=posixpath)


@pytest.mark.parametrize("source,words", [
    ("file:///C:/x.png#frag", "query or fragment"),
    ("file://server", "no path"),
    ("file:///C:/a/D:/b", "not a valid Windows file:// URI"),
    ("ftp://example.com/x.png", "unsupported URL scheme"),
    ("C:\\x\x00.png", "NUL byte"),
])
def test_windows_refusals(source, words):
    with pytest.raises(QwenOpsError, match=words):
        local_path_text(source, home=HOME, pathmod=ntpath)


def test_posix_inputs_unchanged():
    assert local_path_text("file:///tmp/a%20b.png", pathmod=posixpath) == "/tmp/a b.png"
    assert local_path_text("file://localhost/tmp/x", pathmod=posixpath) == "/tmp/x"
    assert local_path_text("file://~/x.png", home="/home/lin", pathmod=posixpath) == "/home/lin/x.png"
    assert local_path_text("~/x.png", home="/home/lin", pathmod=posixpath) == "/home/lin/x.png"
    assert local_path_text("~\\x.png", home="/home/lin", pathmod=posixpath) == posixpath.expanduser("~\\x.png")


# ------------------------------------------------------------------ the interpreter a hint names

def fake_python(folder: Path, name: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n", encoding="utf-8")
    path.chmod(0o755)
    return str(path)


@pytest.mark.skipif(os.name == "nt", reason="builds POSIX executables; the Windows spelling is tested below")
def test_the_interpreter_is_named_as_the_user_can_type_it(tmp_path):
    venv_bin, system_bin = tmp_path / "proj" / ".venv" / "bin", tmp_path / "usr" / "bin"
    venv_python = fake_python(venv_bin, "python")
    fake_python(system_bin, "python")
    system_python3 = fake_python(system_bin, "python3")
    path = os.pathsep.join([str(system_bin)])
    assert skill_paths.python_command(system_python3, path, windows=False) == "python3"
    assert skill_paths.python_command(venv_python, path, windows=False) == venv_python   # not on PATH: its path
    activated = os.pathsep.join([str(venv_bin), str(system_bin)])
    assert skill_paths.python_command(venv_python, activated, windows=False) == "python"
    assert skill_paths.python_command(system_python3, os.pathsep.join([str(tmp_path / "nowhere")]), windows=False) \
        == system_python3
    spaced = fake_python(tmp_path / "my tools", "python3")
    assert skill_paths.python_command(spaced, path, windows=False) == f"'{spaced}'"
    assert skill_paths.python_command("", path, windows=False) == "python3"


def test_the_windows_spelling(tmp_path):
    folder = tmp_path / "Python312"
    exe = fake_python(folder, "python.exe")
    assert skill_paths.python_command(exe, str(folder), windows=True) == "python"        # `python`, as typed
    shown = skill_paths.python_command(exe, "", windows=True)                             # not on PATH
    assert shown == exe.replace("\\", "/") or shown == f'"{exe}"'.replace("\\", "/")
    assert skill_paths.python_command("C:\\Program Files\\Python312\\python.exe", "", windows=True) \
        == '"C:/Program Files/Python312/python.exe"'
    assert skill_paths.python_command("C:\\Python39\\python.exe", "", windows=True) == "C:/Python39/python.exe"
    assert skill_paths.python_command("", "", windows=True) == "python"


def test_hints_name_the_interpreter_that_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", "/opt/py/bin/python3.12")
    assert skill_paths.script_command("probe.py", cwd=tmp_path).startswith("/opt/py/bin/python3.12 ")
    assert skill_paths.script_command("probe.py", cwd=skill_paths.SKILL_DIR) == \
        "/opt/py/bin/python3.12 scripts/probe.py"


# ------------------------------------------------------------------ .env permissions where mode bits mean nothing

def test_windows_finding_is_an_icacls_hint_outside_the_profile_never_chmod(tmp_path):
    home = tmp_path / "Users" / "lin"
    inside, outside = home / "proj" / ".env", tmp_path / "code" / "proj" / ".env"
    assert project_findings._windows_access_findings(inside, home) == []
    (name, state, detail), = project_findings._windows_access_findings(outside, home)
    assert (name, state) == (".env permissions", "info")
    assert f'icacls "{outside}"' in detail and "chmod" not in detail and str(home) in detail


def test_no_chmod_advice_where_mode_bits_mean_nothing(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("X=1\n", encoding="utf-8")
    os.chmod(dotenv, 0o644)   # on Windows every file reads as 0o666 (or 0o444): always "readable by others"
    monkeypatch.setattr(project_findings, "posix_permissions", lambda: False)
    assert project_findings._dotenv_findings(dotenv, tmp_path, in_git=False, home=tmp_path) == []
    elsewhere = tmp_path / "elsewhere"
    assert [f[1] for f in project_findings._dotenv_findings(dotenv, tmp_path, in_git=False, home=elsewhere)] == ["info"]
