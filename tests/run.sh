#!/usr/bin/env bash
# The one test command (see README): on a fresh clone it creates .venv with the pinned
# tools from tests/requirements.txt and the skills installer (skills@1.7.4 on Node 22, both
# pinned, from npm), then runs every check: lint, minimum-Python check, the CI workflow's
# check (actionlint), Agent Skills validation, and pytest (unit, end-to-end, installer, docs,
# canary, hostile-input and fault suites). Extra arguments go to pytest.
#
# Portable: bash 3.2 (macOS) or newer, no GNU-only tools; Git Bash on Windows. It relies on no
# variable a particular machine happens to set (PYTHONUNBUFFERED, CA bundles...). When an install
# step fails, its own output is shown with what usually fixes it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${QWEN_TEST_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null 2>&1 || PY=python   # python.org installs on Windows have no python3
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: no python3 (or python) on PATH; install Python 3.11 or newer, or set PYTHON=/path/to/python" >&2
  exit 2
fi
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  # e.g. macOS's own /usr/bin/python3 (3.9): the scripts run on it, the test tools (pytest 9, skills-ref) do not
  echo "error: the test tools need Python 3.11 or newer, and $PY is $("$PY" -V 2>&1); install one and" \
       "set PYTHON=/path/to/python3.11+ (the scripts themselves run on 3.9+)" >&2
  exit 2
fi
LOG="$(mktemp "${TMPDIR:-/tmp}/qianwen-run.XXXXXX")"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/qianwen-validate.XXXXXX")"
trap 'rm -rf "$tmp" "$LOG"' EXIT

# Runs an install step with its output in $LOG; on failure shows that output and the usual fixes.
install_step() {
  local what="$1"; shift
  local status=0
  "$@" >"$LOG" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "error: $what failed (exit $status). Its last lines:" >&2
    tail -n 25 "$LOG" >&2
    cat >&2 <<'ADVICE'
Usual causes and fixes:
  - no network, or a proxy: set HTTPS_PROXY (and NO_PROXY) for pip and npm;
  - a company firewall that re-signs TLS (CERTIFICATE_VERIFY_FAILED, SELF_SIGNED_CERT_IN_CHAIN,
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY): give its root CA to both tools, e.g.
    export PIP_CERT=/path/to/company-ca-bundle.pem NODE_EXTRA_CA_CERTS=/path/to/company-ca-bundle.pem
    (a bundle holding the system CAs and the company root; references/company-networks.md says how);
  - a private package index: set PIP_INDEX_URL, and npm_config_registry for npm.
ADVICE
    exit 1
  fi
}

want="$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
        tests/requirements.txt)"
BIN="$VENV/bin"
[ -d "$VENV/Scripts" ] && BIN="$VENV/Scripts"   # a venv made by a Windows Python
if [ ! -x "$BIN/python" ] && [ ! -x "$BIN/python.exe" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "== creating $VENV with the pinned test tools"
  rm -rf "$VENV"
  install_step "creating the virtual environment ($PY -m venv)" "$PY" -m venv "$VENV"
  BIN="$VENV/bin"
  [ -d "$VENV/Scripts" ] && BIN="$VENV/Scripts"
  install_step "pip install -r tests/requirements.txt" \
    "$BIN/python" -m pip install -q --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$VENV/.requirements.sha256"
fi

NPM_PREFIX="$VENV/npm"
NPM_PINS="node@22.23.3 skills@1.7.4"  # skills 1.7.x needs Node 22; the node package brings that binary
if [ -n "${QWEN_SKIP_INSTALLER_TESTS:-}" ]; then
  echo "== QWEN_SKIP_INSTALLER_TESTS is set: the tests that need the real skills installer are skipped (each says so)"
elif [ ! -x "$NPM_PREFIX/node_modules/.bin/skills" ] || [ "$(cat "$NPM_PREFIX/.pins" 2>/dev/null)" != "$NPM_PINS" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: npm not found: the install tests use the real skills installer from npm. Install Node.js" \
         "(which brings npm), or set QWEN_SKIP_INSTALLER_TESTS=1 to run everything else" >&2
    exit 2
  fi
  echo "== installing the skills installer ($NPM_PINS) from npm"
  rm -rf "$NPM_PREFIX"
  # shellcheck disable=SC2086
  install_step "npm install $NPM_PINS" \
    npm install --no-audit --no-fund --save-exact --loglevel=error --prefix "$NPM_PREFIX" $NPM_PINS
  echo "$NPM_PINS" > "$NPM_PREFIX/.pins"
fi
if [ -z "${QWEN_SKIP_INSTALLER_TESTS:-}" ]; then
  export QWEN_SKILLS_CLI="$NPM_PREFIX/node_modules/.bin/skills"
fi

echo "== lint (ruff)"
"$BIN/ruff" check scripts skills tests bench release

echo "== dead code (vulture; tests/vulture_allowlist.py names what only a library or a user calls)"
# The bundle's own code must be used by the bundle (a name only a test uses is dead too), the tests' by the tests.
"$BIN/vulture" scripts skills release bench tests/vulture_allowlist.py --min-confidence 60
"$BIN/vulture" scripts skills release bench tests --min-confidence 60

echo "== minimum Python for the stdlib scripts (vermin, target 3.9)"
"$BIN/vermin" -q -t=3.9- --no-tips --violations scripts skills

if [ -d .github/workflows ]; then
  echo "== GitHub Actions workflows (actionlint)"
  "$BIN/actionlint" .github/workflows/*.yml
fi

echo "== Agent Skills validator"
mkdir "$tmp/qianwen-ops-auth"
cp -R SKILL.md agent-compatibility.md references scripts "$tmp/qianwen-ops-auth/"
"$BIN/agentskills" validate "$tmp/qianwen-ops-auth"
for skill in skills/*/; do
  "$BIN/agentskills" validate "$skill"
done

echo "== pytest"
"$BIN/python" -m pytest -n 4 -q "$@"  # 4 workers on 2 cores: most tests wait on child processes
