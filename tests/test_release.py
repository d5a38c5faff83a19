"""The release branch users install from: built by release/build.py, published by a workflow.

tests/test_install.py and tests/test_skill_commands.py install it with the real installer, as
agent-compatibility.md documents; here the build itself: what ships, what it refuses, the branch commit, the
workflow, and that every command the skills print names a ref and a file that exist there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_install import GIT_IDENTITY, documented_install, source_repo  # noqa: F401 - fixture

from conftest import ROOT, SCRIPTS, UPDATE_SKILL

spec = importlib.util.spec_from_file_location("release_build", ROOT / "release" / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


@pytest.fixture(scope="module")
def tree(source_repo, tmp_path_factory) -> Path:  # noqa: F811
    src = Path(source_repo[len("file://"):])
    out = tmp_path_factory.mktemp("release") / "tree"
    done = subprocess.run([sys.executable, str(src / "release" / "build.py"), str(out)], cwd=src, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def files(folder: Path) -> list:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_release_tree_holds_only_what_runs(tree):
    assert sorted(p.name for p in tree.iterdir()) == ["README.md", "skills"]  # no root SKILL.md: no nesting
    assert sorted(p.name for p in (tree / "skills").iterdir()) == ["qianwen-ops-auth", "qianwen-update-check"]
    ours = files(tree / "skills" / "qianwen-ops-auth")
    assert len(ours) <= 60 and not [f for f in ours if f.startswith(("tests/", "bench/", "docs/", "skills/"))]
    assert not [f for f in ours if "sandbox" in f or f.endswith("demo.py")]
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "scripts/qianwen_ops"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert {f for f in ours if f.startswith("scripts/qianwen_ops/")} == set(tracked)  # every library module ships
    assert {"SKILL.md", "agent-compatibility.md", "pyproject.toml", "LICENSE", ".gitignore"} <= set(ours)
    assert (tree / "skills/qianwen-ops-auth/SKILL.md").read_bytes() == (ROOT / "SKILL.md").read_bytes()
    assert os.access(tree / "skills/qianwen-ops-auth/scripts/probe.py", os.X_OK)
    sibling = files(tree / "skills" / "qianwen-update-check")
    assert sibling == [".gitignore", "LICENSE", "SKILL.md", "scripts/check_update.py", "scripts/skill_state.py",
                       "version.json"]
    assert build.check(tree) == []


def test_every_printed_command_names_the_release_and_a_file_it_holds(tree):
    sys.path.insert(0, str(UPDATE_SKILL / "scripts"))
    import check_update
    from qianwen_ops.update_prompt import install_command, update_command

    prefix = "https://raw.githubusercontent.com/QianWen-AI/qianwen-ops-auth/"
    url = check_update.update_url({})
    assert url.startswith(prefix)
    ref, path = url[len(prefix):].split("/", 1)
    assert ref == build.RELEASE_REF and (tree / path).is_file()  # version.json is where the check looks for it
    assert json.loads((tree / path).read_text())["version"] == json.loads(
        (UPDATE_SKILL / "version.json").read_text())["version"]
    env = {"HOME": "/nonexistent"}
    assert install_command(env, SCRIPTS.parent).startswith(f"npx skills add QianWen-AI/qianwen-ops-auth#{ref} ")
    assert update_command(env, SCRIPTS.parent).startswith(f"npx skills add QianWen-AI/qianwen-ops-auth#{ref} --skill")
    assert documented_install()[0] == f"QianWen-AI/qianwen-ops-auth#{ref}"
    command = "npx skills add " + " ".join(documented_install()).replace("*", "'*'")
    assert command == build.install_command() and command in (ROOT / "agent-compatibility.md").read_text()
    assert command in build.readme() and command in (tree / "README.md").read_text()
    assert "npx skills add" not in (ROOT / "README.md").read_text()   # README.md links to it, stated once


def test_branch_mode_commits_the_tree_once(source_repo, tmp_path):  # noqa: F811
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", source_repo, str(repo)], check=True)
    run_env = dict(os.environ, **GIT_IDENTITY)
    argv = [sys.executable, str(repo / "release" / "build.py"), "--branch", "release"]
    first = subprocess.run(argv, cwd=repo, env=run_env, capture_output=True, text=True, timeout=120)
    again = subprocess.run(argv, cwd=repo, env=run_env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and first.stdout.startswith("release: ") and again.stdout == "release: unchanged\n"
    def out(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout

    head = out("rev-parse", "HEAD").strip()
    assert out("log", "--format=%s", "refs/heads/release") == f"release: built from {head} by release/build.py\n"
    listed = out("ls-tree", "-r", "--name-only", "refs/heads/release").split()
    assert "skills/qianwen-ops-auth/SKILL.md" in listed and "SKILL.md" not in listed and len(listed) < 80
    assert out("status", "--porcelain") == ""


def plant(folder: Path, name: str, data: bytes = b"x\n") -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("case,word", [
    ("a test", "must not ship"), ("the sandbox", "must not ship"), ("a key", "key-shaped"),
    ("a private key", "key-shaped"), ("too many files", "at most 60"), ("a root SKILL.md", "root"),
    ("a broken link", "links to"), ("a link out of the skill", "links to"),
    ("pyproject readme", "pyproject.toml names"),
])
def test_the_build_refuses_what_must_not_ship(tree, tmp_path, case, word):
    bad = tmp_path / "tree"
    shutil.copytree(tree, bad)
    ours = bad / "skills" / "qianwen-ops-auth"
    if case == "a test":
        plant(ours, "tests/test_x.py")
    elif case == "the sandbox":
        plant(ours, "scripts/qianwen_sandbox/server.py")
    elif case == "a key":
        plant(ours, "references/x.md", b"DASHSCOPE_API_KEY=sk-" + b"0123456789abcdef" * 2 + b"\n")
    elif case == "a private key":
        plant(ours, "scripts/k.py", b"-----BEGIN RSA PRIVATE KEY-----\n" + b"QUJD" * 16 + b"\n")
    elif case == "too many files":
        for i in range(61):
            plant(ours, f"scripts/qianwen_ops/m{i}.py")
    elif case == "a root SKILL.md":
        plant(bad, "SKILL.md")
    elif case == "a broken link":
        plant(ours, "references/y.md", b"see [the tests](../tests/README.md)\n")
    elif case == "a link out of the skill":
        plant(ours, "references/z.md", b"see [the sibling](../../qianwen-update-check/SKILL.md)\n")
    else:
        pyproject = ours / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace("[project]\n", '[project]\nreadme = "README.md"\n', 1))
    problems = build.check(bad)
    assert problems and any(word in p for p in problems), problems


PEM_BODY = b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" * 3
# (path in the checkout, content): what a developer might commit by mistake under a shipped folder
PLANTED = [
    ("references/troubleshooting-notes.md", b"tried with DASHSCOPE_API_KEY=sk-ws-" + b"0123456789abcdef" * 2 + b"\n"),
    ("references/plan-notes.md", b"the plan key sk-sp-" + b"a1B2c3D4e5F6g7H8" * 2 + b" works\n"),
    ("scripts/.netrc", b"machine example.com login me password canarypassword0\n"),
    ("scripts/credentials", b"[default]\nregion = cn-beijing\n"),
    ("references/deploy.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    ("scripts/.env.production", b"QWEN_BASE_URL=https://dashscope.aliyuncs.com\n"),
    ("references/oss-notes.md", b"access_key_secret = Yb7cNe5dTf9gUa1hXk3mPq8rSw2vZt\n"),
    ("references/ids.md", b"the RAM user LTAI5tQ9xYzAbCdEfGhIjK works\n"),
    ("scripts/sts.txt", b"token: CAIS" + b"Qm9yaW5nU3RzVG9rZW5Cb2R5" * 4 + b"\n"),
    # a private key as the upload check sees one, whatever follows its header, and a key note saved as UTF-16
    ("scripts/sa.json", b'{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
     + PEM_BODY + b'\\n-----END PRIVATE KEY-----\\n"}\n'),
    ("references/legacy-key.txt", b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
     + b"DEK-Info: AES-128-CBC,3F1A\n\n" + PEM_BODY + b"\n-----END RSA PRIVATE KEY-----\n"),
    ("references/key-note.txt", ("DASHSCOPE_API_KEY=sk-" + "0123456789abcdef" * 2 + "\n").encode("utf-16")),
]


def test_the_build_refuses_credentials_planted_in_a_commit(source_repo, tmp_path):  # noqa: F811
    """A temporary clone with a commit that adds credential files and key-shaped notes under shipped folders:
    the build names every one of them and fails (names by secret_files' rules, keys by its shapes)."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", source_repo, str(repo)], check=True)
    for name, data in PLANTED:
        plant(repo, name, data)
    run_env = dict(os.environ, **GIT_IDENTITY)
    subprocess.run(["git", "add", "--force", *(name for name, _ in PLANTED)], cwd=repo, env=run_env, check=True)
    subprocess.run(["git", "commit", "-qm", "oops"], cwd=repo, env=run_env, check=True)
    out = tmp_path / "rel"
    done = subprocess.run([sys.executable, str(repo / "release" / "build.py"), str(out)], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == "", done.stdout + done.stderr
    for name, _ in PLANTED:
        assert f"skills/qianwen-ops-auth/{name} " in done.stderr, name
    assert "0123456789abcdef" not in done.stderr and "Yb7cNe5d" not in done.stderr   # named, never echoed


def test_the_release_workflow_publishes_the_branch_on_pushes_to_main():
    text = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    on = text.split("\non:", 1)[1].split("\njobs:", 1)[0]
    assert "push:" in on and "branches: [main]" in on and "contents: write" in text
    steps = text.split("\njobs:", 1)[1]
    assert "python release/build.py --branch release" in steps and "git push origin release" in steps
    assert steps.index("release/build.py --branch release") < steps.index("git push origin release")
