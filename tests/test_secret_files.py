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
    oss_env,
    run_script,
    sandbox_env,
    sandbox_settings,
    without_notice,
)
from qianwen_ops.errors import INPUT_FILE
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
