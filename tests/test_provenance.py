"""Trust by origin: a .env (a tracked one above all) may not choose where the key, the files or the traffic go,
not even through load_dotenv() in the user's app."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import (
    CANARY_KEY,
    MODEL,
    assert_clean_error,
    git,
    leaks,
    needs_root,
    needs_symlinks,
    oss_env,
    run_script,
)
from qianwen_ops.settings import Settings

APP = """
import sys
from dotenv import load_dotenv
load_dotenv()                     # as SKILL.md and the README once recommended
sys.path.insert(0, {scripts!r})
from qianwen_ops import QwenOpsError, resolve_file
try:
    print(resolve_file("pic.png", "qwen-vl-plus", use_cache=False))
except QwenOpsError as exc:
    print("QwenOpsError", exc.exit_code, exc)
    sys.exit(exc.exit_code)
"""



def _run_app(project: Path, run_env: dict, dotenv: str, tracked: bool = True):
    import subprocess

    from conftest import SCRIPTS

    (project / ".env").write_text(dotenv)
    (project / "pic.png").write_bytes(os.urandom(300))
    (project / "app.py").write_text(APP.format(scripts=str(SCRIPTS)))
    git(project, "init", "-q")
    if tracked:
        git(project, "add", ".env")
    done = subprocess.run([sys.executable, "app.py"], cwd=project, env=run_env, capture_output=True, text=True,
                          timeout=60)
    return done


def _app_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}


def test_load_dotenv_then_resolve_file_never_sends_the_key_to_a_tracked_base_url(env, project, listener):
    done = _run_app(project, _app_env(env), f"DASHSCOPE_API_KEY={CANARY_KEY}\n"
                    f"QWEN_BASE_URL=http://127.0.0.1:{listener.port}\n")
    assert done.returncode == 9 and f"QWEN_BASE_URL in {project / '.env'}" in done.stdout, (done.stdout, done.stderr)
    assert listener.received == [] and leaks(done.stdout + done.stderr) == []


def test_load_dotenv_then_resolve_file_never_uses_a_tracked_bucket(sb, env, project):
    info = sb.info
    before = sb.counts()
    done = _run_app(project, dict(_app_env(env), QWEN_BASE_URL=sb.base_url, DASHSCOPE_API_KEY=sb.api_key),
                    f"QWEN_TMP_OSS_BUCKET={info['oss_bucket']}\nQWEN_TMP_OSS_REGION={info['oss_region']}\n"
                    f"QWEN_TMP_OSS_ENDPOINT={info['oss_endpoint']}\nQWEN_TMP_OSS_AK_ID={info['oss_access_key_id']}\n"
                    f"QWEN_TMP_OSS_AK_SECRET={info['oss_access_key_secret']}\n")
    assert done.returncode == 9 and "QWEN_TMP_OSS_BUCKET in" in done.stdout, (done.stdout, done.stderr)
    assert sb.counts() == before


@pytest.mark.parametrize("names", [("HTTP_PROXY",), ("ALL_PROXY",), ("http_proxy", "HTTPS_PROXY")])
def test_load_dotenv_then_resolve_file_never_uses_a_tracked_proxy(sb, env, project, listener, names):
    lines = "".join(f"{name}=http://127.0.0.1:{listener.port}\n" for name in names)
    run_env = dict(_app_env(env), QWEN_BASE_URL=sb.base_url, DASHSCOPE_API_KEY=sb.api_key)
    done = _run_app(project, run_env, lines)
    assert done.returncode == 0 and done.stdout.startswith("oss://"), (done.stdout, done.stderr)
    assert listener.received == []                            # went direct, as the scripts do
    assert f"warning: {names[0]} in the environment is the value {project / '.env'} sets" in done.stderr
    # the same lines in a .env git ignores are the user's own: the proxy is used (and refuses credentials
    # over plain http, so nothing is sent to it either)
    (project / ".gitignore").write_text(".env\n")
    git(project, "rm", "-q", "--cached", ".env")
    done = _run_app(project, run_env, lines, tracked=False)
    assert done.returncode == 9 and "through proxy 127.0.0.1" in done.stdout, (done.stdout, done.stderr)


@pytest.mark.parametrize("name", ["SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                                  "HTTPS_PROXY", "NO_PROXY", "QWEN_BASE_URL", "QWEN_TMP_OSS_ENDPOINT",
                                  "DASHSCOPE_HTTP_BASE_URL", "DASHSCOPE_WORKSPACE_ID"])
def test_a_value_identical_to_a_tracked_dotenv_line_is_that_files(env, project, tmp_path, name):
    from qianwen_ops import network

    value = {"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "*", "QWEN_BASE_URL": "http://127.0.0.1:9",
             "QWEN_TMP_OSS_ENDPOINT": "http://127.0.0.1:9", "DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:9/api/v1",
             "DASHSCOPE_WORKSPACE_ID": "ws-evil"}.get(name, str(tmp_path / "evil-ca.pem"))
    (project / ".env").write_text(f"{name}={value}\n")
    git(project, "init", "-q")
    git(project, "add", ".env")
    copied = Settings.from_process(cwd=project, env=dict(env, **{name: value}))
    assert name not in copied.env                              # judged as the file's, so not the environment's
    own = Settings.from_process(cwd=project, env=dict(env, **{name: value + "0"}))
    assert own.env[name] == value + "0"                        # the user's own, different value stands
    if name.endswith(("CERT_FILE", "CERT_DIR", "BUNDLE")):
        assert network.trust_setting(copied.env).source == "system"
    sub = project / "sub" / "deeper"
    sub.mkdir(parents=True)
    assert name not in Settings.from_process(cwd=sub, env=dict(env, **{name: value})).env


def test_tracked_dotenv_cannot_choose_the_bucket(sb, env, project):
    info = sb.info
    (project / ".env").write_text(f"QWEN_TMP_OSS_BUCKET={info['oss_bucket']}\nQWEN_TMP_OSS_REGION=cn-beijing\n")
    git(project, "init", "-q")
    git(project, "add", ".env")
    git(project, "commit", "-qm", "a cloned repository's .env")
    (project / "x.bin").write_bytes(b"x")
    run_env = oss_env(env, sb)
    for name in ("QWEN_TMP_OSS_BUCKET", "QWEN_TMP_OSS_REGION"):
        run_env.pop(name)
    before = sb.counts()
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=run_env, cwd=project)
    assert result.code == 9 and sb.counts() == before
    assert f"QWEN_TMP_OSS_BUCKET in {project / '.env'} is not used: git tracks that file" in result.err
    assert "set your own value in the environment" in result.err and "instead" not in result.err
    assert_clean_error(result)
    # the same lines in a .env that git does not track are the user's own: they work
    git(project, "rm", "-q", "--cached", ".env")
    result = run_script("upload_file.py", "x.bin", "--model", MODEL, env=run_env, cwd=project)
    assert result.code == 0, result.err
    assert f"(QWEN_TMP_OSS_BUCKET from {project / '.env'})" in result.err


def test_tracked_dotenv_cannot_choose_the_api_host(env, project):
    (project / ".env").write_text("QWEN_BASE_URL=https://dashscope-intl.aliyuncs.com\n")
    git(project, "init", "-q")
    git(project, "add", ".env")
    result = run_script("probe.py", env=dict(env, DASHSCOPE_API_KEY="sk-abcdef123456"), cwd=project)
    assert result.code == 9 and "git tracks that file" in result.err
    assert_clean_error(result)


@pytest.mark.parametrize("line,name,script", [
    ("QWEN_BASE_URL=http://127.0.0.1:9", "QWEN_BASE_URL", "probe.py"),
    ("QWEN_TMP_OSS_ENDPOINT=http://127.0.0.1:9", "QWEN_TMP_OSS_ENDPOINT", "upload_file.py"),
])
def test_loopback_endpoints_only_from_the_environment(sb, env, project, line, name, script):
    (project / ".env").write_text(line + "\n")
    run_env = oss_env(env, sb) if script == "upload_file.py" else dict(env, DASHSCOPE_API_KEY="sk-abcdef123456")
    run_env.pop(name, None)
    (project / "x.bin").write_bytes(b"x")
    args = ["x.bin", "--model", MODEL] if script == "upload_file.py" else []
    result = run_script(script, *args, env=run_env, cwd=project)
    assert result.code == 9 and f"{name} in {project / '.env'} points to 127.0.0.1, which is a loopback host" \
        in result.err, result.err


def loaded_env(dotenv: Path, base: dict, override: bool = False) -> dict:
    """The process environment after python-dotenv's real ``load_dotenv(dotenv)`` ran on ``base``."""
    from dotenv import load_dotenv

    saved = os.environ
    os.environ = dict(base)  # noqa: B003 - what python-dotenv reads and writes; restored below
    try:
        load_dotenv(dotenv, override=override)
        return dict(os.environ)
    finally:
        os.environ = saved  # noqa: B003


def tracked(project: Path, text: str, name: str = ".env") -> Path:
    (project / name).write_text(text)
    git(project, "init", "-q")
    git(project, "add", name)
    return project / name


# (a tracked .env's lines, the name judged, the user's environment before load_dotenv, override)
INTERPOLATIONS = [
    ("QWEN_BASE_URL=http://127.0.0.1:9${NO_SUCH_VARIABLE}\n", "QWEN_BASE_URL", {}, False),
    ("HTTPS_PROXY=http://127.0.0.1:9${UNSET:-}\n", "HTTPS_PROXY", {}, False),
    ("SSL_CERT_FILE=${HOME}/evil-ca.pem\n", "SSL_CERT_FILE", {}, False),
    ("D=/srv\nREQUESTS_CA_BUNDLE=${D}/ca.pem\n", "REQUESTS_CA_BUNDLE", {}, False),
    ("QWEN_TMP_OSS_ENDPOINT=${HOST:-http://127.0.0.1:9}\n", "QWEN_TMP_OSS_ENDPOINT", {}, False),
    ("NO_PROXY=${NO_PROXY},.evil.example\n", "NO_PROXY", {"NO_PROXY": "localhost"}, True),   # expands itself
    ("HTTP_PROXY=http://127.0.0.1:9/${HTTP_PROXY}\n", "HTTP_PROXY", {"HTTP_PROXY": "http://corp:3128"}, True),
    ("XDG_CACHE_HOME=.qcache${X}\n", "XDG_CACHE_HOME", {}, False),
]


@pytest.mark.parametrize("text,name,before,override", INTERPOLATIONS)
def test_what_load_dotenv_expands_from_a_tracked_line_is_that_files(env, project, text, name, before, override):
    dotenv = tracked(project, text)
    base = {k: v for k, v in _app_env(env).items() if k != name}
    after = loaded_env(dotenv, dict(base, **before), override)
    assert after.get(name) and after[name] != before.get(name)            # load_dotenv() did put it there
    assert name not in Settings.from_process(cwd=project, env=after).env   # judged as the tracked file's


@pytest.mark.parametrize("text,name,own", [
    ("HTTPS_PROXY=http://${PROXY_HOST}:3128\n", "HTTPS_PROXY", "http://corp:3128"),   # skipped: already set
    ("NO_PROXY=${NO_PROXY}\n", "NO_PROXY", "localhost,.corp"),                       # the user's value, kept
])
@pytest.mark.parametrize("override", [False, True])
def test_the_users_own_value_is_not_judged_by_a_template_it_happens_to_fit(env, project, text, name, own, override):
    dotenv = tracked(project, text)
    after = loaded_env(dotenv, dict(_app_env(env), **{name: own}), override)
    if after[name] == own:
        assert Settings.from_process(cwd=project, env=after).env[name] == own


def test_load_dotenv_interpolation_never_sends_the_key_to_a_tracked_base_url(env, project, listener):
    done = _run_app(project, _app_env(env), f"DASHSCOPE_API_KEY={CANARY_KEY}\n"
                    f"QWEN_BASE_URL=http://127.0.0.1:{listener.port}${{NO_SUCH_VARIABLE}}\n")
    assert done.returncode == 9 and "git tracks that file" in done.stdout, (done.stdout, done.stderr)
    assert listener.received == [] and leaks(done.stdout + done.stderr) == []


UNREADABLE = {
    "a NUL byte in a comment": b"# generated\x00\nQWEN_BASE_URL=http://127.0.0.1:9\n",
    "over 1 MiB of comments": b"#" + b"x" * (1024 * 1024) + b"\nQWEN_BASE_URL=http://127.0.0.1:9\n",
}


@pytest.mark.parametrize("raw", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_a_tracked_dotenv_the_settings_refuse_to_read_is_still_compared(env, project, raw):
    (project / ".env").write_bytes(raw)
    git(project, "init", "-q")
    git(project, "add", ".env")
    after = loaded_env(project / ".env", env)
    assert after["QWEN_BASE_URL"] == "http://127.0.0.1:9"                  # python-dotenv reads it
    assert "QWEN_BASE_URL" not in Settings.from_process(cwd=project, env=after).env


@needs_root
def test_a_tracked_dotenv_owned_by_another_user_is_still_compared(env, project, capfd):
    dotenv = tracked(project, "QWEN_BASE_URL=http://127.0.0.1:9\n")
    after = loaded_env(dotenv, env)
    os.chown(dotenv, 65534, -1)   # "nobody": the settings skip it, python-dotenv read it all the same
    assert "QWEN_BASE_URL" not in Settings.from_process(cwd=project, env=after).env
    assert "owned by another user" in capfd.readouterr().err


def test_a_dotenv_planted_in_a_shared_parent_is_judged_too(env, tmp_path, capfd):
    from qianwen_ops.endpoints import resolve_endpoint

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)                   # a /tmp-like folder: anyone could have put this .env there
    (shared / ".env").write_text("QWEN_BASE_URL=http://127.0.0.1:9\nHTTPS_PROXY=http://127.0.0.1:9\n")
    project = shared / "myproj"
    project.mkdir()
    git(project, "init", "-q")
    after = loaded_env(shared / ".env", _app_env(env))   # what find_dotenv() picks from the project
    settings = Settings.from_process(cwd=project, env=after)
    assert "QWEN_BASE_URL" not in settings.env and "HTTPS_PROXY" not in settings.env
    assert resolve_endpoint(settings).root == "https://dashscope.aliyuncs.com"
    assert "is writable by other users" in capfd.readouterr().err


def test_names_compare_case_insensitively_where_the_environment_does(env, project, monkeypatch):
    """Windows: os.environ upper-cases names, so a tracked ``https_proxy=`` line arrives as HTTPS_PROXY."""
    from qianwen_ops import provenance

    dotenv = tracked(project, "https_proxy=http://127.0.0.1:9\nqwen_base_url=https://evil.example\n")
    after = {k.upper(): v for k, v in loaded_env(dotenv, _app_env(env)).items()}   # as Windows' os.environ has them
    monkeypatch.setattr(provenance, "CASE_INSENSITIVE_ENV", True)
    judged = Settings.from_process(cwd=project, env=after).env
    assert "HTTPS_PROXY" not in judged and "QWEN_BASE_URL" not in judged
    monkeypatch.setattr(provenance, "CASE_INSENSITIVE_ENV", False)   # POSIX: different names, not the file's
    assert Settings.from_process(cwd=project, env=after).env["HTTPS_PROXY"] == "http://127.0.0.1:9"


@pytest.mark.parametrize("name", ["XDG_CACHE_HOME", "XDG_STATE_HOME", "OPENSSL_CONF", "SSLKEYLOGFILE"])
def test_cache_folders_and_process_wide_tls_settings_from_a_tracked_dotenv_are_judged(env, project, capfd, name):
    from qianwen_ops.upload_cache import cache_path

    dotenv = tracked(project, f"{name}=in-the-repo\n")
    after = loaded_env(dotenv, {k: v for k, v in env.items() if k != name})
    settings = Settings.from_process(cwd=project, env=after)
    assert name not in settings.env
    assert f"warning: {name} in the environment is the value {dotenv} sets" in capfd.readouterr().err
    if name == "XDG_CACHE_HOME":
        assert cache_path(settings.env) == Path(env["HOME"]) / ".cache" / "qianwen-ops-auth" / "uploads.jsonl"


def _doctor_line(result, name: str) -> str:
    return next(line for line in result.out.splitlines() if line.split("]", 1)[-1].strip().startswith(name + ":"))


def test_in_a_work_tree_a_dotenv_git_cannot_answer_for_counts_as_tracked(env, project, tmp_path):
    tracked(project, "QWEN_BASE_URL=https://dashscope-intl.aliyuncs.com\n")
    no_git = dict(env, PATH=str(tmp_path / "no-git-here"), DASHSCOPE_API_KEY="sk-abcdef123456")
    doctor = run_script("doctor.py", "--offline", env=no_git, cwd=project)
    line = _doctor_line(doctor, "endpoint")
    assert line.startswith("[FAIL]") and "is not used: git could not say whether it tracks that file (git is not " \
        "installed" in line, doctor.out
    (project / ".git").rename(project / "not-git")   # no work tree: nothing to ask, the file is the user's
    assert _doctor_line(run_script("doctor.py", "--offline", env=no_git, cwd=project), "endpoint").startswith("[ok]")


def test_a_tracked_dotenv_that_breaks_git_through_load_dotenv_still_counts_as_tracked(env, project, listener):
    (project / "cfg" / "git").mkdir(parents=True)
    (project / "cfg" / "git" / "config").write_text("[broken\n")
    git(project, "init", "-q")
    git(project, "add", "cfg")
    done = _run_app(project, dict(_app_env(env), DASHSCOPE_API_KEY=CANARY_KEY),
                    f"XDG_CONFIG_HOME=cfg\nQWEN_BASE_URL=http://127.0.0.1:{listener.port}\n")
    assert done.returncode == 9 and "git tracks that file" in done.stdout, (done.stdout, done.stderr)
    assert listener.received == []


def test_without_git_the_library_refuses_a_tracked_base_url_too(env, project, listener, tmp_path):
    done = _run_app(project, dict(_app_env(env), DASHSCOPE_API_KEY=CANARY_KEY, PATH=str(tmp_path / "no-git")),
                    f"QWEN_BASE_URL=http://127.0.0.1:{listener.port}\n")
    assert done.returncode == 9 and "git could not say" in done.stdout, (done.stdout, done.stderr)
    assert listener.received == []


@needs_symlinks
def test_an_untracked_link_to_a_tracked_file_is_that_files(env, project):
    from qianwen_ops.endpoints import resolve_endpoint
    from qianwen_ops.errors import QwenOpsError

    tracked(project, "QWEN_BASE_URL=https://dashscope-intl.aliyuncs.com\n", name=".env.example")
    os.symlink(".env.example", project / ".env")
    with pytest.raises(QwenOpsError, match="git tracks that file"):
        resolve_endpoint(Settings.from_process(cwd=project, env=_app_env(env)))


@pytest.mark.parametrize("script", ["probe.py", "doctor.py"])
def test_a_tracked_unknown_host_is_refused_as_tracked_first_never_set_it_in_the_environment(env, project, script):
    tracked(project, "QWEN_BASE_URL=https://evil.example.com\n")
    result = run_script(script, *(["--offline"] if script == "doctor.py" else []),
                        env=dict(env, DASHSCOPE_API_KEY="sk-abcdef123456"), cwd=project)
    first = result.err.splitlines()[0] if script == "probe.py" else _doctor_line(result, "endpoint")
    assert "QWEN_BASE_URL in" in first and "is not used: git tracks that file" in first, first
    assert "instead" not in result.out + result.err and "not a documented host" not in result.out + result.err


def test_a_key_from_a_tracked_dotenv_gets_one_warning_line_and_is_used(sb, env, project):
    tracked(project, f"DASHSCOPE_API_KEY={sb.api_key}\n")
    (project / "x.png").write_bytes(b"a picture")
    run_env = dict(_app_env(env), QWEN_BASE_URL=sb.base_url)
    warning = (f"warning: the API key comes from {project / '.env'}, which git tracks: in a cloned repository that "
               "is someone else's key: use your own, in the environment or in a .env git ignores")
    probe = run_script("probe.py", env=run_env, cwd=project)
    upload = run_script("upload_file.py", "x.png", "--model", MODEL, env=run_env, cwd=project)
    assert probe.code == 0 and probe.err.splitlines() == [warning], probe.err
    assert upload.code == 0 and upload.err.splitlines() == [warning] and upload.out.startswith("oss://"), upload.err
    doctor = run_script("doctor.py", "--offline", env=run_env, cwd=project)
    assert _doctor_line(doctor, "api key").startswith("[warn]") and "someone else's key" in doctor.out
    own = run_script("doctor.py", "--offline", env=dict(run_env, DASHSCOPE_API_KEY="sk-" + "a1" * 16), cwd=project)
    assert "overrides a different key in" in own.out and "unset DASHSCOPE_API_KEY" not in own.out
    assert "keep yours" in own.out and "someone else's key" not in _doctor_line(own, "api key")
    git(project, "rm", "-q", "--cached", ".env")          # the user's own .env: no warning
    assert run_script("probe.py", env=run_env, cwd=project).err == ""


SETTINGS_MODULE_APP = """
import sys
sys.path.insert(0, {scripts!r})
import mysite.settings            # Django/FastAPI style: the settings module calls load_dotenv()
from qianwen_ops import QwenOpsError, api_settings, resolve_file
try:
    print(api_settings().base_url)
    print(resolve_file("pic.png", "qwen-vl-plus", use_cache=False))
except QwenOpsError as exc:
    print("QwenOpsError", exc.exit_code, exc)
"""


def test_a_dotenv_load_dotenv_finds_from_the_calling_module_is_judged_too(env, project, listener):
    """find_dotenv() starts from the folder of the module that calls load_dotenv(), not the main script's."""
    import subprocess

    from conftest import SCRIPTS

    (project / "mysite").mkdir()
    (project / "mysite" / "__init__.py").write_text("")
    (project / "mysite" / "settings.py").write_text("from dotenv import load_dotenv\nload_dotenv()\n")
    (project / "mysite" / ".env").write_text(f"QWEN_BASE_URL=http://127.0.0.1:{listener.port}/compatible-mode/v1\n")
    (project / "manage.py").write_text(SETTINGS_MODULE_APP.format(scripts=str(SCRIPTS)))
    (project / "pic.png").write_bytes(os.urandom(300))
    git(project, "init", "-q")
    git(project, "add", "mysite")
    # the user's own proxy, a closed loopback port, keeps resolve_file off the network
    run_env = dict(_app_env(env), DASHSCOPE_API_KEY=CANARY_KEY, HTTPS_PROXY="http://127.0.0.1:9")
    done = subprocess.run([sys.executable, "manage.py"], cwd=project, env=run_env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.splitlines()[0] == "https://dashscope.aliyuncs.com/compatible-mode/v1", (done.stdout,
                                                                                              done.stderr)
    assert f"QWEN_BASE_URL in the environment is the value {project / 'mysite' / '.env'} sets" in done.stderr
    assert "refused by proxy 127.0.0.1:9" in done.stdout, done.stdout      # went for the documented host
    assert listener.received == [] and leaks(done.stdout + done.stderr) == []


def test_too_many_module_folders_in_the_project_fail_closed(env, project, monkeypatch, capfd):
    import types

    from qianwen_ops import provenance

    git(project, "init", "-q")
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__file__=str(project / "pkg0" / "app.py")))
    for i in range(3):
        (project / f"pkg{i}").mkdir()
        module = types.SimpleNamespace(__file__=str(project / f"pkg{i}" / "m.py"))
        monkeypatch.setitem(sys.modules, f"_rt_pkg{i}", module)
    monkeypatch.setattr(provenance, "MAX_MODULE_FOLDERS", 2)
    judged = Settings.from_process(cwd=project, env=dict(_app_env(env), HTTPS_PROXY="http://corp:3128")).env
    assert "HTTPS_PROXY" not in judged
    assert "HTTPS_PROXY in the environment may be a value a .env sets (more than 2 folders" in capfd.readouterr().err
    monkeypatch.setattr(provenance, "MAX_MODULE_FOLDERS", 3)
    assert Settings.from_process(cwd=project, env=dict(_app_env(env), HTTPS_PROXY="http://corp:3128")).env[
        "HTTPS_PROXY"] == "http://corp:3128"


def test_a_users_own_dotenv_is_never_expanded(env, project, monkeypatch):
    """Whose file it is is asked before any ${...} is expanded: the user's own .env costs linear time."""
    from qianwen_ops import provenance

    def expanded(*args, **kwargs):
        raise AssertionError("the user's own .env was expanded")

    (project / ".env").write_text("HTTPS_PROXY=http://corp:3128${X}\n")       # git does not track it
    git(project, "init", "-q")
    monkeypatch.setattr(provenance, "possible_values", expanded)
    own = dict(_app_env(env), HTTPS_PROXY="http://corp:3128")
    assert Settings.from_process(cwd=project, env=own).env["HTTPS_PROXY"] == "http://corp:3128"


BOMB = "V0=" + "x" * 64 + "\n" + "".join(f"V{i}=" + f"${{V{i - 1}}}" * 8 + "\n" for i in range(1, 8))


def test_a_tracked_dotenv_too_costly_to_expand_takes_the_names_it_sets(env, project, capfd):
    import time

    dotenv = tracked(project, BOMB + "HTTPS_PROXY=${V7}\nNO_PROXY=" + "${" * 20000 + "\n")
    own = dict(_app_env(env), HTTPS_PROXY="http://corp:3128", NO_PROXY="localhost", ALL_PROXY="http://corp:1080")
    started = time.perf_counter()
    judged = Settings.from_process(cwd=project, env=own).env
    assert time.perf_counter() - started < 1
    assert "HTTPS_PROXY" not in judged and "NO_PROXY" not in judged   # failed closed: the names the file sets
    assert judged["ALL_PROXY"] == "http://corp:1080"                  # a name it does not set is the user's
    assert (f"warning: HTTPS_PROXY in the environment may be a value {dotenv} sets (its ${{...}} expansions are too "
            "large to compare") in capfd.readouterr().err


def test_probe_stays_fast_on_interpolation_bombs(sb, env, project):
    import time

    tracked(project, BOMB + "HTTPS_PROXY=${V7}\nX=" + "${" * 20000 + "\n")
    run_env = dict(_app_env(env), QWEN_BASE_URL=sb.base_url, DASHSCOPE_API_KEY=sb.api_key,
                   HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost")
    started = time.perf_counter()
    result = run_script("probe.py", env=run_env, cwd=project)
    assert time.perf_counter() - started < 3 and result.code == 0, result.err   # was 10 s, then MemoryError
    assert "HTTPS_PROXY in the environment may be a value" in result.err


def test_other_threads_never_see_the_environment_unjudged(env, project, monkeypatch):
    """One Settings shared by threads: while one works provenance out, the others wait for its answer."""
    import threading

    from qianwen_ops import settings as settings_module

    tracked(project, "QWEN_BASE_URL=http://127.0.0.1:9\n")
    judging, release = threading.Event(), threading.Event()
    real = settings_module.copied_from_tracked_files

    def held_up(settings, process_env):
        judging.set()
        assert release.wait(30)            # until the other thread has had its chance to read
        return real(settings, process_env)

    monkeypatch.setattr(settings_module, "copied_from_tracked_files", held_up)
    shared = Settings.from_process(cwd=project, env=dict(_app_env(env), QWEN_BASE_URL="http://127.0.0.1:9"))
    seen, answered = {}, threading.Event()

    def read(who):
        seen[who] = dict(shared.env)
        if who == "second":
            answered.set()

    first = threading.Thread(target=read, args=("first",))
    first.start()
    assert judging.wait(30)
    second = threading.Thread(target=read, args=("second",))
    second.start()
    # a bounded window in which an unguarded read would answer (the result below does not depend on it)
    answered_early = answered.wait(0.2)
    release.set()
    first.join(30)
    second.join(30)
    assert not answered_early
    assert "QWEN_BASE_URL" not in seen["first"] and "QWEN_BASE_URL" not in seen["second"], seen.keys()


def test_a_home_folder_a_tracked_dotenv_put_in_the_environment_chooses_nothing(env, project, tmp_path, monkeypatch,
                                                                               capfd):
    """HOME unset (a service; Windows by default), load_dotenv() copies a clone's HOME=: the key file, the CLI
    configuration and the cache stay the account's."""
    import pwd
    import types

    from qianwen_ops.credentials import NOT_SET, find_api_key
    from qianwen_ops.upload_cache import cache_path

    account = tmp_path / "account"
    account.mkdir()
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: types.SimpleNamespace(pw_dir=str(account)))
    clone_home = project / "tools" / "home"
    (clone_home / ".dashscope").mkdir(parents=True)
    (clone_home / ".dashscope" / "api_key").write_text("sk-" + "c0" * 16 + "\n")   # the clone's (another account)
    dotenv = tracked(project, f"HOME={clone_home}\n")
    base = {k: v for k, v in _app_env(env).items() if k not in ("HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")}
    after = loaded_env(dotenv, base)
    assert after["HOME"] == str(clone_home)                           # load_dotenv() did put it there
    settings = Settings.from_process(cwd=project, env=after)
    assert "HOME" not in list(settings.env) and settings.home == account   # names only in a failure
    assert find_api_key(settings).status == NOT_SET                   # not the clone's key file
    assert cache_path(settings.env) == account / ".cache" / "qianwen-ops-auth" / "uploads.jsonl"
    assert f"warning: HOME in the environment is the value {dotenv} sets" in capfd.readouterr().err
    own = tmp_path / "own-home"                                       # the user's own HOME, set by the user: kept
    assert Settings.from_process(cwd=project, env=dict(base, HOME=str(own))).home == own


def test_a_self_expanding_line_says_the_value_could_be_its_own_and_how_to_keep_yours(env, project, pki, tls_box):
    """SSL_CERT_FILE=/${SSL_CERT_FILE} fits any value starting with "/": the user's own CA is set aside (it cannot
    be told from what load_dotenv(override=True) made of it), and the lines say so, not "set SSL_CERT_FILE"."""
    dotenv = tracked(project, "SSL_CERT_FILE=/${SSL_CERT_FILE}\n")
    run_env = dict(_app_env(env), QWEN_BASE_URL=tls_box.base_url, DASHSCOPE_API_KEY=tls_box.api_key,
                   SSL_CERT_FILE=pki["server-ca"])
    result = run_script("probe.py", env=run_env, cwd=project)
    warning, error = result.err.splitlines()
    assert result.code == 8 and f"SSL_CERT_FILE in the environment could have been made by {dotenv}'s " \
        "SSL_CERT_FILE line" in warning and "is the value" not in warning, result.err
    assert f"SSL_CERT_FILE is set, but was set aside ({dotenv}'s SSL_CERT_FILE line could have made it" in error
    assert f"to keep your SSL_CERT_FILE, delete or fix that line of {dotenv}" in error
    assert "set SSL_CERT_FILE to" not in error
    # a line set before it that the environment lacks: load_dotenv(override=True) of that file never ran
    dotenv.write_text("APP_MODE=dev\nSSL_CERT_FILE=/${SSL_CERT_FILE}\n")
    result = run_script("probe.py", env=run_env, cwd=project)
    assert result.code == 0 and result.err == "", result.err
    loaded = loaded_env(dotenv, run_env, override=True)          # it did run: the wrapped value is the file's
    assert loaded["SSL_CERT_FILE"] == "/" + pki["server-ca"]
    assert "SSL_CERT_FILE" not in Settings.from_process(cwd=project, env=loaded).env
