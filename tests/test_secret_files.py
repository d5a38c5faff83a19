"""Files that must never be uploaded (secret_files.py): credential files by name, by what a link really points to,
by the store they are, by a private key inside, or holding a secret this run loaded; nothing is sent for them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import (
    CANARY_KEY,
    MODEL,
    assert_clean_error,
    leaks,
    needs_symlinks,
    oss_env,
    run_script,
    sandbox_env,
    sandbox_settings,
    without_notice,
)
from qianwen_ops.errors import INPUT_FILE, QwenOpsError
from qianwen_ops.secret_files import is_credential_name


@pytest.mark.parametrize("name", [".env", ".env.local", "prod.env", ".netrc", ".pgpass", ".npmrc", ".pypirc",
                                  "credentials", ".bailian/config.json", "id_rsa", "id_ed25519", "server.pem",
                                  "tls.key", ".git-credentials"])
def test_credential_file_names_are_recognised(name):
    assert is_credential_name(Path("/p") / name)


@pytest.mark.parametrize("name", ["photo.png", "config.json", "environment.txt", "keys.png", "report.pdf"])
def test_ordinary_names_are_not_credentials(name):
    assert not is_credential_name(Path("/p") / name)



@pytest.mark.slow
@pytest.mark.parametrize("backend", ["temp", "custom-oss"])
def test_credential_files_are_refused_before_any_byte_is_sent(sb, env, project, backend):
    run_env = sandbox_env(env, sb) if backend == "temp" else oss_env(env, sb)
    (project / ".env").write_text(f"DASHSCOPE_API_KEY={sb.api_key}\n")
    (project / "notes.txt").write_text(f"my key is {sb.api_key[3:]} (keep it safe)\n")
    secret = sb.info["oss_access_key_secret"] if backend == "custom-oss" else sb.api_key
    (project / "dump.bin").write_bytes(b"\x00\x01" * 100 + secret.encode() + b"\xff")
    (project / "ok.png").write_bytes(b"fine picture")
    before = sb.uploads_sent()
    for name in (".env", "notes.txt", "dump.bin"):
        done = run_script("upload_file.py", name, "--model", MODEL, "--no-cache", env=run_env, cwd=project)
        assert done.code == 10, (name, done.err)
        assert f"refusing to upload {name}: it holds credentials" in done.err
        assert_clean_error(without_notice(done) if done.err.startswith("note: ") else done)
        assert done.out == "" and sb.api_key[6:18] not in done.out + done.err
        assert leaks(done.out + done.err, (CANARY_KEY, secret)) == []
    assert sb.uploads_sent() == before                       # not even a getPolicy or a bucket call
    done = run_script("upload_file.py", "ok.png", "--model", MODEL, "--no-cache", env=run_env, cwd=project)
    assert done.code == 0 and done.out.strip() and sb.uploads_sent() > before  # the same set-up uploads a picture


# (home-relative store, content that holds no secret this run loads: the place alone must refuse it)
STORES = [
    (".ssh/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n"
                    "-----END OPENSSH PRIVATE KEY-----\n"),
    (".ssh/config", "Host prod\n  IdentityFile ~/.ssh/deploy\n"),
    (".docker/config.json", '{"auths": {"registry.example": {"auth": "dXNlcjpwYXNzd29yZA=="}}}'),
    (".kube/config", "apiVersion: v1\nusers:\n- name: admin\n  user:\n    token: abcdef0123456789\n"),
    (".config/gh/hosts.yml", "github.com:\n    oauth_token: gho_0123456789abcdef\n"),
    (".config/gcloud/application_default_credentials.json",
     '{"refresh_token": "1//0abcdef", "type": "authorized_user"}'),
    (".config/gcloud/credentials.db", "SQLite format 3\x00 tokens"),
    (".aws/credentials", "[default]\naws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n"),
    (".aws/config", "[default]\nregion = us-east-1\n"),
    (".netrc", "machine example.com login me password hunter2\n"),
    (".git-credentials", "https://me:ghp_0123456789@github.com\n"),
    (".npmrc", "//registry.npmjs.org/:_authToken=npm_0123456789\n"),
    (".pypirc", "[pypi]\npassword = pypi-0123456789\n"),
    (".dashscope/api_key", "sk-" + "5" * 32 + "\n"),
    (".bailian/config.json", '{"api_key": "sk-' + "6" * 32 + '"}'),
    (".aliyun/config.json", '{"profiles": [{"access_key_secret": "abcdef0123456789"}]}'),
]


@pytest.mark.parametrize("store,content", STORES, ids=[s for s, _ in STORES])
def test_a_link_to_a_credential_store_is_refused_and_nothing_is_sent(sb, env, project, store, content):
    from qianwen_ops.uploads import upload_many

    settings = sandbox_settings(env, sb, project)
    target = settings.home / store
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    (project / "photo.png").symlink_to(target)
    before = sb.uploads_sent()
    direct, linked = upload_many([str(target), str(project / "photo.png")], MODEL, settings=settings, use_cache=False)
    for outcome in (direct, linked):
        assert outcome.upload is None and outcome.error.exit_code == INPUT_FILE, outcome
        assert "it holds credentials" in outcome.error.message
    assert f"(it is ~/{store}" in linked.error.message      # says what the link really is
    assert sb.uploads_sent() == before


def test_photo_png_linking_to_id_rsa_is_refused_by_the_script(sb, env, project):
    home = Path(env["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text(STORES[0][1])
    (project / "photo.png").symlink_to(home / ".ssh" / "id_rsa")
    (project / ".env").write_text("DASHSCOPE_API_KEY=sk-" + "7" * 32 + "\n")
    (project / "notes.png").symlink_to(project / ".env")          # a link to a file named like a credential
    (project / "deep.png").symlink_to(project / "notes.png")      # and a link to that link
    before = sb.uploads_sent()
    for name in ("photo.png", "notes.png", "deep.png"):
        done = run_script("upload_file.py", name, "--model", MODEL, "--no-cache", env=sandbox_env(env, sb),
                          cwd=project)
        assert done.code == 10 and f"refusing to upload {name}: it holds credentials" in done.err, done.err
        assert_clean_error(done)
        assert "OPENSSH" not in done.err and done.out == ""
    assert sb.uploads_sent() == before


@pytest.mark.parametrize("variable,inner", [("DASHSCOPE_API_KEY_FILE_PATH", ""), ("KUBECONFIG", ""),
                                            ("AWS_SHARED_CREDENTIALS_FILE", ""), ("DOCKER_CONFIG", "config.json"),
                                            ("DASHSCOPE_CACHE_PATH", "api_key"), ("GNUPGHOME", "pubring.kbx")])
def test_a_store_moved_by_its_variable_is_refused_too(sb, env, project, tmp_path, variable, inner):
    from qianwen_ops.uploads import upload_many

    folder = tmp_path / "elsewhere"
    folder.mkdir()
    store = folder / (inner or "credfile")
    store.write_text("token: abcdef0123456789\n")
    (project / "picture.jpg").symlink_to(store)
    value = str(folder if inner else store)
    if variable == "KUBECONFIG":
        value = os.pathsep.join([str(tmp_path / "missing"), value])
    settings = sandbox_settings(env, sb, project, **{variable: value})
    [outcome] = upload_many([str(project / "picture.jpg")], MODEL, settings=settings, use_cache=False)
    assert outcome.error is not None and "it holds credentials" in outcome.error.message


@pytest.mark.parametrize("header", ["-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----",
                                    "-----BEGIN PRIVATE KEY-----", "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                                    "-----BEGIN PGP PRIVATE KEY BLOCK-----", "PuTTY-User-Key-File-3: ssh-ed25519"])
def test_a_private_key_is_refused_whatever_its_name(sb, env, project, header):
    from qianwen_ops.uploads import upload_many

    (project / "holiday.png").write_bytes(b"\x89PNG\r\n" + header.encode() + b"\nMIIEpAIBAAKCAQEA\n")
    before = sb.uploads_sent()
    [outcome] = upload_many([str(project / "holiday.png")], MODEL, settings=sandbox_settings(env, sb, project),
                            use_cache=False)
    assert outcome.error is not None and "(a private key)" in outcome.error.message
    assert sb.uploads_sent() == before


def test_the_override_uploads_what_the_user_means_but_never_a_loaded_secret(sb, env, project):
    home = Path(env["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text(STORES[0][1])
    (project / "photo.png").symlink_to(home / ".ssh" / "id_ed25519")
    (project / "mine.txt").write_text(f"the key: {sb.api_key}\n")
    run_env = sandbox_env(env, sb)
    refused = run_script("upload_file.py", "photo.png", "--model", MODEL, "--no-cache", env=run_env, cwd=project)
    assert refused.code == 10
    allowed = run_script("upload_file.py", "photo.png", "mine.txt", "--model", MODEL, "--no-cache",
                         "--allow-credential-file", env=run_env, cwd=project)
    assert allowed.code == 10 and allowed.out.startswith("oss://") and len(allowed.out.splitlines()) == 1
    assert "refusing to upload mine.txt: it holds credentials" in allowed.err
    helped = run_script("upload_file.py", "--help", env=run_env, cwd=project)
    assert "--allow-credential-file" in helped.out and "~/.ssh" in helped.out


def test_ordinary_links_and_files_still_upload(sb, env, project):
    from qianwen_ops.uploads import upload_many

    (project / "real.png").write_bytes(b"a picture")
    (project / "alias.png").symlink_to(project / "real.png")
    (project / "config.json").write_text('{"theme": "dark"}')
    outcomes = upload_many([str(project / "alias.png"), str(project / "config.json")], MODEL,
                           settings=sandbox_settings(env, sb, project), use_cache=False)
    assert [o.error for o in outcomes] == [None, None]


# ---------------------------------------------------------------- a secret in a name or a URL (never sent, never shown)

def _everything_shown(done, project, home) -> str:
    """stdout, stderr, the evidence and the reuse cache of a run."""
    saved = [p.read_text(errors="replace") for folder in (project / "output", home / ".cache") if folder.exists()
             for p in folder.rglob("*") if p.is_file()]
    return "\n".join([done.out, done.err, *saved])


@pytest.mark.parametrize("backend", ["temp", "custom-oss"])
def test_a_key_in_a_file_name_is_refused_and_never_sent_printed_or_saved(sb, env, project, backend):
    run_env = sandbox_env(env, sb) if backend == "temp" else oss_env(env, sb, pair="sts")
    secret = sb.info["oss_sts_access_key_secret"] if backend == "custom-oss" else sb.api_key
    shaped = "sk-ws-" + "Q7" * 16          # a key nobody loaded: its shape alone
    names = [f"{sb.api_key}.png", f"shot_{sb.api_key[3:]}.jpg", f"{secret}.txt", f"{shaped}.png",
             f"IMG_{sb.api_key[5:17].upper()}.png"]
    for name in names + ["fine.png"]:
        (project / name).write_bytes(os.urandom(64))
    before = set(sb.objects())
    for extra in ([], ["--json"]):
        done = run_script("upload_file.py", *names, "fine.png", "--model", MODEL, "--no-cache", *extra, env=run_env,
                          cwd=project)
        assert done.code == 10, done.err
        assert done.err.count("its name holds an API key or a secret this run uses") == len(names), done.err
        urls = [line for line in done.out.splitlines() if '"error": ' not in line]
        assert len(urls) == 1 and "fine.png" in urls[0]     # the rest of the batch went up
        assert done.err.count("rename the file") == len(names)
        shown = _everything_shown(done, project, Path(env["HOME"]))
        assert leaks(shown, (sb.api_key, secret)) == [] and shaped[6:] not in shown
    added = set(sb.objects()) - before
    assert added and all(key.endswith("_fine.png") for key in added), added   # only the file with a clean name
    # six characters in common with the key (a timestamp, a counter) are a coincidence, not the key
    (project / f"IMG_{sb.api_key[5:11]}.png").write_bytes(os.urandom(64))
    done = run_script("upload_file.py", f"IMG_{sb.api_key[5:11]}.png", "--model", MODEL, "--no-cache", env=run_env,
                      cwd=project)
    assert done.code == 0 and done.out.strip(), done.err


def test_a_key_in_a_file_name_is_fine_with_inline_which_sends_no_name(env, project):
    (project / f"{CANARY_KEY}.png").write_bytes(b"\x89PNG\r\n\x1a\n picture")
    done = run_script("upload_file.py", "--inline", f"{CANARY_KEY}.png", "--json", env=dict(
        env, DASHSCOPE_API_KEY=CANARY_KEY), cwd=project)
    assert done.code == 0 and '"url": "data:image/png;base64,' in done.out and leaks(done.out + done.err) == []


def _key_urls(key: str) -> list:
    import base64

    return [f"https://img.example.com/cat.png?key={key}", f"https://img.example.com/{key}.png", f"data:,{key}",
            "https://img.example.com/cat.png?k=" + "".join(f"%{ord(c):02X}" for c in key),
            "data:text/plain;base64," + base64.b64encode(f"the key: {key}".encode()).decode(),
            "data:text/plain;base64," + base64.b64encode(key.encode("utf-16")).decode(),
            f"oss://dashscope-instant/dir/{key[3:]}.png", "https://img.example.com/sk-" + "R2d2" * 8 + ".png"]


def test_a_url_holding_a_key_is_refused_and_never_echoed(env, project):
    run_env = dict(env, DASHSCOPE_API_KEY=CANARY_KEY, QWEN_BASE_URL="http://127.0.0.1:9")
    urls = _key_urls(CANARY_KEY)
    for extra in ([], ["--json"], ["--inline"]):
        done = run_script("upload_file.py", *urls, "https://img.example.com/cat.png", "--model", MODEL, *extra,
                          env=run_env, cwd=project)
        assert done.code == 10 and "Traceback" not in done.err, done.err
        assert done.err.count("refusing to pass it to the model") == len(urls), done.err
        passed = [line for line in done.out.splitlines() if '"error": ' not in line]
        assert len(passed) == 1 and "https://img.example.com/cat.png" in passed[0]   # a clean URL passes unchanged
        shown = _everything_shown(done, project, Path(env["HOME"]))
        assert leaks(shown) == [] and "R2d2" * 8 not in shown


def test_library_never_hands_back_a_url_holding_a_loaded_secret(sb, env, project):
    from qianwen_ops.uploads import upload_many

    settings = sandbox_settings(env, sb, project)
    outcomes = upload_many(_key_urls(sb.api_key), MODEL, settings=settings, use_cache=False)
    assert all(o.upload is None and o.error.exit_code == INPUT_FILE for o in outcomes), outcomes
    text = "\n".join(f"{o.source} {o.error} {o.error!r}" for o in outcomes)
    assert leaks(text, (sb.api_key,)) == []


# ---------------------------------------------------------------- the file judged is the file read

AWS_CREDENTIALS = "[default]\naws_access_key_id = AKIAEXAMPLE0000\naws_secret_access_key = " + "c" * 40 + "\n"


def _decoy_beside(store: Path, folder: Path) -> Path:
    """A harmless file with the store's size and mtime (what a swapper prepares), in ``folder``."""
    decoy = folder / "decoy.png"
    decoy.write_bytes(b"\x89PNG" + b"\0" * (store.stat().st_size - 4))
    os.utime(decoy, ns=(store.stat().st_atime_ns, store.stat().st_mtime_ns))
    return decoy


def _repoint(link: Path, target: Path) -> None:
    tmp = link.with_name(".swap")
    tmp.symlink_to(target)
    os.replace(tmp, link)


def test_a_link_re_pointed_while_the_policy_is_fetched_uploads_nothing(sb, env, project, monkeypatch):
    from qianwen_ops import temp_storage
    from qianwen_ops.uploads import upload_many

    settings = sandbox_settings(env, sb, project)
    store = settings.home / ".aws" / "credentials"
    store.parent.mkdir()
    store.write_text(AWS_CREDENTIALS)
    link = project / "photo.png"
    link.symlink_to(_decoy_beside(store, project))
    fetch = temp_storage.TempStorage.max_bytes

    def swap_during_get_policy(self, model):   # the window the red team used: a getPolicy round trip
        _repoint(link, store)
        return fetch(self, model)

    monkeypatch.setattr(temp_storage.TempStorage, "max_bytes", swap_during_get_policy)
    [outcome] = upload_many([str(link)], MODEL, settings=settings, use_cache=False)
    assert outcome.upload is None and outcome.error.exit_code == INPUT_FILE, outcome
    assert "changed after it was checked" in outcome.error.message
    assert not [o for o in sb.objects().values() if o.get("size") == store.stat().st_size]


def test_every_reader_refuses_a_file_that_is_not_the_one_checked(env, project):
    from qianwen_ops.inline import data_url
    from qianwen_ops.local_files import FileSlice, HashedReader, check_file, open_regular, sha256_of
    from qianwen_ops.secret_files import refuse_credentials

    home = Path(env["HOME"])
    (home / ".aws").mkdir()
    store = home / ".aws" / "credentials"
    store.write_text(AWS_CREDENTIALS)
    link = project / "photo.png"
    link.symlink_to(_decoy_beside(store, project))
    local = check_file(link)                    # judged: the decoy
    _repoint(link, store)                       # read: the store, same size and mtime
    readers = {"open_regular": lambda: os.close(open_regular(local)), "HashedReader": lambda: list(HashedReader(local)),
               "FileSlice": lambda: list(FileSlice(local, 0, local.size)), "sha256_of": lambda: sha256_of(local),
               "data_url": lambda: data_url(local), "content check": lambda: refuse_credentials(local, "photo.png")}
    for name, read in readers.items():
        with pytest.raises(QwenOpsError) as info:
            read()
        assert info.value.exit_code == INPUT_FILE and "changed after it was checked" in info.value.message, name


def test_a_file_written_while_it_is_read_is_refused_even_with_size_and_mtime_put_back(project):
    from qianwen_ops.local_files import HashedReader, check_file

    path = project / "photo.png"
    path.write_bytes(b"a" * 3000)
    local = check_file(path)
    reader = iter(HashedReader(local, chunk_size=1000))
    next(reader)
    info = path.stat()
    with open(path, "r+b") as handle:   # rewritten in place: same size, mtime put back, ctime moves
        handle.write(b"b" * 3000)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    with pytest.raises(QwenOpsError) as caught:
        list(reader)
    assert "changed while it was being read" in caught.value.message


def test_a_link_re_pointed_while_it_is_judged_is_refused(env, project):
    from qianwen_ops.local_files import check_file
    from qianwen_ops.secret_files import refuse_by_place

    home = Path(env["HOME"])
    (home / ".aws").mkdir()
    store = home / ".aws" / "credentials"
    store.write_text(AWS_CREDENTIALS)
    link = project / "photo.png"
    link.symlink_to(store)
    local = check_file(link)                        # the identity of the store...
    _repoint(link, _decoy_beside(store, project))   # ...and a real path that names a harmless file
    with pytest.raises(QwenOpsError) as info:
        refuse_by_place(local, "photo.png", home, {})
    assert info.value.exit_code == INPUT_FILE and "changed while it was being checked" in info.value.message


@needs_symlinks
def test_one_judge_for_a_batch_answers_each_file_as_a_fresh_check_does(env, project):
    """The batch's PlaceJudge resolves each folder once: plain files first fill its memo, and the links, stores
    and credential names after them in the same folders still get the answer a check of their own gives."""
    from qianwen_ops.local_files import check_file
    from qianwen_ops.secret_files import PlaceJudge, refuse_by_place

    def verdict(local, judge=None):
        try:
            refuse_by_place(local, "it", home, {}, judge=judge)
        except QwenOpsError as refused:
            return refused.message
        return ""

    home = Path(env["HOME"])
    for store, content in STORES[:3]:
        (home / store).parent.mkdir(parents=True, exist_ok=True)
        (home / store).write_text(content)
    (project / "shots").mkdir()
    (project / "linked").symlink_to(home / ".ssh")                 # a folder that is a store, by a link
    (project / ".bailian").mkdir()
    for i in range(3):
        (project / "shots" / f"p{i}.png").write_bytes(b"picture")
    (project / "shots" / "photo.png").symlink_to(home / ".ssh" / "id_rsa")
    (project / "shots" / "deploy.png").symlink_to(home / ".docker" / "config.json")
    os.link(home / ".ssh" / "config", project / "shots" / "hard.png")
    (project / "shots" / ".env").write_text("X=1\n")
    (project / ".bailian" / "config.json").write_text("{}")
    names = ["shots/p0.png", "shots/p1.png", "shots/photo.png", "shots/deploy.png", "shots/hard.png", "shots/.env",
             "linked/config", "shots/p2.png", ".bailian/config.json", "shots/../shots/p0.png"]
    judge = PlaceJudge(home, {})
    found = {}
    for name in names:
        local = check_file(project / name)
        found[name] = verdict(local, judge)
        assert found[name] == verdict(local), name
    assert found["shots/photo.png"] == "refusing to upload it: it holds credentials (it is ~/.ssh/id_rsa)"
    assert found["linked/config"] == found["shots/hard.png"] == (
        "refusing to upload it: it holds credentials (it is ~/.ssh/config, a credential store)")
    assert [name for name in names if found[name]] == ["shots/photo.png", "shots/deploy.png", "shots/hard.png",
                                                       "shots/.env", "linked/config", ".bailian/config.json"]


@needs_symlinks
def test_a_folder_re_pointed_after_the_judge_resolved_it_is_judged_by_the_file_read(env, project):
    """The judge keeps each folder's real path for the batch; a folder swapped for a link to ~/.ssh meanwhile gets
    its files judged by their identity (the file at the kept path is the store)."""
    from qianwen_ops.local_files import check_file
    from qianwen_ops.secret_files import PlaceJudge, refuse_by_place

    home = Path(env["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "photo.png").write_text(STORES[0][1])
    (project / "shots").mkdir()
    (project / "shots" / "first.png").write_bytes(b"picture")
    judge = PlaceJudge(home, {})
    refuse_by_place(check_file(project / "shots" / "first.png"), "shots/first.png", home, {}, judge=judge)
    (project / "shots" / "first.png").unlink()
    (project / "shots").rmdir()
    (project / "shots").symlink_to(home / ".ssh")
    local = check_file(project / "shots" / "photo.png")
    with pytest.raises(QwenOpsError) as info:
        refuse_by_place(local, "shots/photo.png", home, {}, judge=judge)
    assert "it holds credentials (it is ~/.ssh/photo.png, a credential store)" in info.value.message


# ---------------------------------------------------------------- a store under another name

@pytest.mark.parametrize("store,variable", [(".docker/config.json", ""), (".kube/config", ""), (".ssh/config", ""),
                                            (".gnupg/private-keys-v1.d/A1B2.key", ""),
                                            ("elsewhere/docker/config.json", "DOCKER_CONFIG")])
def test_a_store_under_another_name_is_refused_by_its_identity(sb, env, project, store, variable):
    """A hard link here; another letter case on a case-insensitive volume (macOS) and a bind mount give the same:
    another path, the store's device and inode."""
    from qianwen_ops.uploads import upload_many

    home = Path(env["HOME"])
    target = home / store
    target.parent.mkdir(parents=True)
    target.write_text("{\"auths\": {\"registry.example\": {\"auth\": \"dXNlcjpwYXNzd29yZA==\"}}}\n")
    (project / "vendor").mkdir()
    other = project / "vendor" / "settings.json"
    os.link(target, other)
    extra = {variable: str(target.parent)} if variable else {}
    before = sb.uploads_sent()
    [outcome] = upload_many([str(other)], MODEL, settings=sandbox_settings(env, sb, project, **extra), use_cache=False)
    assert outcome.upload is None and "it holds credentials" in outcome.error.message, outcome
    assert "a credential store" in outcome.error.message and sb.uploads_sent() == before


@pytest.mark.parametrize("value", ["~/.config/ds/key", "keys/ds-key", "./keys/../keys/ds-key"])
def test_the_sdk_key_file_is_a_store_wherever_the_key_chain_reads_it(sb, env, project, monkeypatch, value):
    from qianwen_ops.credentials import sdk_key_file_path
    from qianwen_ops.uploads import upload_many

    monkeypatch.chdir(project)                     # a relative value names a file of the working folder
    home = Path(env["HOME"])
    target = (home / value[2:]) if value.startswith("~/") else project / value
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("sk-" + "0ld0ther" * 4 + "\n")   # a second account's key: not the one in effect
    (project / "photo.png").symlink_to(target.resolve())
    settings = sandbox_settings(env, sb, project, DASHSCOPE_API_KEY_FILE_PATH=value)
    assert os.path.samefile(sdk_key_file_path(settings)[0], target)   # the key chain reads this very file
    [outcome] = upload_many(["photo.png"], MODEL, settings=settings, use_cache=False)
    assert outcome.upload is None and "a credential store" in outcome.error.message, outcome


# ---------------------------------------------------------------- a loaded secret in another encoding

@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
@pytest.mark.parametrize("mode", ["--inline", "upload"])
def test_a_loaded_key_saved_in_utf16_or_utf32_is_refused(sb, env, project, encoding, mode):
    """PowerShell 5.1's `echo $env:DASHSCOPE_API_KEY > key.txt` writes UTF-16LE with a BOM."""
    (project / "key.txt").write_bytes((sb.api_key + "\r\n").encode(encoding))
    args = ["--inline"] if mode == "--inline" else ["--model", MODEL, "--no-cache"]
    before = sb.uploads_sent()
    done = run_script("upload_file.py", "key.txt", *args, env=sandbox_env(env, sb), cwd=project)
    verb = "inline" if mode == "--inline" else "upload"
    assert done.code == 10 and f"refusing to {verb} key.txt: it holds credentials" in done.err, done.err
    assert done.out == "" and sb.uploads_sent() == before
