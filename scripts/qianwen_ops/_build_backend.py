"""The PEP 517 build backend that makes ``pip install <repository or installed skill folder>`` work.

It builds the ``qianwen_ops`` library (this folder, ``scripts/qianwen_ops``) into a wheel with the
standard library alone: no setuptools, no network, any Python 3.9+, and nothing written into the
source folder (an installed skill folder stays as the installer left it). ``pyproject.toml`` names
it (``build-backend``, ``backend-path = ["scripts"]``) and holds the metadata (``[project]``); the
version is ``qianwen_ops.__version__``, the bundle's one version number.

What a build needs from the source folder: ``pyproject.toml`` and ``scripts/qianwen_ops/``
(``LICENSE`` is added when present).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path

from .skill_paths import SKILL_DIR

ROOT = SKILL_DIR   # the source folder: pyproject.toml and scripts/qianwen_ops
PACKAGE = "qianwen_ops"
PACKAGE_DIR = ROOT / "scripts" / PACKAGE
_EPOCH = (1980, 1, 1, 0, 0, 0)   # fixed timestamps: the same source gives the same wheel
_VERSION = re.compile(r'^__version__\s*=\s*"([^"]+)"', re.M)


# -- the metadata, from pyproject.toml

def _parse_toml_subset(text: str) -> dict:
    """The part of TOML pyproject.toml uses, for Pythons without ``tomllib`` (3.9, 3.10): tables,
    ``key = "string"`` and one-line ``key = ["string", ...]``. Anything else is skipped."""
    data: dict = {}
    table = data
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]", line)
        if header:
            table = data
            for part in header.group(1).split("."):
                table = table.setdefault(part, {})
            continue
        match = re.fullmatch(r'([A-Za-z0-9_-]+)\s*=\s*(".*"|\[.*\])\s*(#.*)?', line)
        if not match:
            continue
        value = match.group(2)
        if value.startswith("["):
            table[match.group(1)] = re.findall(r'"([^"]*)"', value)
        else:
            table[match.group(1)] = value[1:-1]
    return data


def read_pyproject(path: Path | None = None) -> dict:
    text = (path or ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib  # novm - Python 3.11+; the ImportError branch covers 3.9 and 3.10
    except ImportError:  # Python 3.9, 3.10
        return _parse_toml_subset(text)
    return tomllib.loads(text)


def version() -> str:
    match = _VERSION.search((PACKAGE_DIR / "__init__.py").read_text(encoding="utf-8"))
    if not match:
        raise RuntimeError("scripts/qianwen_ops/__init__.py has no __version__")
    return match.group(1)


def metadata() -> dict:
    project = read_pyproject()["project"]
    return {"name": project["name"], "version": version(), "summary": project.get("description", ""),
            "requires_python": project.get("requires-python", ""),
            "dependencies": list(project.get("dependencies", [])),
            "extras": {name: list(deps) for name, deps in project.get("optional-dependencies", {}).items()},
            "license": project.get("license", "") if isinstance(project.get("license"), str) else ""}


def _dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata_text(meta: dict) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {meta['name']}", f"Version: {meta['version']}"]
    if meta["summary"]:
        lines.append(f"Summary: {meta['summary']}")
    if meta["license"]:
        lines.append(f"License: {meta['license']}")
    if meta["requires_python"]:
        lines.append(f"Requires-Python: {meta['requires_python']}")
    lines += [f"Requires-Dist: {dep}" for dep in meta["dependencies"]]
    for extra, deps in meta["extras"].items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {dep}; extra == "{extra}"' for dep in deps]
    return "\n".join(lines) + "\n"


# -- the files

def package_files() -> list:
    """(name in the wheel, bytes) for every module of the library (this backend is not one)."""
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if "__pycache__" in path.parts or path.name == "_build_backend.py":
            continue
        found.append((f"{PACKAGE}/{path.relative_to(PACKAGE_DIR).as_posix()}", path.read_bytes()))
    return found


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def _write_wheel(wheel_directory: str, files: list) -> str:
    meta = metadata()
    base = f"{_dist_name(meta['name'])}-{meta['version']}"
    dist_info = f"{base}.dist-info"
    files = list(files) + [
        (f"{dist_info}/METADATA", _metadata_text(meta).encode("utf-8")),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: qianwen_ops._build_backend\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    license_file = ROOT / "LICENSE"
    if license_file.is_file():
        files.append((f"{dist_info}/LICENSE", license_file.read_bytes()))
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files)
    files.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode("utf-8")))
    name = f"{base}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as wheel:
        for arcname, data in files:
            info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return name


# -- the PEP 517 / PEP 660 hooks

def get_requires_for_build_wheel(config_settings=None) -> list:
    return []


def get_requires_for_build_sdist(config_settings=None) -> list:
    return []


def get_requires_for_build_editable(config_settings=None) -> list:
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    return _write_wheel(wheel_directory, package_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None) -> str:
    """A wheel whose .pth file puts this checkout's ``scripts/`` on ``sys.path`` (``pip install -e``)."""
    pth = (str(PACKAGE_DIR.parent) + "\n").encode("utf-8")
    return _write_wheel(wheel_directory, [(f"_{_dist_name(metadata()['name'])}_editable.pth", pth)])


def build_sdist(sdist_directory, config_settings=None) -> str:
    meta = metadata()
    base = f"{_dist_name(meta['name'])}-{meta['version']}"
    members = [("pyproject.toml", (ROOT / "pyproject.toml").read_bytes()),
               ("PKG-INFO", _metadata_text(meta).encode("utf-8"))]
    members += [(f"scripts/{name}", data) for name, data in package_files()]
    members.append((f"scripts/{PACKAGE}/_build_backend.py", Path(__file__).read_bytes()))
    if (ROOT / "LICENSE").is_file():
        members.append(("LICENSE", (ROOT / "LICENSE").read_bytes()))
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for member, data in members:
            info = tarfile.TarInfo(f"{base}/{member}")
            info.size, info.mode, info.mtime = len(data), 0o644, 315532800
            archive.addfile(info, io.BytesIO(data))
    return name
