"""The documents an agent acts on stay true: links, URLs, commands, flags, scenarios."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, UPDATE_SKILL, run_script, sandbox_env

TRACKED = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
MARKDOWN = [ROOT / f for f in TRACKED if f.endswith(".md")]
SKILL_DOCS = [ROOT / "SKILL.md", ROOT / "agent-compatibility.md", *sorted((ROOT / "references").glob("*.md")),
              *sorted((ROOT / "skills").glob("*/SKILL.md"))]
URL = re.compile(r"https?://[A-Za-z0-9][^\s)<>\]`'\"|*]*")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def frontmatter(path: Path) -> dict:
    text = path.read_text()
    block = text.split("---", 2)[1]
    fields, key = {}, None
    for line in block.strip().splitlines():
        if line.startswith("  ") and key:
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    for target in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:", "#", "file://")):
            continue
        assert (doc.parent / target.split("#")[0]).exists(), f"{doc.name}: broken link {target}"


def test_every_absolute_url_is_in_sources():
    allowed = set(URL.findall((ROOT / "references" / "sources.md").read_text()))
    for doc in SKILL_DOCS:
        for url in URL.findall(doc.read_text()):
            url = url.rstrip(".,;:")
            assert url in allowed, f"{doc.relative_to(ROOT)} uses {url}, which is not in references/sources.md"


def test_sources_lists_each_url_once_and_says_manual_only():
    text = (ROOT / "references" / "sources.md").read_text()
    urls = URL.findall(text)
    assert len(urls) == len(set(urls)) and "manual lookup only" in text.lower()


# A script as the documents name it: by the skill's folder (``<skill-dir>/``, or an installed path such as
# ``.agents/skills/qianwen-ops-auth/``), or bare ``scripts/...`` in a checkout or in the sibling's own SKILL.md.
SKILL_PREFIX = r"(?:<skill-dir>/|(?:\.agents|\.claude)/skills/qianwen-ops-auth/)?"
COMMAND = re.compile(r"python3 (" + SKILL_PREFIX + r"(?:\.\./qianwen-update-check/)?scripts/[\w]+\.py)([^`\n|]*)")


def checkout_path(script: str, base: Path = ROOT) -> Path:
    """Where a documented script lives in this checkout (the installed sibling is skills/ here)."""
    script = re.sub(r"^" + SKILL_PREFIX, "", script)
    if script.startswith("../qianwen-update-check/"):
        return ROOT / "skills" / script[3:]
    return base / script


def quoted_commands():
    found = []
    for doc in [ROOT / "README.md", *SKILL_DOCS]:
        base = UPDATE_SKILL if doc.parent == UPDATE_SKILL else ROOT
        for script, rest in COMMAND.findall(doc.read_text()):
            found.append((doc.relative_to(ROOT), checkout_path(script, base), re.findall(r"--[a-z][a-z-]*", rest)))
    return found


@pytest.mark.parametrize("doc,script,flags", quoted_commands(), ids=lambda v: str(v) if not isinstance(v, list) else "")
def test_quoted_commands_exist_with_their_flags(doc, script, flags):
    assert script.resolve().is_file(), f"{doc}: {script} does not exist"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for flag in flags:
        assert flag in done.stdout, f"{doc}: {script.name} has no {flag}"


def test_skill_md_runs_everything_from_the_project_by_the_skill_path():
    text = (ROOT / "SKILL.md").read_text()
    commands = re.findall(r"python3 (\S+\.py)", text)
    assert commands and all(c.startswith("<skill-dir>/") for c in commands), commands
    assert "folder holding this SKILL.md" in text and "from the user's project root" in text
    self_check = (ROOT / "agent-compatibility.md").read_text().split("## Self-check")[1]
    assert "From the skill's folder" not in self_check and "From the user's project root" in self_check


def test_skill_md_is_short():
    assert len((ROOT / "SKILL.md").read_text().split()) < 1000


def test_no_real_looking_keys_anywhere():
    pattern = re.compile(r"sk-[A-Za-z0-9]{24,}")
    for name in TRACKED:
        path = ROOT / name
        if path.is_file() and path.stat().st_size < 2_000_000:
            assert not pattern.search(path.read_text(errors="replace")), name


def test_skill_sizes_and_fields():
    assert len((ROOT / "SKILL.md").read_text().splitlines()) < 500
    for skill in (ROOT / "SKILL.md", *(ROOT / "skills").glob("*/SKILL.md")):
        fields = frontmatter(skill)
        assert 0 < len(fields["description"]) <= 1024 and len(fields.get("compatibility", "")) <= 500
        assert set(fields) <= {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
    assert frontmatter(ROOT / "SKILL.md")["name"] == "qianwen-ops-auth"
    assert "Python 3.9" in frontmatter(ROOT / "SKILL.md")["compatibility"]


def test_both_skills_pass_the_validator(tmp_path):
    validator = shutil.which("agentskills", path=os.path.dirname(sys.executable))
    assert validator, "agentskills (PyPI skills-ref) must be installed by tests/run.sh"
    copy = tmp_path / "qianwen-ops-auth"
    copy.mkdir()
    shutil.copy(ROOT / "SKILL.md", copy / "SKILL.md")
    for folder in (copy, *(ROOT / "skills").glob("*/")):
        done = subprocess.run([validator, "validate", str(folder)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_exit_codes_and_the_json_error_shape_are_stated_once_and_match_the_code():
    """references/settings.md holds the one table of exit codes and --json names (errors.py's); README.md and
    SKILL.md link to it instead of repeating it, and neither restates the JSON error shape."""
    from qianwen_ops.errors import ERROR_NAMES, EXIT_CODES

    text = (ROOT / "references" / "settings.md").read_text().split("## Exit codes and JSON errors")[1].split("\n## ")[0]
    table = re.findall(r"^\| (\d+) \|([^|]*)\|[^|]*\|$", text, re.M)
    rows = {int(code): name.strip().strip("`") for code, name in table}
    assert rows == {code: ERROR_NAMES.get(code, "") for code in EXIT_CODES}
    assert '{"error": {"code": "<stable name>", "message": "<one line>", "exit_code": N}}' in text
    for doc in ("README.md", "SKILL.md"):
        body = (ROOT / doc).read_text()
        assert "references/settings.md" in body, doc
        assert not re.search(r"^\| ?1[0-2] ?\|", body, re.M) and "9 configuration" not in body, doc
        assert '{"error": {' not in body, doc


# ------------------------------------------------------------------ scenario walkthroughs
# The situations table is the contract: each row's command, run from the project, prints what its
# "prints" cell shows and exits with its code. tests/test_skill_commands.py runs the same rows against
# a copy installed by the real installer; the environment each situation needs is defined here once.

def scenario_table() -> dict:
    text = (ROOT / "SKILL.md").read_text().split("## Situations and what to run")[1].split("\n## ")[0]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`python3"):
            rows[cells[0]] = {"command": cells[1].strip("`"), "prints": cells[2], "exit": int(cells[3])}
    return rows


SCENARIOS = scenario_table()
WORKING, REVOKED = "working", "sk-revokedrevoked1"
# situation -> (the project's .env: None for none, WORKING for the sandbox's key, else a key), extra env
SITUATIONS = {
    "no key configured": (None, {}),
    "placeholder key (`sk-your-key-here`)": ("sk-your-key-here", {}),
    "working standard key": (WORKING, {}),
    "key rejected": (REVOKED, {}),
    # Offline, only the nothing-sent path can run (exit 3, one "<region> 000" line each); the accepted
    # path (exit 0) needs the documented hosts: net's tests/test_network.py covers it through a proxy.
    "which region accepts the key": ("sk-your-key-here", {}),
    "Token Plan key (`sk-sp-`)": ("token_plan_key", {}),
    "no `.env` yet": (None, {}),
    "everything at once": (WORKING, {}),
    "local image for a vision model": (WORKING, {}),
    "small local image, no upload": (None, {}),  # inline: no key needed, nothing sent
    "own bucket wanted": (WORKING, {}),
    "after a task (update check)": (WORKING, {}),
    "update prompt state": (WORKING, {}),
    "user asks to check for updates": (WORKING, {}),
}


def prepare_situation(situation: str, env: dict, box, project: Path, state: Path) -> tuple:
    """(environment, expected exit) for ``situation``, with the project's .env and photo.png in place."""
    key, extra = SITUATIONS[situation]
    dotenv = project / ".env"
    if dotenv.exists():
        dotenv.unlink()
    if key is not None:
        value = box.api_key if key == WORKING else box.info.get(key, key)
        dotenv.write_text(f"DASHSCOPE_API_KEY={value}\n")
        dotenv.chmod(0o600)
    (project / "photo.png").write_bytes(b"\x89PNG scenario")
    run_env = dict(env, QWEN_BASE_URL=box.base_url, QWEN_SKILLS_STATE=str(state), **extra)
    expected_exit = SCENARIOS[situation]["exit"]
    if "--all-regions" in SCENARIOS[situation]["command"]:
        expected_exit = 3
    return run_env, expected_exit


def _pattern(span: str) -> re.Pattern:
    """A backticked span as a prefix pattern: ``<anything>`` and ``...`` stand for any text."""
    parts = re.split(r"(<[^>]+>|\.\.\.)", span)
    return re.compile("".join(".+" if p.startswith("<") or p == "..." else re.escape(p) for p in parts))


def prints_problem(cell: str, stdout: str) -> str:
    """Why ``stdout`` does not match a "prints" cell, or "" when it does."""
    spans = [s for s in re.findall(r"`([^`]+)`", cell) if s not in ("sk-your-key-here", "sk-sp-")]
    if cell.startswith("nothing") and not stdout.strip():
        return ""
    if cell.startswith("JSON"):
        try:
            obj = json.loads(stdout)
        except ValueError:
            return f"not one JSON object: {stdout[:200]!r}"
        fields = [s for s in spans if re.fullmatch(r"[a-z_]+", s)]
        phrases = [_pattern(s) for s in spans if s not in fields]
        for name in fields:
            if name not in obj:
                return f"no {name} in {sorted(obj)}"
        if phrases and not any(p.match(str(obj[fields[0]])) for p in phrases):
            return f"{fields[0]} = {obj[fields[0]]!r} matches none of {spans}"
        return ""
    lines = stdout.splitlines()
    if not any(_pattern(s).match(line) for s in spans for line in lines):
        return f"no line of {stdout[:300]!r} starts with any of {spans}"
    return ""


def test_every_situation_is_documented():
    assert set(SCENARIOS) == set(SITUATIONS)


@pytest.mark.parametrize("situation", sorted(SCENARIOS))
def test_scenario_prints_what_skill_md_says(situation, sb, env, project, tmp_path):
    row = SCENARIOS[situation]
    argv = row["command"].split()[1:]
    script, args = Path(argv[0]).name, argv[1:]
    run_env, expected_exit = prepare_situation(situation, env, sb, project, tmp_path / "state.json")
    result = run_script(script, *args, env=run_env, cwd=project)
    assert result.code == expected_exit, (situation, result.out, result.err)
    assert not prints_problem(row["prints"], result.out), (situation, prints_problem(row["prints"], result.out))


def test_prints_matcher_can_fail():
    assert prints_problem("`200`", "401\n") and not prints_problem("`200`", "200\n")
    assert prints_problem("`<region> <status>` lines", "") and not prints_problem("`<region> <status>`", "cn 401")
    assert prints_problem("JSON with `has_update`", "{}") and not prints_problem("JSON with `has_update`",
                                                                                '{"has_update": false}')
    cell = "JSON; `summary` starts with `up to date` or `check failed: <why>`"
    assert prints_problem(cell, '{"summary": "nope"}') and not prints_problem(cell, '{"summary": "check failed: x"}')


def test_doctor_json_self_check_named_in_agent_compatibility(sb, env, project):
    assert "python3 .agents/skills/qianwen-ops-auth/scripts/doctor.py --json" in (
        ROOT / "agent-compatibility.md").read_text()
    data = json.loads(run_script("doctor.py", "--json", env=sandbox_env(env, sb), cwd=project).out)
    assert data["ok"] is True and data["key_status"] == "standard" and sb.api_key not in json.dumps(data)


def test_readme_import_lines_work(sb, env, project):
    block = (ROOT / "README.md").read_text().split("```python\n")[1].split("```")[0]
    (project / "photo.png").write_bytes(b"readme example")
    # as after `pip install` (tests/test_packaging.py installs it for real)
    run_env = dict(sandbox_env(env, sb), PYTHONPATH=str(SCRIPTS))
    done = subprocess.run([sys.executable, "-c", block], env=run_env, cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "oss://" in done.stdout and "data:image/png;base64," in done.stdout


def test_scripts_have_help():
    for script in [*SCRIPTS.glob("*.py"), UPDATE_SKILL / "scripts" / "check_update.py"]:
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "usage:" in done.stdout, script.name
        if script.name == "sandbox.py":  # a test tool: its {base_url} is a field of its start-up line
            continue
        # no unfilled format placeholder; evidence goes to the project root, not the current directory
        assert not re.search(r"\{[a-z_]+\}", done.stdout), script.name
        assert "of the current directory" not in done.stdout and "./output" not in done.stdout, script.name


def test_docs_name_only_tests_that_exist():
    """docs/threat-model.md holds each rule by a test, and other documents point at tests too: every test file
    and ``file::function`` they name must be there (``::function`` is in the file named last before it)."""
    named, files = [], set()
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "references").glob("*.md")]:
        current = None
        for file_part, name in re.findall(r"`(?:tests/)?(test_\w+\.py)?(?:::(test_\w+))?(?:\[\.\.\.\])?[^`]*`",
                                          doc.read_text()):
            current = file_part or current
            if file_part:
                files.add((doc.name, file_part))
            if name:
                named.append((doc.name, current, name))
    assert len([n for n in named if n[0] == "threat-model.md"]) > 40
    missing = [f"{doc}: {file}" for doc, file in sorted(files) if not (ROOT / "tests" / file).is_file()]
    missing += [f"{doc}: {file}::{name}" for doc, file, name in named
                if not re.search(rf"^def {name}\b", (ROOT / "tests" / file).read_text(), re.M)]
    assert not missing, missing


# ------------------------------------------------------------------ installed docs name only installed files

FILE_MENTION = re.compile(r"[\w.~<>/-]*?[\w-]+\.(?:md|py|sh|toml|json|ya?ml|cjs|txt)\b")
INSTALLED_PREFIXES = ("<skill-dir>/", "<qianwen-ops-auth>/", "~/.agents/skills/qianwen-ops-auth/",
                      ".agents/skills/qianwen-ops-auth/", ".claude/skills/qianwen-ops-auth/")


def shipped() -> set:
    """The checkout's files that the release tree holds (release/build.py decides)."""
    sys.path.insert(0, str(ROOT / "release"))
    import build

    return {name for name in TRACKED if build.destination(name)}


def missing_from_release(text: str, ships: set) -> list:
    """Files of this repository that ``text`` names and the release tree lacks (a user's own files, which the
    repository does not hold, are not counted)."""
    found = []
    for mention in FILE_MENTION.findall(text):
        name = mention.lstrip("./") if mention.startswith("./") else mention
        for prefix in INSTALLED_PREFIXES:
            name = name[len(prefix):] if name.startswith(prefix) else name
        name = name.replace("../qianwen-update-check/", "skills/qianwen-update-check/")
        ours = [t for t in TRACKED if t == name or t.endswith("/" + name)] if "/" in name else \
            [t for t in TRACKED if t.rsplit("/", 1)[-1] == name]
        if ours and not set(ours) & ships:
            found.append(mention)
    return sorted(set(found))


def test_installed_docs_and_help_name_only_files_that_are_installed():
    """What an installed copy's agent reads (SKILL.md, references/, the sibling's SKILL.md, every shipped
    script's --help) never sends it to a file the install lacks: README.md, tests/, the sandbox, demo.py."""
    ships = shipped()
    problems = {}
    for name in sorted(ships):
        path = ROOT / name
        texts = [path.read_text()] if name.endswith(".md") else []
        if name.endswith(".py") and "/qianwen_" not in name:
            done = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=60)
            texts.append(done.stdout)
        missing = missing_from_release("\n".join(texts), ships)
        if missing:
            problems[name] = missing
    assert not problems, problems


def test_the_release_file_matcher_can_fail():
    ships = shipped()
    assert missing_from_release("see README.md, `tests/run.sh`, `sandbox.py --ram-policy`", ships) == [
        "README.md", "sandbox.py", "tests/run.sh"]
    assert missing_from_release("`<skill-dir>/scripts/probe.py`, [settings.md](settings.md), `~/.bailian/config.json`,"
                                " `<skill-dir>/../qianwen-update-check/scripts/check_update.py`", ships) == []


def test_api_settings_is_documented_as_the_function_it_is():
    """`api_settings` is called (``s = api_settings()``); docs once showed it as an object with attributes."""
    import qianwen_ops

    assert callable(qianwen_ops.api_settings) and not hasattr(qianwen_ops.api_settings, "base_url")
    for doc in [ROOT / "README.md", *SKILL_DOCS]:
        text = doc.read_text()
        if "api_settings" in text:
            assert "api_settings()" in text, doc.name
            assert not re.search(r"api_settings`?\s*:\s*`\.", text) and "api_settings." not in text, doc.name


def test_windows_commands_use_their_own_shells_syntax():
    """PowerShell does not expand %VAR%, and cmd.exe passes '*' with its quotes: the docs a user copies from say
    so (a `setx` shown for PowerShell uses $env:, and cmd gets `--skill "*"`)."""
    for doc in SKILL_DOCS:
        for span in re.findall(r"`(setx [^`]*)`", doc.read_text()):
            assert "%" not in span, (doc.name, span)
    assert '--skill "*"' in (ROOT / "references" / "windows.md").read_text()
    assert '--skill "*"' in (ROOT / "agent-compatibility.md").read_text()
