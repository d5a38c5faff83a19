"""`pip install` of a fresh clone and of an installed skill folder gives the app the library; one version number."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_install import install, skills_cli, source_repo  # noqa: F401 - fixtures used below
from test_install import tree_digest as tree_files

from conftest import ROOT, UPDATE_SKILL
from qianwen_ops import __version__, _build_backend

pytestmark = pytest.mark.slow   # end to end: seconds per test (selected with -m slow, run by default)

PNG = b"\x89PNG\r\n\x1a\n packaged"
APP = """
import json, pathlib, qianwen_ops
from qianwen_ops import QwenOpsError, resolve_file, upload_file, api_settings
s = api_settings()
url = resolve_file("pic.png", model="", inline=True)
try:
    s.headers
except QwenOpsError as exc:
    advice = exc.message
print(json.dumps({"file": qianwen_ops.__file__, "version": qianwen_ops.__version__, "base_url": s.base_url,
                  "key_status": s.key_status, "url": url, "sha256": upload_file("pic.png", "", inline=True).sha256,
                  "advice": advice}))
"""


def test_one_version_number():
    assert json.loads((UPDATE_SKILL / "version.json").read_text())["version"] == __version__
    project = _build_backend.read_pyproject()["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert _build_backend.metadata()["version"] == __version__


def test_the_stdlib_toml_reader_reads_pyproject_as_tomllib_does():
    text = (ROOT / "pyproject.toml").read_text()
    subset = _build_backend._parse_toml_subset(text)  # what Python 3.9 and 3.10 build with
    assert subset["build-system"] == {"requires": [], "build-backend": "qianwen_ops._build_backend",
                                      "backend-path": ["scripts"]}
    assert subset["project"]["name"] == "qianwen-ops-auth" and subset["project"]["dependencies"] == []
    assert "optional-dependencies" not in subset["project"]   # no extra: custom OSS needs no package either
    if sys.version_info >= (3, 11):
        import tomllib

        full = tomllib.loads(text)
        assert subset["project"] == full["project"] and subset["build-system"] == full["build-system"]


def test_the_wheel_holds_the_library_and_valid_records(tmp_path):
    name = _build_backend.build_wheel(str(tmp_path))
    assert name == f"qianwen_ops_auth-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(tmp_path / name) as wheel:
        names = set(wheel.namelist())
        modules = {f"qianwen_ops/{p.name}" for p in (ROOT / "scripts" / "qianwen_ops").glob("*.py")}
        assert modules - {"qianwen_ops/_build_backend.py"} <= names and "qianwen_ops/_build_backend.py" not in names
        assert not [n for n in names if n.startswith(("qianwen_sandbox", "scripts/", "tests/")) or ".pyc" in n]
        record = wheel.read(f"qianwen_ops_auth-{__version__}.dist-info/RECORD").decode()
        for line in record.splitlines():
            path, digest, size = line.rsplit(",", 2)
            if digest:
                data = wheel.read(path)
                expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                assert digest == f"sha256={expected}" and int(size) == len(data), path
        metadata = wheel.read(f"qianwen_ops_auth-{__version__}.dist-info/METADATA").decode()
    assert "Name: qianwen-ops-auth" in metadata and "Requires-Dist" not in metadata  # no dependency at all


def venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pip_install_and_run_the_app(source: Path, tmp_path: Path) -> dict:
    """A fresh venv (no system site-packages, no pip of its own), ``pip install --no-index <source>``,
    then the app imports the library from the venv and inlines a file (nothing is sent)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "DASHSCOPE_", "QWEN_"))}
    env.update(HOME=str(tmp_path / "home"), PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv_python(venv)), "install", "-q",
                           "--no-index", str(source)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    app = tmp_path / "app"
    app.mkdir()
    (app / "pic.png").write_bytes(PNG)
    run = subprocess.run([str(venv_python(venv)), "-c", APP], cwd=app, env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def check_app(found: dict, tmp_path: Path) -> None:
    assert Path(found["file"]).is_relative_to(tmp_path / "venv")  # the installed copy, not a checkout
    assert found["version"] == __version__ and found["key_status"] == "not set"
    assert found["base_url"] == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert found["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert found["sha256"] == hashlib.sha256(PNG).hexdigest()
    # installed as a package there is no setup_env.py beside it: the advice says what to set instead
    assert "set DASHSCOPE_API_KEY" in found["advice"] and "setup_env.py" not in found["advice"]


def test_pip_install_of_a_fresh_clone(source_repo, tmp_path):  # noqa: F811 - the imported fixture
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", source_repo, str(clone)], check=True, timeout=60)
    before = tree_files(clone)
    check_app(pip_install_and_run_the_app(clone, tmp_path), tmp_path)
    assert tree_files(clone) == before  # the build wrote nothing into the source folder


def test_pip_install_of_an_installed_skill_folder(skills_cli, source_repo, tmp_path):  # noqa: F811
    project = tmp_path / "proj"
    project.mkdir()
    (tmp_path / "home").mkdir()
    install(skills_cli, source_repo, project, tmp_path / "home", "--full-depth", "--skill", "*", "-y",
            "-a", "claude-code")
    skill = project / ".claude/skills/qianwen-ops-auth"
    before = tree_files(skill)
    check_app(pip_install_and_run_the_app(skill, tmp_path), tmp_path)
    assert tree_files(skill) == before


@pytest.mark.parametrize("hook", ["get_requires_for_build_wheel", "get_requires_for_build_sdist",
                                  "get_requires_for_build_editable"])
def test_the_build_needs_nothing_to_be_installed(hook):
    assert getattr(_build_backend, hook)() == []


def test_sdist_builds_from_itself(tmp_path):
    import tarfile

    name = _build_backend.build_sdist(str(tmp_path))
    with tarfile.open(tmp_path / name) as archive:
        members = set(archive.getnames())
    base = name[: -len(".tar.gz")]
    assert {f"{base}/pyproject.toml", f"{base}/PKG-INFO", f"{base}/scripts/qianwen_ops/__init__.py",
            f"{base}/scripts/qianwen_ops/_build_backend.py"} <= members


@pytest.mark.parametrize("field,value", [
    ("name", "ESCAPE"), ("name", '"../../x"'), ("name", '"x\\nRequires-Dist: evil"'), ("name", "3"),
    ("description", '"harmless\\nRequires-Dist: evil-package-canary"'), ("description", '"a\\rb"'),
    ("license", '"MIT\\nRequires-Dist: evil"'), ("requires-python", '">=3.9\\nX: y"'),
    ("dependencies", '["ok", "evil\\nRequires-Dist: more"]'), ("dependencies", '"not a list"'),
    ("optional-dependencies", None), ("version", "1.0\nRequires-Dist: evil"), ("version", "../1"),
])
def test_the_backend_refuses_unsafe_metadata_in_one_line_and_writes_nothing(tmp_path, monkeypatch, field, value):
    """A vendored skill folder's pyproject.toml may have been edited: a name with '/' once wrote the wheel outside
    pip's folder and a line break in the description added a Requires-Dist header."""
    source, escape = tmp_path / "skill", tmp_path / "escape"
    (source / "scripts" / "qianwen_ops").mkdir(parents=True)
    escape.mkdir()
    value = json.dumps(str(escape / "x")) if value == "ESCAPE" else value
    text = (ROOT / "pyproject.toml").read_text()
    if field == "version":
        init = (ROOT / "scripts" / "qianwen_ops" / "__init__.py").read_text()
        (source / "scripts" / "qianwen_ops" / "__init__.py").write_text(
            init.replace(f'__version__ = "{__version__}"', f"__version__ = {json.dumps(value)}"))
        monkeypatch.setattr(_build_backend, "PACKAGE_DIR", source / "scripts" / "qianwen_ops")
    elif field == "optional-dependencies":
        text = text.replace("dependencies = []\n", 'dependencies = []\n\n[project.optional-dependencies]\n"a/b" = []\n')
    elif f"\n{field} = " in text:
        text = "\n".join(f"{field} = {value}" if line.startswith(f"{field} = ") else line for line in text.split("\n"))
    else:
        text = text.replace('dynamic = ["version"]\n', f'dynamic = ["version"]\n{field} = {value}\n')
    (source / "pyproject.toml").write_text(text)
    monkeypatch.setattr(_build_backend, "ROOT", source)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for build in (_build_backend.build_wheel, _build_backend.build_sdist, _build_backend.build_editable):
        with pytest.raises(_build_backend.MetadataError) as info:
            build(str(wheels))
        assert "\n" not in str(info.value) and "evil" not in str(info.value)
    assert list(wheels.iterdir()) == [] and list(escape.iterdir()) == []
