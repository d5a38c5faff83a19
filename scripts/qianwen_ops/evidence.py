"""Evidence files: non-secret JSON records under ``./output/qianwen-ops-auth/``.

The folder is relative to the current working directory, never the skill's own
installed folder: when the current directory is inside an installed copy of the
skill (one without ``.git``), records go to the project that holds the install.
Records are built from an allowlist of fields, so nothing secret can slip in.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

SKILL_ROOT = Path(__file__).parents[2]  # resolved when used (no filesystem work at import)
EVIDENCE_SUBDIR = Path("output") / "qianwen-ops-auth"
_INSTALL_DIRS = {"skills", ".agents", ".claude", ".cursor", ".codex", ".gemini", ".qwen"}

ALLOWED_FIELDS = {
    "kind", "timestamp", "status", "exit_code", "key_status", "key_source", "key_problem",
    "endpoint_host", "endpoint_source", "model", "request_id", "latency_ms", "error_code",
    "error_message", "source", "url", "expires_at", "backend", "bytes", "sha256", "error",
    "checks", "ok", "version",
}


def evidence_dir(cwd: Path | None = None) -> Path:
    cwd = Path(cwd or os.getcwd()).resolve()
    base = cwd
    skill_root = SKILL_ROOT.resolve()
    installed_copy = not (skill_root / ".git").exists()
    if installed_copy and (cwd == skill_root or skill_root in cwd.parents):
        base = skill_root.parent
        while base.name in _INSTALL_DIRS and base.parent != base:
            base = base.parent
    return base / EVIDENCE_SUBDIR


def _clean(record: dict) -> dict:
    return {k: v for k, v in record.items() if k in ALLOWED_FIELDS}


def write_record(kind: str, record: dict, cwd: Path | None = None) -> Path | None:
    """Write one JSON file per run; returns its path, or None if it could not be written."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    record = _clean({"kind": kind, "timestamp": stamp, **record})
    folder = evidence_dir(cwd)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{kind}-{stamp}-{os.getpid()}.json"
        path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError:
        return None
    return path


def append_records(kind: str, records: list[dict], cwd: Path | None = None) -> Path | None:
    """Append JSON lines to ``<kind>.jsonl`` (one line per record)."""
    if not records:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = evidence_dir(cwd)
    lines = "".join(json.dumps(_clean({"kind": kind, "timestamp": stamp, **r}), ensure_ascii=False) + "\n"
                    for r in records)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{kind}.jsonl"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(lines)
    except OSError:
        return None
    return path
