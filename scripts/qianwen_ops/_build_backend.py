"""The PEP 517 build backend that makes ``pip install <repository or installed skill folder>`` work.

It builds the ``qianwen_ops`` library (this folder, ``scripts/qianwen_ops``) into a wheel with the
standard library alone: no setuptools, no network, any Python 3.9+, and nothing written into the
source folder (an installed skill folder stays as the installer left it). ``pyproject.toml`` names
it (``build-backend``, ``backend-path = ["scripts"]``) and holds the metadata (``[project]``); the
version is ``qianwen_ops.__version__``, the bundle's one version number.

What a build needs from the source folder: ``pyproject.toml`` and ``scripts/qianwen_ops/``
(``LICENSE`` is added when present).

``pyproject.toml`` is not trusted to be well-formed (a vendored skill folder may have been edited):
the name must be a PEP 508 name (no ``/``, so the wheel is written where pip asked), the version a
PEP 440 public version, and every other field one printable line (no line break that would add a
header to ``METADATA``); anything else is refused with ``MetadataError``, one line, and nothing written.
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
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")   # PEP 508 names, bounded
_PUBLIC_VERSION = re.compile(r"([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)){0,5}((a|b|rc)(0|[1-9][0-9]*))?"
                             r"(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?")   # PEP 440, normalised
MAX_FIELD = 1000   # characters of one metadata field


class MetadataError(ValueError):
    """pyproject.toml (or ``__version__``) holds a value that cannot go into a wheel as it is: one line saying which."""


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
            table[match.group(1)] = [_unescape(item) for item in re.findall(r'"([^"]*)"', value)]
        else:
            table[match.group(1)] = _unescape(value[1:-1])
    return data


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    """A TOML basic string's escapes (``\\n``, ``\\uXXXX``...) decoded, as ``tomllib`` decodes them."""
    def one(match) -> str:
        code = match.group(1)
        if code[0] in "uU" and len(code) > 1:
            return chr(min(int(code[1:], 16), 0x10FFFF))
        return _ESCAPES.get(code, match.group(0))

    return re.sub(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)", one, text)


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
    meta = {"name": project.get("name"), "version": version(), "summary": project.get("description", ""),
            "requires_python": project.get("requires-python", ""),
            "dependencies": project.get("dependencies", []),
            "extras": project.get("optional-dependencies", {}),
            "license": project.get("license", "") if isinstance(project.get("license"), str) else ""}
    check_metadata(meta)
    return {**meta, "dependencies": list(meta["dependencies"]),
            "extras": {name: list(deps) for name, deps in meta["extras"].items()}}


def _one_line(field: str, value) -> None:
    if not isinstance(value, str) or len(value) > MAX_FIELD or not value.isprintable():
        raise MetadataError(f"pyproject.toml: {field} must be one line of at most {MAX_FIELD} printable characters")


def check_metadata(meta: dict) -> None:
    """Raise ``MetadataError`` (one line, the value never echoed) unless every field can go into a wheel as it is."""
    if not isinstance(meta["name"], str) or not _NAME.fullmatch(meta["name"]):
        raise MetadataError("pyproject.toml: project.name must be a PEP 508 name (letters, digits, '.', '-', '_')")
    if not isinstance(meta["version"], str) or not _PUBLIC_VERSION.fullmatch(meta["version"]):
        raise MetadataError("qianwen_ops.__version__ must be a normalised PEP 440 public version")
    for field, key in (("summary", "description"), ("requires_python", "requires-python"), ("license", "license")):
        _one_line(f"project.{key}", meta[field])
    if not isinstance(meta["dependencies"], list):
        raise MetadataError("pyproject.toml: project.dependencies must be a list of strings")
    for dependency in meta["dependencies"]:
        _one_line("each of project.dependencies", dependency)
    if not isinstance(meta["extras"], dict):
        raise MetadataError("pyproject.toml: project.optional-dependencies must be a table of lists")
    for extra, deps in meta["extras"].items():
        if not isinstance(extra, str) or not _NAME.fullmatch(extra) or not isinstance(deps, list):
            raise MetadataError("pyproject.toml: each optional-dependencies entry must be a PEP 508 name and a list")
        for dependency in deps:
            _one_line("each of project.optional-dependencies", dependency)


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
