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


COMMAND = re.compile(r"python3 ((?:\.\./qianwen-update-check/)?scripts/[\w]+\.py)([^`\n|]*)")


def quoted_commands():
    found = []
    for doc in [ROOT / "README.md", *SKILL_DOCS]:
        base = UPDATE_SKILL if doc.parent == UPDATE_SKILL else ROOT
        for script, rest in COMMAND.findall(doc.read_text()):
            # "../qianwen-update-check/" is the installed sibling; in a checkout it lives under skills/
            path = ROOT / "skills" / script[3:] if script.startswith("../") else base / script
            found.append((doc.relative_to(ROOT), path, re.findall(r"--[a-z][a-z-]*", rest)))
    return found


@pytest.mark.parametrize("doc,script,flags", quoted_commands(), ids=lambda v: str(v) if not isinstance(v, list) else "")
def test_quoted_commands_exist_with_their_flags(doc, script, flags):
    assert script.resolve().is_file(), f"{doc}: {script} does not exist"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for flag in flags:
        assert flag in done.stdout, f"{doc}: {script.name} has no {flag}"


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


def test_exit_code_table_matches_the_code():
    from qianwen_ops.errors import EXIT_CODES

    skill = (ROOT / "SKILL.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for code in EXIT_CODES:
        if code:
            assert f"{code} " in skill.split("Exit codes (all scripts):")[1][:600]
            assert f"| {code} |" in readme


# ------------------------------------------------------------------ scenario walkthroughs

def scenario_table() -> dict:
    text = (ROOT / "SKILL.md").read_text().split("## Situations and what to run")[1].split("\n## ")[0]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`python3"):
            rows[cells[0]] = {"command": cells[1].strip("`"), "prints": re.findall(r"`([^`]+)`", cells[2]),
                              "exit": int(cells[3])}
    return rows


SCENARIOS = scenario_table()


def test_every_situation_is_documented():
    assert set(SCENARIOS) == {
        "no key configured", "placeholder key (`sk-your-key-here`)", "working standard key", "key rejected",
        "Token Plan key (`sk-sp-`)", "local image for a vision model", "production bucket configured",
        "after a task (update check)"}


@pytest.mark.parametrize("situation", sorted(SCENARIOS))
def test_scenario_prints_what_skill_md_says(situation, sb, env, project, tmp_path):
    row = SCENARIOS[situation]
    run_env = dict(env, QWEN_BASE_URL=sb.base_url)
    if situation.startswith("placeholder"):
        run_env["DASHSCOPE_API_KEY"] = "sk-your-key-here"
    elif situation.startswith(("working", "local image")):
        run_env = sandbox_env(env, sb)
    elif situation.startswith("key rejected"):
        run_env["DASHSCOPE_API_KEY"] = "sk-revokedrevoked1"
    elif situation.startswith("Token Plan"):
        run_env["DASHSCOPE_API_KEY"] = sb.info["token_plan_key"]
    elif situation.startswith("production"):
        info = sb.info
        run_env.update(QWEN_TMP_OSS_BUCKET=info["oss_bucket"], QWEN_TMP_OSS_REGION=info["oss_region"],
                       QWEN_TMP_OSS_ENDPOINT=info["oss_endpoint"], QWEN_TMP_OSS_AK_ID=info["oss_access_key_id"],
                       QWEN_TMP_OSS_AK_SECRET=info["oss_access_key_secret"])
    elif situation.startswith("after a task"):
        run_env["QWEN_SKILLS_STATE"] = str(tmp_path / "state.json")
    (project / "photo.png").write_bytes(b"\x89PNG scenario")
    argv = row["command"].split()[1:]
    script, args = Path(argv[0]).name, argv[1:]
    result = run_script(script, *args, env=run_env, cwd=project)
    assert result.code == row["exit"], (situation, result.err)
    expected = [p for p in row["prints"] if p not in ("sk-your-key-here", "sk-sp-")]
    first = result.out.splitlines()[0] if result.out else ""
    if situation.startswith("after a task"):
        assert first == "" or any(first.startswith(p) for p in expected)
    else:
        assert any(first.startswith(p) for p in expected), (situation, first, expected)


def test_doctor_json_self_check_named_in_agent_compatibility(sb, env, project):
    assert "python3 scripts/doctor.py --json" in (ROOT / "agent-compatibility.md").read_text()
    data = json.loads(run_script("doctor.py", "--json", env=sandbox_env(env, sb), cwd=project).out)
    assert data["ok"] is True and data["key_status"] == "standard" and sb.api_key not in json.dumps(data)


def test_readme_import_lines_work(sb, env, project):
    block = (ROOT / "README.md").read_text().split("```python\n")[1].split("```")[0]
    (project / "photo.png").write_bytes(b"readme example")
    code = block.replace("/path/to/qianwen-ops-auth", str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], env=sandbox_env(env, sb), cwd=project, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "oss://" in done.stdout


def test_scripts_have_help():
    for script in [*SCRIPTS.glob("*.py"), UPDATE_SKILL / "scripts" / "check_update.py"]:
        done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "usage:" in done.stdout, script.name
