#!/usr/bin/env python3
"""Build the release tree: only what runs, laid out so the real installer copies each skill alone.

    python3 release/build.py OUTDIR            # write the tree into OUTDIR (new or empty)
    python3 release/build.py --branch release  # commit it onto that branch of this repository

The development checkout (this repository's main branch) keeps everything: tests, benchmarks,
docs, the sandbox. The ``skills`` installer has no way to exclude files and copies a root skill's
whole folder, so users install from a generated ref instead, whose layout is

    skills/qianwen-ops-auth/      SKILL.md, agent-compatibility.md, references/, scripts/ (no
                                  sandbox, no demo), pyproject.toml, LICENSE, .gitignore
    skills/qianwen-update-check/  SKILL.md, version.json, scripts/, LICENSE, .gitignore
    README.md                     what this branch is (not part of either skill)

with no SKILL.md at the root, so ``npx skills add QianWen-AI/qianwen-ops-auth#release --skill '*'``
finds the two skills side by side and copies each folder alone (no nested copy). Each skill's
``.gitignore`` keeps Python's ``__pycache__/`` out of the user's ``git status``.

Files come from a commit (``--commit``, default HEAD) through ``git archive``, never from the
working tree, so nothing untracked (a ``.env``, a ``.venv``) can ship. The build refuses (exit 1,
one line per problem) a tree with more than ``MAX_FILES`` files in a skill, a test, benchmark or
sandbox path, a file named like a credential file (the rules ``upload_file.py`` refuses by:
``qianwen_ops.secret_files.is_credential_name``: ``.env*``, ``.netrc``, ``credentials``, ``*.pem``,
``*.key``, ``id_rsa``...), a key-shaped string (``secret_files.KEY_SHAPE``: ``sk-``, ``sk-sp-``,
``sk-ws-`` keys and ``LTAI...`` AccessKey IDs; ``UNPREFIXED_SHAPE``: AccessKey secrets and STS
tokens; a private key as the upload check sees one, ``secret_files.private_key_in``: an encrypted PEM,
a service-account JSON, a PuTTY key), in the file's bytes or read as UTF-16/UTF-32, a Markdown link
that does not resolve inside its skill, or a ``pyproject.toml`` that names a file the tree lacks.

``--branch NAME`` builds in a temporary folder and records the tree as a new commit on
``refs/heads/NAME`` (parent: its current tip, so pushing it is a fast-forward), with the source
commit in the message; when the tree is unchanged nothing is committed. The GitHub Actions
workflow ``.github/workflows/release.yml`` runs it on every push to main and pushes the branch.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from qianwen_ops.secret_files import (  # noqa: E402 - the one source
    KEY_SHAPE,
    SECRET_ENCODINGS,
    UNPREFIXED_SHAPE,
    is_credential_name,
    private_key_in,
)

MAIN, SIBLING = "qianwen-ops-auth", "qianwen-update-check"
RELEASE_REF = "release"
MAX_FILES = 60
# (path in the checkout, shipped?) — the first matching prefix decides; anything unlisted stays behind
MAIN_RULES = (
    ("scripts/sandbox.py", False), ("scripts/demo.py", False), ("scripts/qianwen_sandbox/", False),
    ("scripts/", True), ("references/", True), ("SKILL.md", True), ("agent-compatibility.md", True),
    ("pyproject.toml", True), ("LICENSE", True),
)
SIBLING_PREFIX = f"skills/{SIBLING}/"
NEVER = re.compile(r"(^|/)(tests?|bench|docs|__pycache__|qianwen_sandbox)(/|$)|(^|/)(sandbox|demo)\.py$|(^|/)\.env")
KEY_SHAPED = re.compile(KEY_SHAPE.encode() + b"|" + UNPREFIXED_SHAPE.encode()
                        + rb"|-----BEGIN [A-Z ]*PRIVATE KEY-----\s+[A-Za-z0-9+/=]{40,}")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
GITIGNORE = b"# Python's bytecode cache, written when the scripts run: never part of the skill\n__pycache__/\n"


def install_command(root: Path = ROOT) -> str:
    """The install command, as agent-compatibility.md states it (the one place; this branch's README repeats it)."""
    section = (root / "agent-compatibility.md").read_text(encoding="utf-8").split("## Install\n", 1)[1]
    return section.split("```", 2)[1].strip()


def readme(root: Path = ROOT) -> str:
    return f"""# qianwen-ops-auth (release branch)

Generated from the main branch by `release/build.py`: only what runs. Do not edit here.

Install (project scope, for Claude Code and Cursor):

```
{install_command(root)}
```

`skills/{MAIN}/` is the skill, `skills/{SIBLING}/` its update check. Source, tests and
documentation: the main branch.
"""


class BuildError(Exception):
    pass


def git(*args: str, cwd: Path = ROOT, env: dict | None = None, data: bytes | None = None) -> bytes:
    done = subprocess.run(["git", *args], cwd=cwd, env=env, input=data, capture_output=True, timeout=120)
    if done.returncode != 0:
        raise BuildError(f"git {' '.join(args[:2])} failed: {done.stderr.decode(errors='replace').strip()[:300]}")
    return done.stdout


def destination(path: str) -> str | None:
    """Where a file of the checkout goes in the release tree, or None when it stays behind."""
    if path.startswith(SIBLING_PREFIX):
        return path
    for prefix, shipped in MAIN_RULES:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return f"skills/{MAIN}/{path}" if shipped else None
    return None


def build(out: Path, commit: str = "HEAD", repo: Path = ROOT) -> list:
    """Write the release tree for ``commit`` into ``out``; the list of files written (relative paths)."""
    if out.exists() and any(out.iterdir()):
        raise BuildError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(fileobj=io.BytesIO(git("archive", "--format=tar", commit, cwd=repo))) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue  # folders are made as needed; a link in the source is never shipped
            target = destination(member.name)
            if target is None:
                continue
            path = out / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.extractfile(member).read())
            os.chmod(path, 0o755 if member.mode & 0o111 else 0o644)
            written.append(target)
    for skill in (MAIN, SIBLING):
        (out / "skills" / skill / ".gitignore").write_bytes(GITIGNORE)
        written.append(f"skills/{skill}/.gitignore")
    shutil.copyfile(out / "skills" / MAIN / "LICENSE", out / "skills" / SIBLING / "LICENSE")
    written.append(f"skills/{SIBLING}/LICENSE")
    (out / "README.md").write_text(readme(), encoding="utf-8")
    written.append("README.md")
    problems = check(out)
    if problems:
        raise BuildError("; ".join(problems))
    return sorted(written)


def readings(data: bytes):
    """``data`` as written, then as UTF-8 for each other encoding it reads as (``SECRET_ENCODINGS``: UTF-16 and
    UTF-32, as PowerShell 5.1 saves a note), so a key in any of them has the shape the patterns look for."""
    yield data
    for encoding in SECRET_ENCODINGS[1:]:
        try:
            yield data.decode(encoding).encode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            continue


def check(out: Path) -> list:
    """Why ``out`` is not a releasable tree (empty when it is)."""
    problems = []
    for skill in (MAIN, SIBLING):
        folder = out / "skills" / skill
        files = [p for p in folder.rglob("*") if p.is_file()]
        if not (folder / "SKILL.md").is_file():
            problems.append(f"skills/{skill} has no SKILL.md")
        if skill == MAIN and len(files) > MAX_FILES:
            problems.append(f"skills/{skill} holds {len(files)} files (at most {MAX_FILES})")
        for path in files:
            rel = path.relative_to(folder).as_posix()
            if NEVER.search(rel):
                problems.append(f"skills/{skill}/{rel} must not ship")
            elif is_credential_name(PurePosixPath(rel)):
                problems.append(f"skills/{skill}/{rel} must not ship: named like a credential file")
            if any(KEY_SHAPED.search(text) or private_key_in(text) for text in readings(path.read_bytes())):
                problems.append(f"skills/{skill}/{rel} holds a key-shaped string")
            if path.suffix == ".md":
                for link in LINK.findall(path.read_text(encoding="utf-8")):
                    if link.startswith(("http://", "https://", "mailto:", "#")):
                        continue
                    target = (path.parent / link.split("#")[0]).resolve()
                    if not target.exists() or folder.resolve() not in (target, *target.parents):
                        problems.append(f"skills/{skill}/{rel} links to {link}, which the release lacks")
    if (out / "SKILL.md").exists():
        problems.append("a SKILL.md at the root would make the installer copy the whole tree")
    problems.extend(check_pyproject(out / "skills" / MAIN))
    return problems


def check_pyproject(folder: Path) -> list:
    """Files ``pyproject.toml`` names (readme, license file, package folders) must ship with it."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the names are checked where the release is built (CI: 3.11)
        return []
    data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    named = []
    project = data.get("project", {})
    for key in ("readme", "license"):
        value = project.get(key)
        value = value.get("file") if isinstance(value, dict) else value if key == "readme" else None
        if isinstance(value, str):
            named.append(value)
    setuptools = data.get("tool", {}).get("setuptools", {})
    dirs = setuptools.get("package-dir", {})
    base = dirs.get("", "") if isinstance(dirs, dict) else ""
    packages = setuptools.get("packages")
    if isinstance(packages, list):
        named.extend(str(PurePosixPath(dirs.get(p, str(PurePosixPath(base) / p.replace(".", "/")))))
                     for p in packages if isinstance(p, str))
    return [f"pyproject.toml names {name}, which the release lacks" for name in named if not (folder / name).exists()]


def commit_to_branch(branch: str, commit: str = "HEAD", repo: Path = ROOT) -> str | None:
    """Build ``commit`` and record the tree as a new commit on ``refs/heads/<branch>``; None when unchanged."""
    source = git("rev-parse", "--verify", f"{commit}^{{commit}}", cwd=repo).decode().strip()
    with tempfile.TemporaryDirectory(prefix="qianwen-release-") as tmp:
        out = Path(tmp) / "tree"
        build(out, source, repo)
        git_dir = git("rev-parse", "--absolute-git-dir", cwd=repo).decode().strip()
        env = dict(os.environ, GIT_INDEX_FILE=str(Path(tmp) / "index"), GIT_DIR=git_dir, GIT_WORK_TREE=str(out))
        git("read-tree", "--empty", cwd=out, env=env)
        git("add", "--all", "--force", ".", cwd=out, env=env)
        tree = git("write-tree", cwd=out, env=env).decode().strip()
    ref = f"refs/heads/{branch}"
    found = subprocess.run(["git", "rev-parse", "--verify", "-q", f"{ref}^{{commit}}"], cwd=repo,
                           capture_output=True, text=True, timeout=60)
    parent = found.stdout.strip() if found.returncode == 0 else ""
    if parent and git("rev-parse", f"{parent}^{{tree}}", cwd=repo).decode().strip() == tree:
        return None
    message = f"release: built from {source} by release/build.py\n"
    parents = ["-p", parent] if parent else []
    new = git("commit-tree", tree, *parents, cwd=repo, data=message.encode()).decode().strip()
    git("update-ref", ref, new, *([parent] if parent else []), cwd=repo)
    return new


def main() -> int:
    parser = argparse.ArgumentParser(prog="release/build.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("outdir", nargs="?", type=Path, help="write the release tree here (new or empty folder)")
    where.add_argument("--branch", help=f"commit the tree onto this branch (e.g. {RELEASE_REF})")
    parser.add_argument("--commit", default="HEAD", help="the commit to build from (default HEAD)")
    args = parser.parse_args()
    try:
        if args.branch:
            new = commit_to_branch(args.branch, args.commit)
            print(f"{args.branch}: {new}" if new else f"{args.branch}: unchanged")
        else:
            files = build(args.outdir, args.commit)
            print(f"{len(files)} files in {args.outdir}")
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
