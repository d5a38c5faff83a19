"""references/settings.md lists every flag of every installed script, and no flag a script does not have; the
development-only scripts (demo.py, sandbox.py: not in the release tree) are listed in README.md instead."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, SCRIPTS, UPDATE_SKILL

SCRIPTS_ALL = sorted([*SCRIPTS.glob("*.py"), UPDATE_SKILL / "scripts" / "check_update.py"], key=lambda p: p.name)
sys.path.insert(0, str(ROOT / "release"))
import build  # noqa: E402

SHIPPED = {p.name for p in SCRIPTS_ALL if build.destination(p.relative_to(ROOT).as_posix())}
# an option line of argparse's help: two spaces, then the option (continuation lines are indented further)
OPTION = re.compile(r"(?m)^  (?:-\w, )?(--[a-z][a-z0-9-]*)")


def documented(doc: str = "references/settings.md", heading: str = "## Scripts and flags") -> dict:
    """script name -> the flags its section under ``heading`` names (up to the next ``## `` heading)."""
    text = (ROOT / doc).read_text().split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    sections = re.split(r"(?m)^### `([\w.]+)`", text)[1:]
    return {name: set(re.findall(r"`(--[a-z][a-z0-9-]*)", body)) for name, body in zip(sections[::2], sections[1::2])}


def help_flags(script) -> set:
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, COLUMNS="200"))
    assert done.returncode == 0, done.stderr
    return set(OPTION.findall(done.stdout)) - {"--help"}


INSTALLED = documented()
DEVELOPMENT = documented("README.md", "## Development scripts and flags")


def test_every_script_has_a_section_where_its_users_read():
    assert sorted(INSTALLED) == sorted(SHIPPED) and {"probe.py", "check_update.py"} <= SHIPPED
    assert sorted(DEVELOPMENT) == sorted(p.name for p in SCRIPTS_ALL if p.name not in SHIPPED) == ["demo.py",
                                                                                                   "sandbox.py"]


@pytest.mark.parametrize("script", SCRIPTS_ALL, ids=lambda p: p.name)
def test_flags_match_the_help(script):
    doc = "references/settings.md" if script.name in SHIPPED else "README.md"
    have, listed = help_flags(script), (INSTALLED if script.name in SHIPPED else DEVELOPMENT).get(script.name, set())
    assert not have - listed, f"{doc} does not list {sorted(have - listed)} of {script.name}"
    assert not listed - have, f"{doc} lists {sorted(listed - have)}, which {script.name} lacks"


def test_the_matcher_can_fail():
    assert OPTION.findall("options:\n  -h, --help  x\n  --json  y\n                 --not-an-option here\n") == [
        "--help", "--json"]
