"""The reuse cache stays linear (amortised compaction, one fsync per batch), trusts file identity, and
never writes through a link or blocks on a FIFO."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from conftest import MODEL, needs_fifo, needs_symlinks, sandbox_env
from qianwen_ops import local_files, upload_cache
from qianwen_ops.settings import Settings
from qianwen_ops.upload_cache import COMPACT_MIN_BYTES, UploadCache, _line
from qianwen_ops.uploads import resolve_file, upload_many

FAR = {"url": "oss://x/" + "u" * 120, "expires_at": 4e9, "issued_at": 1e9, "backend": "temp-storage",
       "sha256": "0" * 64, "needs_resolve_header": True}


@pytest.fixture
def counters(monkeypatch):
    """How often the cache fsyncs and rewrites the whole file."""
    seen = {"fsync": 0, "replace": 0}
    real_fsync, real_replace = os.fsync, upload_cache.replace_file

    def fsync(fd):
        seen["fsync"] += 1
        real_fsync(fd)

    def replace(path, data, mode=0o600):
        seen["replace"] += 1
        real_replace(path, data, mode)

    monkeypatch.setattr(upload_cache.os, "fsync", fsync)
    monkeypatch.setattr(upload_cache, "replace_file", replace)
    return seen


def write_cache(path, entries):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(_line(k, e) for k, e in entries))


def batch(path, count, prefix="new"):
    cache = UploadCache(path)
    cache.lookup("anything")  # a batch reads the file once
    for i in range(count):
        cache.store({f"{prefix}-{i}": FAR})
    cache.finish()


def test_live_cache_is_appended_not_rewritten_and_synced_once(tmp_path, counters):
    path = tmp_path / "c" / "uploads.jsonl"
    write_cache(path, [(f"old-{i}", FAR) for i in range(3000)])
    assert path.stat().st_size > COMPACT_MIN_BYTES
    inode = path.stat().st_ino
    batch(path, 100)
    assert counters == {"fsync": 1, "replace": 0}
    assert path.stat().st_ino == inode and len(path.read_bytes().splitlines()) == 3100


def test_compaction_once_per_batch_when_well_past_twice_live(tmp_path, counters):
    path = tmp_path / "c" / "uploads.jsonl"
    expired = dict(FAR, expires_at=1e9 + 10)
    # 2,000 expired lines and 1,000 lines superseded by a later line with the same key
    write_cache(path, [(f"gone-{i}", expired) for i in range(2000)] + [(f"k-{i % 500}", FAR) for i in range(1000)])
    batch(path, 200)
    assert counters["replace"] == 1 and counters["fsync"] == 1  # the atomic replace's own fsync
    lines = path.read_bytes().splitlines()
    assert len(lines) == 700  # 500 live keys + 200 new
    fresh = UploadCache(path)
    assert fresh.lookup("k-499") and fresh.lookup("new-199") and fresh.lookup("gone-1") is None


def test_compaction_keeps_lines_another_run_appended_meanwhile(tmp_path):
    path = tmp_path / "c" / "uploads.jsonl"
    expired = dict(FAR, expires_at=1e9 + 10)
    write_cache(path, [(f"gone-{i}", expired) for i in range(3000)])
    mine = UploadCache(path)
    mine.lookup("x")
    mine.store({"mine": FAR})
    batch(path, 5, prefix="other")  # a concurrent run (its finish compacts the expired lines away)
    mine.store({"mine-2": FAR})
    mine.finish()
    fresh = UploadCache(path)
    assert all(fresh.lookup(k) for k in ("mine", "mine-2", "other-0", "other-4"))


@pytest.mark.parametrize("kind", [pytest.param("symlink", marks=needs_symlinks),
                                  pytest.param("fifo", marks=needs_fifo)])
def test_cache_file_that_is_a_link_or_fifo_is_ignored_never_followed(tmp_path, kind):
    path = tmp_path / "c" / "uploads.jsonl"
    path.parent.mkdir(parents=True)
    victim = tmp_path / "shell-rc"
    victim.write_text("export SAFE=1\n")
    if kind == "symlink":
        path.symlink_to(victim)
    else:
        os.mkfifo(path)
    done = []

    def go():
        cache = UploadCache(path)
        done.append(cache.lookup("k"))
        cache.store({"k": FAR})
        cache.finish()
        done.append("finished")

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(10)
    assert done == [None, "finished"], "the cache blocked on (or failed through) a special file"
    assert victim.read_text() == "export SAFE=1\n"
    assert os.path.islink(path) if kind == "symlink" else not path.is_symlink()


def test_hit_trusts_identity_without_reading_and_a_rewrite_is_detected(sb, env, project, monkeypatch):
    path = project / "same.png"
    path.write_bytes(b"first content")
    settings = Settings.from_process(cwd=project, env=sandbox_env(env, sb))
    first = resolve_file(str(path), MODEL, settings=settings)

    def no_reading(local):
        raise AssertionError("a cache hit re-read the file")

    with monkeypatch.context() as patch:
        patch.setattr(local_files, "open_regular", no_reading)
        assert resolve_file(str(path), MODEL, settings=settings) == first
    # Same size, mtime restored: only ctime tells the rewrite apart.
    info = os.stat(path)
    path.write_bytes(b"other content")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == info.st_mtime_ns and os.stat(path).st_size == info.st_size
    assert os.stat(path).st_ctime_ns != info.st_ctime_ns
    assert resolve_file(str(path), MODEL, settings=settings) != first


def test_same_file_four_ways_goes_up_once(sb, env, project, monkeypatch):
    monkeypatch.chdir(project)
    (project / "pic.png").write_bytes(os.urandom(100))
    forms = ["pic.png", "./pic.png", str(project / "pic.png"), (project / "pic.png").as_uri()]
    settings = Settings.from_process(cwd=project, env=sandbox_env(env, sb))
    before = sb.counts()["postObject"]
    for use_cache, concurrency in ((False, 4), (False, 1)):
        outcomes = upload_many(forms, MODEL, settings=settings, use_cache=use_cache, concurrency=concurrency)
        assert [o.source for o in outcomes] == forms and all(o.error is None for o in outcomes)
        assert len({o.upload.url for o in outcomes}) == 1
    assert sb.counts()["postObject"] == before + 2  # once per batch, not once per spelling


def test_a_batch_keeps_appending_to_the_file_in_place_after_another_run_replaced_it(tmp_path):
    """The batch holds its append descriptor; when another run compacts (renames a new file over the
    path), the next line goes to the new file, not to the unlinked old one."""
    path = tmp_path / "cache" / "uploads.jsonl"
    path.parent.mkdir()
    entry = {"url": "oss://x", "expires_at": 4e9, "issued_at": 1e9, "backend": "temp-storage",
             "needs_resolve_header": True}
    batch = UploadCache(path)
    batch.store({"a" * 64: entry})
    upload_cache.replace_file(path, _line("o" * 64, entry))  # another run's compaction
    batch.store({"b" * 64: entry})
    batch.finish()
    keys = [line.split(b'"key": "')[1][:64] for line in path.read_bytes().splitlines()]
    assert keys == [b"o" * 64, b"b" * 64]
    again = UploadCache(path)
    assert again.lookup("b" * 64)["url"] == "oss://x" and again.lookup("o" * 64) is not None


def test_cache_hits_are_served_in_the_main_thread(sb, env, project, monkeypatch):
    """A rerun of a batch: the hits are answered before any worker thread starts (none starts when all hit);
    only the new files go to the workers."""
    from qianwen_ops import uploads

    paths = []
    for i in range(12):
        (project / f"p{i}.png").write_bytes(os.urandom(64))
        paths.append(str(project / f"p{i}.png"))
    settings = Settings.from_process(cwd=project, env=sandbox_env(env, sb))
    first = upload_many(paths[:8], MODEL, settings=settings, concurrency=4)
    workers = []
    real_thread = uploads.threading.Thread

    def counted(*args, **kwargs):
        workers.append(kwargs.get("name"))
        return real_thread(*args, **kwargs)

    monkeypatch.setattr(uploads.threading, "Thread", counted)
    again = upload_many(paths[:8], MODEL, settings=settings, concurrency=4)
    assert workers == [] and all(o.upload.cached for o in again)
    assert [o.upload.url for o in again] == [o.upload.url for o in first]
    mixed = upload_many(paths, MODEL, settings=settings, concurrency=4)
    assert workers == ["upload"] * 4 and [o.upload.cached for o in mixed] == [True] * 8 + [False] * 4


def test_the_cache_key_is_one_hash_of_the_identity_without_resolving_a_path(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    path.write_bytes(b"x")
    local = local_files.check_file(path)

    def no_resolving(*args, **kwargs):
        raise AssertionError("the cache key resolved a path")

    monkeypatch.setattr(os.path, "realpath", no_resolving)
    monkeypatch.setattr(type(path), "resolve", no_resolving)
    key = upload_cache.entry_key(local, MODEL, "scope")
    assert len(key) == 64 and key == upload_cache.entry_key(local, MODEL, "scope")
    others = {upload_cache.entry_key(local._replace(**{field: getattr(local, field) + 1}), MODEL, "scope")
              for field in ("size", "mtime_ns", "inode", "device", "ctime_ns")}
    others |= {upload_cache.entry_key(local._replace(path=tmp_path / "b.png"), MODEL, "scope"),
               upload_cache.entry_key(local, "qwen-vl-max", "scope"), upload_cache.entry_key(local, MODEL, "other")}
    assert len(others) == 8 and key not in others


@needs_symlinks
def test_a_url_cached_for_an_allowed_credential_file_is_no_hit_without_the_override(sb, env, project):
    """A hit prints the URL of content already uploaded (a capability): the checks that refuse a credential file
    run for hits too, so what --allow-credential-file let through is refused on a run without it."""
    home = Path(env["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "config").write_text("Host prod\n  IdentityFile ~/.ssh/deploy\n")
    (project / "photo.png").symlink_to(home / ".ssh" / "config")
    (project / "plain.png").write_bytes(b"picture")
    settings = Settings.from_process(cwd=project, env=sandbox_env(env, sb))
    sources = [str(project / "plain.png"), str(project / "photo.png")]
    first = upload_many(sources, MODEL, settings=settings, allow_credential_files=True)
    assert all(o.error is None for o in first)
    again = upload_many(sources, MODEL, settings=settings, allow_credential_files=True)
    assert [o.upload.cached for o in again] == [True, True]
    plain, photo = upload_many(sources, MODEL, settings=settings)
    assert plain.upload.cached and photo.upload is None
    assert "it holds credentials (it is ~/.ssh/config, a credential store)" in photo.error.message
