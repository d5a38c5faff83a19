"""doctor's hints an agent acts on: a region setting that does nothing, reference files by their real path."""

from __future__ import annotations

import re

from conftest import run_script, sandbox_env


def test_region_ignored_while_base_url_is_set_is_one_warning(sb, env, project):
    result = run_script("doctor.py", "--offline", env=dict(sandbox_env(env, sb), QWEN_REGION="intl"), cwd=project)
    warnings = [line for line in result.out.splitlines() if "QWEN_BASE_URL overrides QWEN_REGION=intl" in line]
    assert len(warnings) == 1 and warnings[0].startswith("[warn]"), result.out
    alone = run_script("doctor.py", "--offline", env=sandbox_env(env, sb), cwd=project)
    assert "overrides QWEN_REGION" not in alone.out


def test_token_plan_hint_names_a_reference_file_that_exists(sb, env, project):
    result = run_script("doctor.py", "--offline", env=sandbox_env(env, sb, key=sb.info["token_plan_key"]),
                        cwd=project)
    shown = re.search(r"see (\S+tokenplan\.md)\)", result.out)
    assert shown, result.out
    assert (project / shown.group(1)).is_file()  # absolute here (the skill is outside the project)
    assert shown.group(1) != "references/tokenplan.md"
