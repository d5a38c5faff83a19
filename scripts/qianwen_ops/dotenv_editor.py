"""Editing ``.env`` for setup_env.py without ever losing or changing what is already there.

Which file: the ``.env`` whose key is in effect (the settings chain: ``.env`` in the current
directory, then the project's), else ``<project>/.env``. Never a file inside the installed
skill folder.

* no key in effect -> append ``DASHSCOPE_API_KEY=sk-your-key-here``
* a key in effect -> nothing changes, byte for byte
* ``key`` (read from stdin by the script, never argv) replaces the value of exactly the
  binding in effect when that holds the placeholder (duplicates: the last one; the
  ``QIANWEN_API_KEY`` alias before ``DASHSCOPE_API_KEY``), or is appended when no key is
  in effect; a real key already in effect is never overwritten
* ``custom_oss`` appends the ``QWEN_TMP_OSS_*`` lines that are missing, AccessKey lines as
  placeholders; existing lines are never changed
* anything ambiguous is refused (exit 12) with the file untouched: a key-looking line that
  does not parse, an edit that would change how any other line reads
* an edit replaces one binding's text (``dotenv_parser.Binding.original``) or appends lines;
  every other byte stays as it was, the BOM and the line breaks (``\\r\\n`` stays ``\\r\\n``)
  included. A ``.env`` is read as UTF-8 and written back as UTF-8; a UTF-16 or UTF-32 file is
  refused (exit 9) in one line before anything is planned
* every write is one atomic replace (``fsutil.replace_file``: temp file, fsync, rename) that
  keeps the file's mode; a new ``.env`` is 0600, a new ``.gitignore`` 0644; links and
  non-regular files are refused
* inside a git work tree, ``.env`` and ``output/qianwen-ops-auth/`` are made git-ignored; a
  real key is never written into a ``.env`` that git tracks
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import errors
from .credentials import KEY_NAMES, PLACEHOLDER, STANDARD, TOKEN_PLAN, Secret, classify_key
from .dotenv_parser import LINE_BREAK, bindings, parse_dotenv_text, read_dotenv
from .errors import QwenOpsError
from .evidence import EVIDENCE_SUBDIR
from .fsutil import UnsafeTarget, check_writable_target, is_within, replace_file
from .gitrun import ignores, in_work_tree, tracks
from .named_tuple import NamedTuple
from .oss_settings import valid_bucket, valid_region
from .project_findings import tracked_dotenv_advice
from .settings import Settings
from .skill_paths import SKILL_DIR, is_installed_copy

PLACEHOLDER_VALUE = "sk-your-key-here"
PLACEHOLDER_LINE = f"DASHSCOPE_API_KEY={PLACEHOLDER_VALUE}"
API_KEYS_URL = "https://platform.qianwenai.com/home/api-keys"
OSS_AK_ID_PLACEHOLDER = "your-accesskey-id"
OSS_AK_SECRET_PLACEHOLDER = "your-accesskey-secret"  # noqa: S105 - a template word, not a secret
EVIDENCE_IGNORE = f"/{EVIDENCE_SUBDIR.as_posix()}/"


def _sets_name(names) -> re.Pattern:
    """A line that looks like it sets one of ``names`` (matched against one line at a time)."""
    alternatives = "|".join(re.escape(n) for n in names)
    return re.compile(r"[^\S\r\n]*(?:export[^\S\r\n]+)?(?P<name>'?(?:" + alternatives + r")'?)[^\S\r\n]*=")


@dataclass
class SetupReport:
    lines: list = field(default_factory=list)    # what was done (or would be, with dry_run), in order
    key_state: str = ""                          # status word of the key in effect afterwards
    target: Path | None = None                   # the .env written, or that would be
    key_source: str = ""                         # "env:NAME" or the .env path the key in effect comes from
    oss_placeholders: bool = False               # AccessKey placeholder lines are in the file


class EnvText(NamedTuple):
    """One ``.env`` (or ``.gitignore``) as read: its exact text (BOM and line breaks as they are) and mode."""

    path: Path
    exists: bool
    text: str
    mode: int


def _read(path: Path) -> EnvText | None:
    """The file's text; None when it is missing or not a regular file (it is then not read)."""
    found = read_dotenv(path)
    return EnvText(path, True, found.text, found.mode) if found else None


def _load(path: Path) -> EnvText:
    return _read(path) or EnvText(path, False, "", 0o600)


def _ambiguous(path: Path, why: str) -> QwenOpsError:
    return QwenOpsError(f"{path}: {why}; edit it by hand, nothing written", errors.REFUSED_WRITE)


def _check_lines(env: EnvText, names) -> list:
    """The bindings of ``env``; refuses a line that sets one of ``names`` inside a statement that does not parse.

    Such a line (an unclosed quote, text after the value) shows what the user meant, yet no
    reader uses it: writing another line would only add to the confusion. A key-looking line
    inside another binding's quoted value is that value's text, not a line of its own.
    """
    found = list(bindings(env.text))
    sets = _sets_name(names)
    for binding in (b for b in found if b.error):
        for offset, line in enumerate(LINE_BREAK.split(binding.original)):
            m = sets.match(line)
            if m:
                raise _ambiguous(env.path, f"line {binding.line + offset} sets {m.group('name').strip(chr(39))} "
                                           "but cannot be read (an unclosed quote or text after the value?)")
    return found


def _effective(values: Mapping, names) -> tuple[str, str] | None:
    """(name, value) of the first of ``names`` holding a non-empty value: the chain's own rule."""
    for name in names:
        value = values.get(name)
        if value:
            return name, value
    return None


def _in_effect(env: EnvText, names) -> tuple[str, str] | None:
    return _effective(parse_dotenv_text(env.text), names)


def _replace_value(found: list, name: str, value: str) -> str:
    """The text of ``found`` with the value of the last binding of ``name`` (the one in effect) replaced."""
    last = max(i for i, b in enumerate(found) if b.key == name)
    return "".join(b.with_value(value) if i == last else b.original for i, b in enumerate(found))


def _append_lines(env: EnvText, lines: list) -> str:
    """``env``'s text with ``lines`` added, ended by the file's own line break (``\\r\\n`` if it has any)."""
    newline = "\r\n" if "\r\n" in env.text else "\r" if "\r" in env.text and "\n" not in env.text else "\n"
    prefix = newline if env.text and not env.text.endswith(("\n", "\r")) else ""
    return env.text + prefix + "".join(line + newline for line in lines)


def _verify(env: EnvText, new_text: str, changes: Mapping[str, str], names=KEY_NAMES, expect=None) -> None:
    """``new_text`` must read as the old bindings plus ``changes``, nothing else.

    ``expect`` (name, value) must then be what is in effect among ``names``.
    """
    before, after = parse_dotenv_text(env.text), parse_dotenv_text(new_text)
    if after != {**before, **changes} or (expect and _effective(after, names) != expect):
        raise _ambiguous(env.path, "the new line would change how other lines read (an unclosed quote?)")


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomic replace that keeps ``mode``; a failure (a full disk included) leaves ``path`` as it was."""
    try:
        replace_file(path, data, mode=mode)
    except UnsafeTarget:
        raise QwenOpsError(f"{path} is a symbolic link or not a regular file; refusing to write",
                           errors.REFUSED_WRITE) from None
    except OSError as exc:
        raise QwenOpsError(f"could not write {path} ({exc.strerror or 'write failed'}); it is unchanged",
                           errors.REFUSED_WRITE) from None


def _check_target(path: Path) -> None:
    if is_within(path.parent.resolve(), SKILL_DIR) and is_installed_copy():
        raise QwenOpsError(f"{path} would be inside the installed skill folder; run setup_env.py from your "
                           "project instead, nothing written", errors.REFUSED_WRITE)
    try:
        check_writable_target(path)
    except UnsafeTarget:
        raise QwenOpsError(f"{path} is a symbolic link or not a regular file; refusing to touch it",
                           errors.REFUSED_WRITE) from None


class _Plan:
    """What one run changes: ``.env`` text and ``.gitignore`` lines, checked before anything is written."""

    def __init__(self, report: SetupReport, dry_run: bool):
        self.report, self.dry_run = report, dry_run
        self.writes: list = []   # (path, text, mode)

    def say(self, text: str) -> None:
        self.report.lines.append(text)

    def change(self, done: str, planned: str, path: Path, text: str, mode: int) -> None:
        _check_target(path)
        self.writes.append((path, text, mode))
        self.say(f"would {planned}" if self.dry_run else done)

    def commit(self) -> None:
        if not self.dry_run:
            for path, text, mode in self.writes:
                _write(path, text.encode("utf-8"), mode)


def _gitignore(plan: _Plan, env_path: Path, project: Path) -> None:
    """Make ``.env`` (and the evidence folder) git-ignored when ``env_path`` is in a git work tree."""
    folder = env_path.parent
    if not in_work_tree(folder):
        return
    wanted = []
    if not ignores(folder, env_path.name):
        wanted.append(".env")
    evidence_home = project if is_within(folder.resolve(), project.resolve()) else folder
    if not ignores(evidence_home, EVIDENCE_IGNORE.lstrip("/")):
        wanted.append(EVIDENCE_IGNORE)
    if not wanted:
        plan.say(f"{env_path.name} is already git-ignored")
        return
    path = evidence_home / ".gitignore"
    try:
        _check_target(path)
        current = _load(path)
    except QwenOpsError as exc:
        plan.say(f"warning: {exc.message.replace('nothing written', 'not changed')}; add {', '.join(wanted)} "
                 "to your .gitignore yourself")
        return
    mode = current.mode if current.exists else 0o644
    plan.change(f"added {', '.join(wanted)} to {path}", f"add {', '.join(wanted)} to {path}",
                path, _append_lines(current, wanted), mode)


def _target(holder: EnvText | None, settings: Settings) -> EnvText:
    if holder is not None:
        return holder
    path = settings.project_root / ".env"
    _check_target(path)
    target = _load(path)
    _check_lines(target, KEY_NAMES)
    return target


def setup_env(cwd: Path, dry_run: bool = False, key: Secret | None = None,
              env: Mapping[str, str] | None = None, custom_oss: tuple[str, str] | None = None) -> SetupReport:
    """Create or complete the ``.env`` the scripts read (see the module docstring for the rules).

    ``env`` is the process environment to consider (default ``os.environ``); ``custom_oss``
    is ``(bucket, region)``.
    """
    settings = Settings.from_process(cwd=cwd, env=env)
    report = SetupReport()
    plan = _Plan(report, dry_run)
    chain = [text for text in (_read(p) for p in settings.dotenv_paths()) if text is not None]
    holder, in_effect = None, None
    for text in chain:
        _check_lines(text, KEY_NAMES)
        found = _in_effect(text, KEY_NAMES)
        if found:
            holder, in_effect = text, found
            break
    from_env = _effective(settings.env, KEY_NAMES)
    if custom_oss is not None:
        target = _target(holder, settings)
        _add_custom_oss(plan, target, chain, settings, *custom_oss)
        report.key_state = classify_key(from_env[1] if from_env else in_effect[1] if in_effect else None)[0]
    elif key is not None:
        target = _target(holder, settings)
        report.key_state = _write_real_key(plan, target, key, in_effect, settings.project_root)
        if from_env:
            plan.say(f"note: the environment variable {from_env[0]} is set and overrides .env until it is unset")
    elif from_env:
        plan.say(f"the key comes from the environment variable {from_env[0]}; no .env change needed")
        report.key_state = classify_key(from_env[1])[0]
        report.key_source = f"env:{from_env[0]}"
        return report
    elif holder is not None:
        target = holder
        report.key_state = classify_key(in_effect[1])[0]
        plan.say(f"{holder.path} already sets {in_effect[0]} ({report.key_state}); left unchanged")
    else:
        target = _target(None, settings)
        new_text = _append_lines(target, [PLACEHOLDER_LINE])
        _verify(target, new_text, {"DASHSCOPE_API_KEY": PLACEHOLDER_VALUE},
                expect=("DASHSCOPE_API_KEY", PLACEHOLDER_VALUE))
        done, planned = ("appended to", "append to") if target.exists else ("created", "create")
        plan.change(f"{done} {target.path}: {PLACEHOLDER_LINE}", f"{planned} {target.path}: {PLACEHOLDER_LINE}",
                    target.path, new_text, target.mode)
        report.key_state = PLACEHOLDER
    report.target = target.path
    report.key_source = report.key_source or str(target.path)
    if target.exists or plan.writes:
        _gitignore(plan, target.path, settings.project_root)
    plan.commit()
    return report


def _write_real_key(plan: _Plan, target: EnvText, key: Secret, in_effect: tuple[str, str] | None,
                    project: Path) -> str:
    value = key.reveal()
    status, problem = classify_key(value)
    if status not in (STANDARD, TOKEN_PLAN):
        raise QwenOpsError(f"the key read from stdin is {status}{f' ({problem})' if problem else ''}; "
                           "nothing written", errors.NO_KEY)
    if target.exists and tracks(target.path):
        # the advice doctor gives: untracking alone would make a cloned repository's settings trusted
        relative = target.path.relative_to(project) if is_within(target.path, project) else target.path.name
        raise QwenOpsError(f"a key in {target.path} would be committed, nothing written: "
                           + "; ".join(tracked_dotenv_advice(target.path, str(relative))), errors.REFUSED_WRITE)
    if in_effect is not None:
        name, current = in_effect
        if current == value:
            plan.say(f"{target.path} already holds this key in {name}; left unchanged")
            return status
        current_status = classify_key(current)[0]
        if current_status != PLACEHOLDER:
            raise QwenOpsError(f"{target.path} already sets {name} ({current_status}); edit it yourself, "
                               "nothing written", errors.REFUSED_WRITE)
        new_text = _replace_value(_check_lines(target, KEY_NAMES), name, value)
        _verify(target, new_text, {name: value}, expect=(name, value))
        plan.change(f"replaced the placeholder {name} in {target.path} with the key from stdin ({status})",
                    f"replace the placeholder {name} in {target.path} with the key from stdin ({status})",
                    target.path, new_text, target.mode)
        return status
    new_text = _append_lines(target, [f"DASHSCOPE_API_KEY={value}"])
    _verify(target, new_text, {"DASHSCOPE_API_KEY": value}, expect=("DASHSCOPE_API_KEY", value))
    plan.change(f"added the key from stdin to {target.path} ({status})",
                f"add the key from stdin to {target.path} ({status})", target.path, new_text, target.mode)
    return status


def _add_custom_oss(plan: _Plan, target: EnvText, chain: list, settings: Settings, bucket: str, region: str) -> None:
    if not valid_bucket(bucket):
        raise QwenOpsError("--bucket is not an OSS bucket name (3-63 lowercase letters, digits, hyphens)",
                           errors.USAGE)
    if not valid_region(region):
        raise QwenOpsError("--region is not a region id like cn-beijing", errors.USAGE)
    wanted = {"QWEN_TMP_OSS_BUCKET": bucket, "QWEN_TMP_OSS_REGION": region,
              "QWEN_TMP_OSS_AK_ID": OSS_AK_ID_PLACEHOLDER, "QWEN_TMP_OSS_AK_SECRET": OSS_AK_SECRET_PLACEHOLDER}
    for text in {id(t): t for t in [*chain, target] if t.exists}.values():
        _check_lines(text, wanted)
    missing = {}
    for name, value in wanted.items():
        current, where = settings.env.get(name), f"the environment variable {name}"
        for text in chain:
            if current:
                break
            current, where = _in_effect(text, (name,)), str(text.path)
            current = current[1] if current else None
        if not current:
            missing[name] = value
        elif name in ("QWEN_TMP_OSS_BUCKET", "QWEN_TMP_OSS_REGION") and current != value:
            raise QwenOpsError(f"{name} is already set to another value in {where}; change it there, "
                               "nothing written", errors.REFUSED_WRITE)
        else:
            plan.say(f"{name} is already set ({where}); left unchanged")
            if value.startswith("your-") and current == value:
                plan.report.oss_placeholders = True
    if not missing:
        return
    new_text = _append_lines(target, [f"{name}={value}" for name, value in missing.items()])
    _verify(target, new_text, missing)
    names = ", ".join(missing)
    plan.change(f"{'appended to' if target.exists else 'created'} {target.path}: {names}",
                f"{'append to' if target.exists else 'create'} {target.path}: {names}",
                target.path, new_text, target.mode)
    plan.report.oss_placeholders = plan.report.oss_placeholders or "QWEN_TMP_OSS_AK_ID" in missing
