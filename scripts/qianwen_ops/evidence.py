"""Evidence files: non-secret JSON records under ``<project>/output/qianwen-ops-auth/``.

``<project>`` is the user's project as ``project.py`` decides it, the same from every working
directory and never the skill's own installed folder. Records are built from an allowlist of
fields, and every string in them (nested ones included) passes through ``redaction.redact`` as
a last line of defence. Writes go through ``fsutil``: never through a link, never into a FIFO or
other special file, in bounded time; a refused or failed write means the record is not saved
(the caller gets None), never an error for the user. ``<kind>.jsonl`` logs are rotated to
``<kind>.1.jsonl`` once they pass ``ROTATE_BYTES``, so a log and its one rotated copy stay small.
Whenever the evidence folder has no ``.gitignore``, this module writes one there holding ``*``
(a folder that already existed included), so the records never show up in ``git status``. To
commit records, ``git add -f`` them, or keep a ``.gitignore`` of your own in that folder (even an
empty one): an existing file there is never replaced.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from .fsutil import append_file, create_file, locked, make_dirs
from .project import find_project
from .redaction import nothing_to_redact, redact

EVIDENCE_SUBDIR = Path("output") / "qianwen-ops-auth"
ROTATE_BYTES = 1024 * 1024

ALLOWED_FIELDS = {
    "kind", "timestamp", "status", "exit_code", "key_status", "key_source", "key_problem",
    "endpoint_host", "endpoint_source", "model", "request_id", "latency_ms", "error_code",
    "error_message", "source", "url", "expires_at", "backend", "bytes", "sha256", "error",
    "checks", "ok", "version", "all_regions", "verified",
}
_ALLOWED = frozenset(ALLOWED_FIELDS)
_PLAIN = frozenset({str, int, float, bool, type(None)})   # exact classes; a str among them is scanned


def evidence_dir(cwd: Path | None = None) -> Path:
    return find_project(cwd) / EVIDENCE_SUBDIR


def _scrub(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_scrub(k) if isinstance(k, str) else k: _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _clean(record: dict) -> dict:
    return {k: v if k == "sha256" and _is_digest(v) else _scrub(v) for k, v in record.items() if k in ALLOWED_FIELDS}


def _is_digest(value) -> bool:
    """A sha256 the program computed (64 hex digits) holds no secret: redacting it could only corrupt it."""
    return isinstance(value, str) and len(value) == 64 and not value.strip("0123456789abcdef")


def _texts(value, out: list) -> list:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _texts(k, out)
            _texts(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _texts(v, out)
    return out


def _clean_all(records: list) -> list:
    """``_clean`` for many records: one scan over all their text first, and when it finds nothing that
    ``redact`` would change (the usual case), the records are kept as they are."""
    kept = [r if _ALLOWED.issuperset(r) else {k: v for k, v in r.items() if k in ALLOWED_FIELDS} for r in records]
    texts = [v for r in kept for k, v in r.items() if v.__class__ is str and k != "sha256"]
    for value in [v for r in kept for k, v in r.items() if v.__class__ not in _PLAIN or k == "sha256"]:
        if not _is_digest(value):
            _texts(value, texts)   # nested values, str subclasses, a sha256 that is not a digest
    return kept if nothing_to_redact(texts) else [_clean(r) for r in records]


def _folder(cwd: Path | None) -> Path:
    folder = make_dirs(find_project(cwd), *EVIDENCE_SUBDIR.parts)
    ignore_in_git(folder)
    return folder


def ignore_in_git(folder: Path) -> None:
    """``folder/.gitignore`` holding ``*`` (the folder ignores itself) when it has none; never through a link,
    never over a file (the user's own, even an empty one, is how they opt out)."""
    if os.path.lexists(folder / ".gitignore"):
        return
    try:
        create_file(folder / ".gitignore", b"# written by qianwen-ops-auth: evidence records stay out of git\n*\n",
                    mode=0o644)
    except OSError:
        pass


def write_record(kind: str, record: dict, cwd: Path | None = None) -> Path | None:
    """Write one JSON file per run; returns its path, or None if it could not be written."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    data = (json.dumps(_clean({"kind": kind, "timestamp": stamp, **record}), indent=2, ensure_ascii=True)
            + "\n").encode("utf-8", "backslashreplace")
    try:
        folder = _folder(cwd)
        for attempt in range(1, 6):
            suffix = "" if attempt == 1 else f"-{attempt}"
            path = folder / f"{kind}-{stamp}-{os.getpid()}{suffix}.json"
            try:
                create_file(path, data)
                return path
            except FileExistsError:
                continue
    except OSError:
        pass
    return None


def _rotate(path: Path) -> None:
    """Move ``path`` to ``<stem>.1.jsonl`` when it is past ``ROTATE_BYTES`` (the old copy is dropped)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and info.st_size >= ROTATE_BYTES:
        os.replace(path, path.with_name(f"{path.stem}.1{path.suffix}"))


def append_records(kind: str, records: list[dict], cwd: Path | None = None) -> Path | None:
    """Append JSON lines to ``<kind>.jsonl`` (one line per record); None when not saved."""
    if not records:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    encode = json.JSONEncoder(ensure_ascii=True).encode   # one encoder for all the lines
    lines = "".join(encode({"kind": kind, "timestamp": stamp, **r}) + "\n" for r in _clean_all(records))
    try:
        folder = _folder(cwd)
        path = folder / f"{kind}.jsonl"
        with locked(folder / f".{kind}.jsonl.lock"):
            _rotate(path)
            append_file(path, lines.encode("utf-8", "backslashreplace"))
    except OSError:
        return None
    return path
