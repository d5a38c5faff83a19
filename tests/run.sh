#!/usr/bin/env bash
# The one test command (see README): on a fresh clone it creates .venv with the pinned
# tools from tests/requirements.txt and the skills installer (skills@1.7.4 on Node 22, both
# pinned, from npm), then runs every check:
# lint, minimum-Python check, Agent Skills validation, and pytest (unit, end-to-end,
# installer, docs, canary, hostile-input and fault suites). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${QWEN_TEST_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
want="$(sha256sum tests/requirements.txt | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "== creating $VENV with the pinned test tools"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$VENV/.requirements.sha256"
fi
NPM_PREFIX="$VENV/npm"
NPM_PINS="node@22.23.3 skills@1.7.4"  # skills 1.7.x needs Node 22; the node package brings that binary
if [ ! -x "$NPM_PREFIX/node_modules/.bin/skills" ] || [ "$(cat "$NPM_PREFIX/.pins" 2>/dev/null)" != "$NPM_PINS" ]; then
  echo "== installing the skills installer ($NPM_PINS) from npm"
  rm -rf "$NPM_PREFIX"
  # shellcheck disable=SC2086
  npm install --silent --no-audit --no-fund --save-exact --prefix "$NPM_PREFIX" $NPM_PINS >/dev/null
  echo "$NPM_PINS" > "$NPM_PREFIX/.pins"
fi
export QWEN_SKILLS_CLI="$NPM_PREFIX/node_modules/.bin/skills"
BIN="$VENV/bin"

echo "== lint (ruff)"
"$BIN/ruff" check scripts skills tests bench

echo "== minimum Python for the stdlib scripts (vermin, target 3.9)"
"$BIN/vermin" -q -t=3.9- --no-tips --violations scripts skills

echo "== Agent Skills validator"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/qianwen-ops-auth"
cp -R SKILL.md agent-compatibility.md references scripts "$tmp/qianwen-ops-auth/"
"$BIN/agentskills" validate "$tmp/qianwen-ops-auth"
for skill in skills/*/; do
  "$BIN/agentskills" validate "$skill"
done

echo "== pytest"
"$BIN/python" -m pytest -n 4 -q "$@"  # 4 workers on 2 cores: most tests wait on child processes
