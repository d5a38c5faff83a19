"""File I/O that works on Windows too, in-process: no POSIX-only call on a required path, locks through
msvcrt where fcntl is missing, renames retried while another handle holds the file, and every open
binary-safe (checked in the source, so a new one cannot slip in).

On Windows the real msvcrt is used; elsewhere the Windows layer's msvcrt stand-in (tests/winshim), which
keeps Windows' rules: a byte range from the current position, per handle.
"""

from __future__ import annotations

import ast
import errno
import importlib.util
import os
import threading
from pathlib import Path

import pytest

from conftest import ROOT, WINDOWS, mode_is
from qianwen_ops import fsutil, skill_state


def msvcrt_api():
    """("msvcrt", module) as fsutil takes it: the real one on Windows, the Windows layer's stand-in elsewhere."""
    if WINDOWS:
        import msvcrt

        return "msvcrt", msvcrt
    import fcntl

    spec = importlib.util.spec_from_file_location("windows_semantics", ROOT / "tests" / "winshim" / "sitecustomize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # defines the stand-in; installs nothing (its name is not sitecustomize)
    return "msvcrt", module.Msvcrt(fcntl)


# ------------------------------------------------------------------ POSIX-only calls have fallbacks

def test_replace_file_without_fchmod_sets_the_exact_mode(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "fchmod", raising=False)   # Windows before Python 3.13
    target = tmp_path / "f.env"
    target.write_bytes(b"old\r\n")
    fsutil.replace_file(target, b"new\r\n\x1a\n", mode=0o640)
    assert target.read_bytes() == b"new\r\n\x1a\n" and mode_is(target, 0o640)
    assert list(tmp_path.iterdir()) == [target]


def test_read_at_without_pread(tmp_path, monkeypatch):
    path = tmp_path / "data"
    path.write_bytes(b"0123456789\r\n\x1a")
    monkeypatch.delattr(os, "pread", raising=False)    # Windows has no os.pread
    fd = os.open(path, os.O_RDONLY | fsutil.O_BINARY)
    try:
        assert fsutil.read_at(fd, 4, 3) == b"3456" and fsutil.read_at(fd, 10, 10) == b"\r\n\x1a"
        assert fsutil.read_at(fd, 2, 0) == b"01"
    finally:
        os.close(fd)


# ------------------------------------------------------------------ locks

def test_msvcrt_lock_excludes_another_handle_and_always_unlocks_its_first_byte(tmp_path):
    api = msvcrt_api()
    path = tmp_path / "x.lock"
    first, second = fsutil.FileLock(path, api), fsutil.FileLock(path, api)
    try:
        with first:
            os.lseek(first._fd, 7, os.SEEK_SET)             # wherever the handle is, the lock is byte 0
            assert fsutil.try_lock(second._fd, api) is False
        assert fsutil.try_lock(second._fd, api) is True   # released by the with block
        fsutil.unlock(second._fd, api)
    finally:
        first.close()
        second.close()


def test_msvcrt_file_lock_waits_for_the_holder(tmp_path):
    api = msvcrt_api()
    path = tmp_path / "x.lock"
    holder, waiter = fsutil.FileLock(path, api), fsutil.FileLock(path, api)
    order = []
    holder.__enter__()
    thread = threading.Thread(target=lambda: (waiter.__enter__(), order.append("waiter"), waiter.__exit__()))
    try:
        thread.start()
        order.append("holder")
        holder.__exit__()
        thread.join(10)
        assert order == ["holder", "waiter"]
    finally:
        holder.close()
        waiter.close()


def test_state_lock_with_msvcrt_times_out_and_releases(tmp_path, monkeypatch):
    _, msvcrt = msvcrt_api()
    monkeypatch.setattr(skill_state, "LOCK_SECONDS", 0.05)
    state = tmp_path / "state.json"
    lock_path = tmp_path / "state.json.lock"
    other = os.open(lock_path, os.O_RDWR | os.O_CREAT | skill_state.O_BINARY)
    try:
        msvcrt.locking(other, msvcrt.LK_NBLCK, 1)          # another process holds the state lock
        with pytest.raises(OSError) as caught, skill_state._lock(state, (None, msvcrt)):
            pass
        assert caught.value.errno == errno.ETIMEDOUT
        msvcrt.locking(other, msvcrt.LK_UNLCK, 1)
        with skill_state._lock(state, (None, msvcrt)):
            os.lseek(other, 0, os.SEEK_SET)
            with pytest.raises(OSError):                   # held by the block...
                msvcrt.locking(other, msvcrt.LK_NBLCK, 1)
        msvcrt.locking(other, msvcrt.LK_NBLCK, 1)          # ...and released after it
        msvcrt.locking(other, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(other)


# ------------------------------------------------------------------ renames blocked by an open handle

def sharing_violation(winerror=32) -> PermissionError:
    exc = PermissionError(errno.EACCES, "The process cannot access the file")
    exc.winerror = winerror
    return exc


@pytest.mark.parametrize("replace", [fsutil.replace_retrying, skill_state._replace])
def test_a_rename_blocked_for_a_moment_is_retried(tmp_path, monkeypatch, replace):
    real, calls = os.replace, []

    def busy_twice(src, dst):
        calls.append(dst)
        if len(calls) <= 2:
            raise sharing_violation()
        real(src, dst)

    monkeypatch.setattr(os, "replace", busy_twice)
    (tmp_path / "new").write_bytes(b"n")
    replace(tmp_path / "new", tmp_path / "old")
    assert len(calls) == 3 and (tmp_path / "old").read_bytes() == b"n"


def test_a_rename_denied_for_good_is_raised(tmp_path, monkeypatch):
    calls = []

    def denied(src, dst, winerror=None):
        calls.append(dst)
        raise sharing_violation(5) if winerror is None else PermissionError(errno.EACCES, "denied")

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(PermissionError):
        fsutil.replace_retrying(tmp_path / "a", tmp_path / "b", seconds=0.05)
    assert len(calls) > 1
    calls.clear()
    monkeypatch.setattr(os, "replace", lambda src, dst: denied(src, dst, winerror=0))
    with pytest.raises(PermissionError):   # a real permission problem (no winerror): raised at once
        fsutil.replace_retrying(tmp_path / "a", tmp_path / "b", seconds=5)
    assert len(calls) == 1


# ------------------------------------------------------------------ every open is binary-safe

def _unsafe_opens(path: Path) -> list:
    """os.open without O_BINARY; open()/fdopen()/Path.open() in text mode, read_text()/write_text(), without an
    encoding (Windows would use the ANSI code page)."""
    found, tree = [], ast.parse(path.read_text(encoding="utf-8"))
    assigned: dict = {}   # flags held in a variable first (flags = ... | O_BINARY; os.open(p, flags))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(ast.unparse(node.value))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, keywords = node.func, {k.arg: k.value for k in node.keywords}
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        if (owner, name) == ("os", "open"):
            flags = node.args[1] if len(node.args) > 1 else keywords.get("flags")
            spelled = [] if flags is None else [ast.unparse(flags)]
            if isinstance(flags, ast.Name):
                spelled += assigned.get(flags.id, [])
            if ast.unparse(node.args[0]) != "os.devnull" and not any("BINARY" in text for text in spelled):
                found.append(f"{node.lineno}: os.open without O_BINARY")
        elif name in ("open", "fdopen"):
            method = isinstance(func, ast.Attribute) and owner not in ("io", "os")   # Path.open(mode)
            mode = (node.args[0] if method else node.args[1]) if len(node.args) > (0 if method else 1) \
                else keywords.get("mode")
            text = "r" if mode is None else (mode.value if isinstance(mode, ast.Constant) else "b")
            if "b" not in text and "encoding" not in keywords:
                found.append(f"{node.lineno}: {name}() in text mode without an encoding")
        elif name in ("read_text", "write_text") and "encoding" not in keywords \
                and len(node.args) < (1 if name == "read_text" else 2):
            found.append(f"{node.lineno}: {name}() without an encoding")
    return found


def test_every_open_in_the_scripts_is_binary_safe():
    found = []
    for path in sorted([*ROOT.glob("scripts/**/*.py"), *ROOT.glob("skills/**/*.py")]):
        name = path.relative_to(ROOT).as_posix()
        found += [f"{name}:{problem}" for problem in _unsafe_opens(path)]
    assert not found, found


def test_the_checker_sees_each_kind_of_unsafe_open(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n"
                      "os.open(p, os.O_RDONLY)\n"
                      "os.open(p, os.O_RDONLY | O_BINARY)\n"
                      "open(p)\nopen(p, 'rb')\nopen(p, 'w', encoding='utf-8')\n"
                      "os.fdopen(fd, 'w')\nos.fdopen(fd, 'wb')\n"
                      "path.read_text()\npath.read_text(encoding='utf-8')\npath.write_text(s)\n"
                      "path.open('a')\npath.open('ab')\n"
                      "flags = os.O_RDONLY | getattr(os, 'O_BINARY', 0)\nos.open(p, flags)\n"
                      "text_flags = os.O_RDONLY\nos.open(p, text_flags)\n", encoding="utf-8")
    assert [line.split(":")[0] for line in _unsafe_opens(sample)] == ["2", "4", "7", "9", "11", "12", "17"]
