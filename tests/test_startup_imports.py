"""What probe.py loads at start-up, pinned: the exact ``qianwen_ops`` modules, and every heavy standard-library
module beyond the few the probe has decided to pay for; and what a rerun of cached uploads loads.

Start-up is most of a probe's time (bench/run.py), so a module added to this path must be a decision that
changes this test, never a side effect. Each path is run under ``python -X importtime``, which names every
module the process imported. Which heavy modules the standard library itself pulls in varies with the
Python version (urllib.parse brings ipaddress from 3.11, argparse shutil, http.client email), so those are
measured on a bare interpreter doing only what the probe decided to do (``DECIDED``) and not counted.
"""

from __future__ import annotations

import subprocess
import sys

from conftest import SCRIPTS, WINDOWS_LAYER, run_script, sandbox_env

# Heavy by import cost or by what they pull in; a module counts with its submodules (email.utils is email).
HEAVY = ("argparse", "asyncio", "calendar", "concurrent.futures", "dataclasses", "datetime", "decimal",
         "email", "hashlib", "http.client", "inspect", "ipaddress", "json", "logging", "mimetypes", "queue", "random",
         "secrets", "shutil", "socket", "ssl", "subprocess", "tarfile", "tempfile", "typing", "urllib.request", "uuid",
         "xml", "zipfile")

# What each path has decided to load, as a bare interpreter would do it (argparse making a parser, as the script).
DECIDED = {
    "no key": "import argparse, json, urllib.parse; argparse.ArgumentParser(prog='p').add_argument('--x')",
    "200": "import argparse, json, urllib.parse, socket, ssl, http.client; "
           "argparse.ArgumentParser(prog='p').add_argument('--x')",
}

COMMON = {"qianwen_ops", "qianwen_ops.cli", "qianwen_ops.credentials", "qianwen_ops.endpoints", "qianwen_ops.errors",
          "qianwen_ops.evidence", "qianwen_ops.fsutil", "qianwen_ops.gitrun", "qianwen_ops.limits",
          "qianwen_ops.named_tuple", "qianwen_ops.network", "qianwen_ops.ownership", "qianwen_ops.probe",
          "qianwen_ops.project", "qianwen_ops.provenance", "qianwen_ops.redaction", "qianwen_ops.settings",
          "qianwen_ops.skill_paths", "qianwen_ops.urls"}
OURS = {
    # no key anywhere: no .env exists, so its parser is never loaded; nothing is sent
    "no key": COMMON,
    # the key in the environment: no .env is read; the TCP connection opens (first_hop) while http_client loads
    "200": COMMON | {"qianwen_ops.first_hop", "qianwen_ops.http_client"},
}
# Heavy modules our own code adds on top of DECIDED: none (named_tuple spares typing).
EXTRA = {"no key": set(), "200": set()}


def imported(stderr: str) -> set:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def heavy(modules: set) -> set:
    found = {name for name in HEAVY if any(m == name or m.startswith(name + ".") for m in modules)}
    # Under the Windows-semantics layer (QWEN_TEST_WINDOWS_LAYER) its sitecustomize imports subprocess before
    # the script starts: the layer's module, not the script's.
    return found - {"subprocess"} if WINDOWS_LAYER else found


def baseline(path: str) -> set:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", DECIDED[path]], capture_output=True, text=True,
                          timeout=60, check=True)
    return heavy(imported(done.stderr))


def test_probe_without_a_key_loads_exactly_these_modules(env, project):
    result = run_script("probe.py", env=env, cwd=project, python=[sys.executable, "-X", "importtime"])
    assert result.code == 3 and result.out == "000\n"
    modules = imported(result.err)
    assert {m for m in modules if m.startswith("qianwen_ops")} == OURS["no key"]
    assert heavy(modules) - baseline("no key") == EXTRA["no key"]
    assert not {"http.client", "ssl", "socket"} & heavy(modules)   # nothing to send: no network stack


def test_probe_with_a_working_key_loads_exactly_these_modules(sb, env, project):
    result = run_script("probe.py", env=sandbox_env(env, sb), cwd=project, python=[sys.executable, "-X", "importtime"])
    assert result.code == 0 and result.out == "200\n"
    modules = imported(result.err)
    assert {m for m in modules if m.startswith("qianwen_ops")} == OURS["200"]
    assert heavy(modules) - baseline("200") == EXTRA["200"]
    assert not {"subprocess", "urllib.request", "dataclasses", "concurrent.futures", "logging"} & heavy(modules)


def test_the_pin_sees_a_new_import(env, project, tmp_path):
    """The measurement itself: a heavy module imported by the script's own code shows up."""
    script = tmp_path / "probe.py"
    script.write_text("import tarfile\n" + (SCRIPTS / "probe.py").read_text(), encoding="utf-8")
    done = subprocess.run([sys.executable, "-X", "importtime", str(script)], env=dict(env, PYTHONPATH=str(SCRIPTS)),
                          cwd=project, capture_output=True, text=True, timeout=60)
    assert "tarfile" in heavy(imported(done.stderr)) - baseline("no key")


def test_the_probe_and_a_cache_hit_rerun_load_only_what_they_use(sb, env, project):
    """Start-up is most of the probe's time and of a rerun of cached files (bench/run.py): neither
    loads typing (~14 M instructions), shutil (argparse's terminal size) or dataclasses; a rerun whose
    files are all cached loads no HTTP stack at all."""
    heavy = {"typing", "shutil", "dataclasses", "inspect"}
    timed = [sys.executable, "-X", "importtime"]
    probe = run_script("probe.py", env=sandbox_env(env, sb), cwd=project, python=timed)
    assert probe.code == 0 and probe.out.strip() == "200"
    assert "http.client" in imported(probe.err) and not imported(probe.err) & heavy
    (project / "a.png").write_bytes(b"\x89PNG" + bytes(60))
    first = run_script("upload_file.py", "a.png", "--model", "qwen-vl-plus", env=sandbox_env(env, sb), cwd=project)
    assert first.code == 0, first.err
    again = run_script("upload_file.py", "a.png", "--model", "qwen-vl-plus", env=sandbox_env(env, sb), cwd=project,
                       python=timed)
    assert again.code == 0 and again.out == first.out.splitlines()[0] + "\n"
    assert not imported(again.err) & (heavy | {"http.client", "ssl", "socket", "oss2"})
    # nor OpenSSL (hashlib: 3-6 ms): the cache key and the key's fingerprint take CPython's own BLAKE2 and SHA-256
    assert not imported(again.err) & {"hashlib", "_hashlib"}
