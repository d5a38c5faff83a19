"""Evidence records under <project>/output/qianwen-ops-auth/: found from any subfolder, redacted, rotated, never
written through a link or into a FIFO."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading

from conftest import (
    CANARY_KEY,
    leaks,
    needs_fifo,
    needs_symlinks,
    run_script,
    sandbox_env,
)
from qianwen_ops import evidence
from qianwen_ops.redaction import remember


def test_evidence_goes_to_the_project_root_from_a_subfolder(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "a" / "b").mkdir(parents=True)
    path = evidence.write_record("probe", {"status": 200}, cwd=tmp_path / "a" / "b")
    assert path is not None and path.parent == tmp_path / "output" / "qianwen-ops-auth"
    assert evidence.evidence_dir(tmp_path / "a") == tmp_path / "output" / "qianwen-ops-auth"


@needs_symlinks
def test_evidence_never_writes_through_a_link(tmp_path):
    folder = tmp_path / "output" / "qianwen-ops-auth"
    folder.mkdir(parents=True)
    rc_file = tmp_path / "bashrc"
    rc_file.write_text("# mine\n")
    (folder / "uploads.jsonl").symlink_to(rc_file)
    assert evidence.append_records("uploads", [{"source": "$(touch /tmp/pwned).png"}], cwd=tmp_path) is None
    assert rc_file.read_text() == "# mine\n"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "p2" / "output").mkdir(parents=True)
    (tmp_path / "p2" / "output" / "qianwen-ops-auth").symlink_to(elsewhere)
    assert evidence.write_record("probe", {"status": 200}, cwd=tmp_path / "p2") is None
    assert evidence.append_records("uploads", [{"source": "a"}], cwd=tmp_path / "p2") is None
    assert list(elsewhere.iterdir()) == []


@needs_fifo
def test_evidence_into_a_fifo_is_skipped_without_blocking(tmp_path):
    folder = tmp_path / "output" / "qianwen-ops-auth"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "uploads.jsonl")
    results = []
    worker = threading.Thread(target=lambda: results.append(
        evidence.append_records("uploads", [{"source": "a"}], cwd=tmp_path)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive() and results == [None]
    assert stat.S_ISFIFO(os.lstat(folder / "uploads.jsonl").st_mode)


def test_every_string_in_evidence_is_redacted(tmp_path):
    remember(CANARY_KEY)
    record = {"error_message": f"server said {CANARY_KEY}", "request_id": CANARY_KEY[3:],
              "checks": [{"name": "probe", "detail": f"echo {CANARY_KEY}"}], "not_allowed": CANARY_KEY}
    path = evidence.write_record("doctor", record, cwd=tmp_path)
    lines = evidence.append_records("uploads", [record], cwd=tmp_path)
    text = path.read_text() + lines.read_text()
    assert leaks(text) == [] and "<redacted>" in text and "not_allowed" not in text


def test_uploads_log_is_rotated_so_it_cannot_grow_without_bound(tmp_path, monkeypatch):
    assert evidence.ROTATE_BYTES == 1024 * 1024
    monkeypatch.setattr(evidence, "ROTATE_BYTES", 4096)
    batch = [{"source": f"file-{i:04d}.png", "url": "oss://x/" + "y" * 100} for i in range(10)]
    for _ in range(30):
        path = evidence.append_records("uploads", batch, cwd=tmp_path)
    rotated = path.with_name("uploads.1.jsonl")
    batch_bytes = 10 * 200
    assert rotated.stat().st_size >= 4096 and path.stat().st_size < 4096 + batch_bytes
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == ["uploads.1.jsonl",
                                                                                           "uploads.jsonl"]
    for line in (path.read_text() + rotated.read_text()).splitlines():
        assert json.loads(line)["kind"] == "uploads"


def test_evidence_of_a_script_run_from_a_subfolder_lands_in_the_project(sb, env, project):
    (project / ".git").mkdir()
    (project / "src").mkdir()
    result = run_script("probe.py", env=sandbox_env(env, sb), cwd=project / "src")
    assert result.code == 0
    assert any((project / "output" / "qianwen-ops-auth").iterdir()) and not (project / "src" / "output").exists()


def test_evidence_keeps_undecodable_names_escaped(tmp_path):
    """A file name that is not UTF-8 (a surrogate after os.fsdecode) is saved escaped, never a crash."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    one = evidence.write_record("probe", {"error": "bad \udcff name"}, cwd=tmp_path)
    many = evidence.append_records("uploads", [{"source": "x\udcffy"}], cwd=tmp_path)
    assert one is not None and many is not None
    assert "\\udcff" in one.read_text() and "\\udcff" in many.read_text()


def test_a_thousand_clean_records_cost_one_scan_and_a_secret_among_them_is_still_redacted(tmp_path, monkeypatch):
    """Evidence of a large batch: one scan of all its text decides; ``redact`` runs per field only when
    that scan finds something, and then every field still goes through it."""
    remember(CANARY_KEY)
    calls = []
    real_redact = evidence.redact
    monkeypatch.setattr(evidence, "redact", lambda text: calls.append(text) or real_redact(text))
    batch = [{"source": f"pics/f{i:04d}.png", "url": f"oss://b/dir/{i:012x}_f{i:04d}.png", "bytes": 1024,
              "expires_at": 1.5e9, "backend": "temp-storage", "sha256": "ab" * 32, "model": "qwen-vl-plus"}
             for i in range(1000)]
    evidence.append_records("uploads", batch, cwd=tmp_path)
    assert calls == []
    batch[500] = dict(batch[500], source=f"pics/{CANARY_KEY[4:16]}.png")
    path = evidence.append_records("uploads", batch, cwd=tmp_path)
    text = path.read_text()
    assert leaks(text) == [] and text.count("<redacted>") == 1 and len(calls) >= 1000


def test_a_sha256_the_program_computed_is_never_redacted(tmp_path):
    """A hex digest can share six characters with a hex key by chance; it holds no secret and must stay whole."""
    key = "sk-" + "0123456789abcdef" * 2
    remember(key)
    digest = "f" * 30 + "456789" + "e" * 28
    path = evidence.append_records("uploads", [{"source": "a.png", "sha256": digest}], cwd=tmp_path)
    assert json.loads(path.read_text())["sha256"] == digest
    path = evidence.write_record("probe", {"sha256": digest}, cwd=tmp_path)
    assert json.loads(path.read_text())["sha256"] == digest
