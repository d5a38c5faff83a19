"""references/settings.md lists every flag of every script, and no flag a script does not have."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, SCRIPTS, UPDATE_SKILL

SCRIPTS_ALL = sorted([*SCRIPTS.glob("*.py"), UPDATE_SKILL / "scripts" / "check_update.py"], key=lambda p: p.name)
# an option line of argparse's help: two spaces, then the option (continuation lines are indented further)
OPTION = re.compile(r"(?m)^  (?:-\w, )?(--[a-z][a-z0-9-]*)")


def documented() -> dict:
    """script name -> the flags its section of "Scripts and flags" names."""
    text = (ROOT / "references" / "settings.md").read_text().split("## Scripts and flags", 1)[1]
    sections = re.split(r"(?m)^### `([\w.]+)`", text)[1:]
    return {name: set(re.findall(r"`(--[a-z][a-z0-9-]*)", body)) for name, body in zip(sections[::2], sections[1::2])}


def help_flags(script) -> set:
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, COLUMNS="200"))
    assert done.returncode == 0, done.stderr
    return set(OPTION.findall(done.stdout)) - {"--help"}


DOCUMENTED = documented()


def test_every_script_has_a_section():
    assert sorted(DOCUMENTED) == sorted(p.name for p in SCRIPTS_ALL)


@pytest.mark.parametrize("script", SCRIPTS_ALL, ids=lambda p: p.name)
def test_flags_match_the_help(script):
    have, listed = help_flags(script), DOCUMENTED.get(script.name, set())
    assert not have - listed, f"references/settings.md does not list {sorted(have - listed)} of {script.name}"
    assert not listed - have, f"references/settings.md lists {sorted(listed - have)}, which {script.name} lacks"


def test_the_matcher_can_fail():
    assert OPTION.findall("options:\n  -h, --help  x\n  --json  y\n                 --not-an-option here\n") == [
        "--help", "--json"]
