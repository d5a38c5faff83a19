"""Where a setting came from, and what that lets it decide: the one place that judges by origin.

A value is trusted as much as whoever could write where it came from. The process environment is
the user's own. A ``.env`` file may come from a cloned repository, and a ``.env`` that git tracks
certainly was written by whoever commits to it. So:

* a value that chooses where the key, the files or the traffic go (``JUDGED_NAMES``: the API host,
  the custom-OSS bucket, proxies, CA certificates, the folders of the upload cache and state) may
  not come from a ``.env`` that git tracks (``check_not_tracked``; proxies, CA certificates and
  those folders are never read from a ``.env`` at all, see ``network`` and ``fsutil.user_dir``);
* a host read from any ``.env`` must be a documented one, on the https port
  (``check_file_sourced_host``); loopback and any other host only from the environment.

"Does git track it" fails closed (``tracked_verdict``): git is asked about the name as the index
may hold it and, for a link, about the file it points to too (``gitrun.tracked_state``); when git
cannot answer (not installed, broken, timed out) for a file inside a git work tree (a ``.git``
marker the user owns in its folder or above), the file counts as tracked, and the message says why.

The documented library path is ``load_dotenv(); resolve_file(...)``: python-dotenv copies every
line of a ``.env`` into ``os.environ``, where a value would gain the environment's trust on the
way. The rule: a value of one of ``JUDGED_NAMES`` in the process environment that a ``.env`` that
is not the user's (git tracks it, or ``ownership`` would not read it: another user's, or in a
folder others can write) could have put there is judged as coming from that file
(``copied_from_tracked_files``). "Could have put there" (``possible_values``) covers what
``load_dotenv()`` makes of the file: the text as written (``interpolate=False``) and its ``${NAME}``
/ ``${NAME:-default}`` expansions (``dotenv_parser.interpolate``) with the environment as it is, as
it was before the file's own names were set, and empty, each with and without ``override``; a line
that expands its own name (``NO_PROXY=${NO_PROXY},.corp``) matches any value holding its text in
order (what ``load_dotenv(override=True)`` makes of the user's own value), unless a plain name the file
sets before it is missing from the environment (that load then never ran); its warning and a certificate
failure's advice (``certificate_note``) say the value could have come from that line and how to keep it.
Only the names a file sets are compared with it, and whose file it is is asked before any
``${...}`` is expanded: the user's own ``.env`` is never expanded (linear time), another's within a
budget (``MAX_EXPANDED_PER_FILE``, ``dotenv_parser.MAX_EXPANDED_VALUE``); past it, every judged name
the file sets is judged as that file's, with a warning. Names compare case-insensitively where the
environment does (Windows upper-cases them).
``Settings.env`` leaves such values out, so every decision made from it (``endpoints`` for the API
host, ``oss_settings`` for the bucket, ``network`` for proxies and CA certificates, the cache
folder) is the one the scripts make without ``load_dotenv``. One warning line on stderr names each
value left out. ``OPENSSL_CONF`` and ``SSLKEYLOGFILE`` are judged for that warning only: OpenSSL
reads the first once per process (nothing here can undo it), and the bundle's TLS contexts never
write a key log (``network``).

The ``.env`` files compared: those ``Settings`` reads (the working directory's, the project's),
every ``.env`` in the folders between them, those from the main script's folder up to its
project, and the first one ``load_dotenv()`` would find walking up to the file system's root from the
main script's folder, from the working directory, and from the folder of each loaded module that lies
in the project (``find_dotenv()`` starts from the module that calls ``load_dotenv()``: a settings
module, say); more than ``MAX_MODULE_FOLDERS`` such folders take every judged value. Each is read whatever ``Settings``
thinks of it (another user's, binary, large: python-dotenv reads it all the same) up to
``MAX_COMPARED_BYTES``, never a FIFO or device; a larger one that is not the user's takes every
judged value with it. git runs only when a value matches, through ``gitrun`` (a cloned
repository's configuration cannot make the question run a program).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from .errors import CONFIG, QwenOpsError
from .fsutil import HOME_VARIABLES, account_home, read_regular
from .gitrun import tracked_state
from .network import ALL_PROXY_VARIABLES, CA_VARIABLES
from .ownership import trusted, why_untrusted
from .project import locate
from .redaction import one_line
from .urls import is_loopback_host

# Values that choose where the key, the files or the traffic go (a key itself may come from a tracked file).
# (A region only picks among documented hosts, so QWEN_REGION and DASHSCOPE_API_REGION are not here.)
ENDPOINT_NAMES = ("QWEN_BASE_URL", "DASHSCOPE_HTTP_BASE_URL", "DASHSCOPE_WORKSPACE_ID")
# Every custom-OSS setting decides where files go or with whose keys (oss_settings reads them).
BUCKET_NAMES = ("QWEN_TMP_OSS_BUCKET", "QWEN_TMP_OSS_REGION", "QWEN_TMP_OSS_ENDPOINT", "QWEN_TMP_OSS_PREFIX",
                "QWEN_TMP_OSS_AK_ID", "QWEN_TMP_OSS_AK_SECRET", "QWEN_TMP_OSS_URL_EXPIRES")
# Where the reuse cache and the multipart checkpoints (presigned URLs: signatures, STS tokens) and the state go.
STORAGE_NAMES = ("XDG_CACHE_HOME", "XDG_STATE_HOME")
# Read by OpenSSL or Python's ssl for the whole process: judged to warn (see the module docstring).
PROCESS_TLS_NAMES = ("OPENSSL_CONF", "SSLKEYLOGFILE")
# The home folder: where the SDK's key file, the CLI configuration, the cache and the credential stores are.
HOME_NAMES = HOME_VARIABLES
JUDGED_NAMES = (ENDPOINT_NAMES + BUCKET_NAMES + ALL_PROXY_VARIABLES + CA_VARIABLES + STORAGE_NAMES + HOME_NAMES
                + PROCESS_TLS_NAMES)
# Windows keeps environment names case-insensitively (os.environ upper-cases them): a .env's
# ``https_proxy=`` arrives there as HTTPS_PROXY.
CASE_INSENSITIVE_ENV = os.name == "nt"
MAX_LEVELS = 12
MAX_COMPARED_BYTES = 8 * 1024 * 1024
MAX_EXPANDED_PER_FILE = 1024 * 1024   # characters the expansions of one .env may take (possible_values)
MAX_MODULE_FOLDERS = 10000  # bounds the stat calls; sys.modules holds a few thousand at most
TOO_LARGE = object()
TOO_MANY = Path("<the .env files of more than %d module folders>" % MAX_MODULE_FOLDERS)
_warned: set = set()


class Copied(dict):
    """``{name: path}`` (``copied_from_tracked_files``); ``fitted``: the names only a self-expanding line fits."""

    __slots__ = ("fitted",)

    def __init__(self):
        super().__init__()
        self.fitted: set = set()


class JudgedEnv(dict):
    """The environment without the values ``copied`` names (``Settings.env``), remembering what was set aside
    and why (``certificate_note``)."""

    __slots__ = ("copied",)

    def __init__(self, process_env: Mapping[str, str], copied: Copied):
        super().__init__((k, v) for k, v in process_env.items() if k not in copied)
        self.copied = copied


def _between(start: Path, stop: Path) -> list:
    """``start`` and its parents up to ``stop`` (both included) when ``stop`` holds ``start``; else ``start``."""
    folders = [start]
    for parent in start.parents:
        if len(folders) >= MAX_LEVELS or folders[-1] == stop:
            break
        folders.append(parent)
    return folders if folders[-1] == stop else [start]


def _main_folder() -> Path | None:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return Path(os.path.abspath(os.path.dirname(path))) if path else None


def _found_upwards(folder: Path, levels: int | None = None) -> Path | None:
    """The ``.env`` python-dotenv's ``find_dotenv()`` picks from ``folder``: the nearest file or FIFO named
    so in ``folder`` or a parent (a FIFO is never read here, but it ends python-dotenv's search too);
    ``levels``: look in that many folders only."""
    import stat  # deferred: only when a judged value is in the environment

    for candidate in (folder, *folder.parents)[:levels]:
        path = candidate / ".env"
        try:
            mode = os.stat(path).st_mode
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):
            return path
    return None


def _module_folders(roots: list) -> list | None:
    """The folders of the loaded modules that lie in one of ``roots`` (deduplicated, in load order); None
    when there are more than ``MAX_MODULE_FOLDERS`` of them."""
    folders: dict = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if folder in folders:
            continue
        if any(folder == root or folder.startswith(root.rstrip(os.sep) + os.sep) for root in roots):
            folders[folder] = None
            if len(folders) > MAX_MODULE_FOLDERS:
                return None
    return [Path(folder) for folder in folders]


def _found_from_each(starts: list) -> list:
    """``_found_upwards`` for each folder of ``starts``, each ``.env`` once; a folder is stat'ed once."""
    nearest: dict = {}   # folder -> the .env find_dotenv() picks from it (or None)
    found: dict = {}
    for start in starts:
        walked = []
        for folder in (start, *start.parents):
            if folder in nearest:
                pick = nearest[folder]
                break
            walked.append(folder)
            pick = _found_upwards(folder, levels=1)
            if pick is not None:
                break
        for folder in walked:
            nearest[folder] = pick
        if pick is not None:
            found[pick] = None
    return list(found)


def candidate_files(settings) -> list:
    """The ``.env`` files whose values may have been copied into the environment, nearest first.

    ``TOO_MANY`` stands in for the ``.env`` files of the modules' folders when there are more than
    ``MAX_MODULE_FOLDERS`` of those (``copied_from_tracked_files`` then judges every value as not the user's).
    """
    files = list(settings.dotenv_paths())
    folders = _between(settings.layout.start, settings.layout.project)
    script = _main_folder()
    roots = [str(settings.layout.project), os.path.abspath(settings.cwd)]
    if script is not None:
        script_project = locate(script, skill_dir=settings.skill_dir).project
        folders += _between(script, script_project)
        roots.append(str(script_project))
    found = [folder / ".env" for folder in folders]
    # find_dotenv() walks up from the folder of the module that calls load_dotenv() (a settings module, not
    # only the main script), or from the working directory in a REPL, a debugger or a frozen app.
    modules = _module_folders(roots)
    starts = [start for start in (script, Path(os.path.abspath(settings.cwd))) if start is not None]
    found += _found_from_each(starts + (modules or []))
    if modules is None:
        found.append(TOO_MANY)
    for path in found:
        if path not in files:
            files.append(path)
    return [path for path in files if path is TOO_MANY or os.path.isfile(path)]


def _fold(name: str, fold: bool) -> str:
    return name.upper() if fold else name


class Possible:
    """What one ``.env`` could have put into the environment: exact ``values`` and self-expanding
    ``patterns`` (literal segments a value must hold in order), each by (case-folded) name."""

    def __init__(self, values: dict, patterns: dict):
        self.values = values
        self.patterns = patterns

    def holds(self, name: str, value: str) -> bool:
        return self.exactly(name, value) or any(_fits(value, p) for p in self.patterns.get(name, ()))

    def exactly(self, name: str, value: str) -> bool:
        """``value`` is one the file sets, not only one a self-expanding line could make of another."""
        return value in self.values.get(name, ())


def _fits(value: str, segments: list) -> bool:
    """``value`` is ``segments`` joined with anything between them (a glob with ``*`` only; linear)."""
    head, *middle, tail = segments
    if not value.startswith(head):
        return False
    pos = len(head)
    for part in middle:
        found = value.find(part, pos)
        if found < 0:
            return False
        pos = found + len(part)
    return len(value) - pos >= len(tail) and value.endswith(tail)


def possible_values(text: str, environ: Mapping[str, str], fold: bool = False, pairs: list | None = None) -> Possible:
    """Every value ``load_dotenv()`` could set from ``text`` (see the module docstring; ``pairs``: its
    ``binding_pairs`` when known). ``dotenv_parser.ExpansionTooLarge`` when the expansions of the five
    environments together would take more than ``MAX_EXPANDED_PER_FILE`` characters (or one value more than
    ``dotenv_parser.MAX_EXPANDED_VALUE``): linear time in the text and that budget."""
    from .dotenv_parser import binding_pairs, interpolate, variables  # only when a .env is compared

    pairs = binding_pairs(text) if pairs is None else pairs
    values: dict = {}
    patterns: dict = {}

    def add(name: str, value) -> None:
        if value:
            values.setdefault(_fold(name, fold), set()).add(value)

    for name, value in pairs:
        add(name, value)
    if not any(value and "${" in value for _, value in pairs):
        return Possible(values, patterns)
    selfish = set()   # lines that expand their own name: the environment's value now is no clue to it
    unloaded = _not_loaded_with_override(pairs, environ, fold)
    for name, value in pairs:
        found = list(variables(value or ""))
        if any(_fold(variable, fold) == _fold(name, fold) for _, _, variable, _ in found):
            selfish.add(_fold(name, fold))
            segments, pos = [], 0
            for start, end, _, _ in found:
                segments.append(value[pos:start])
                pos = end
            segments.append(value[pos:])
            if any(segments) and _fold(name, fold) not in unloaded:   # "${NAME}" alone: the environment's own
                patterns.setdefault(_fold(name, fold), []).append(segments)
    bound = {_fold(name, fold) for name, _ in pairs}
    before = {k: v for k, v in environ.items() if _fold(k, fold) not in bound}
    budget = [MAX_EXPANDED_PER_FILE]
    for scope, override in ((environ, False), (environ, True), (before, False), (before, True), ({}, False)):
        for name, value in interpolate(pairs, scope, override, budget).items():
            if scope is not environ or _fold(name, fold) not in selfish:
                add(name, value)
    return Possible(values, patterns)


def _not_loaded_with_override(pairs: list, environ: Mapping[str, str], fold: bool) -> set:
    """The (folded) names ``load_dotenv(override=True)`` of these ``pairs`` cannot have set in ``environ``.

    It sets every name that has a value, in python-dotenv's order (where each name first appears), whatever
    the environment held: when a plain name (an ASCII identifier, which ``os.environ`` always takes) is missing
    from ``environ``, that load did not happen, so no name set after it came from it either.
    """
    present = {_fold(name, fold) for name in environ}
    final: dict = {}
    for name, value in pairs:
        final[_fold(name, fold)] = value   # python-dotenv's dict: first position, last value
    unloaded: set = set()
    for name, value in final.items():
        if unloaded or (value is not None and name.isidentifier() and name.isascii() and name not in present):
            unloaded.add(name)
    return unloaded


def _compared_text(path: Path):
    """The text of ``path`` as python-dotenv reads it (bad UTF-8 replaced: it would not load then), None
    when unreadable or not a regular file, ``TOO_LARGE`` past ``MAX_COMPARED_BYTES``."""
    try:
        found = read_regular(path, MAX_COMPARED_BYTES)
    except OSError:
        return None  # unreadable: load_dotenv() could not read it either
    if found is None:
        return None
    if len(found[0]) > MAX_COMPARED_BYTES:
        return TOO_LARGE
    return found[0].decode("utf-8", "replace")


def _in_work_tree(folder: Path) -> bool:
    """A ``.git`` marker the user owns in ``folder`` or above (``ownership``)."""
    return any(trusted(parent / ".git") for parent in (folder, *folder.parents))


@lru_cache(maxsize=32)
def tracked_verdict(path: Path) -> tuple:
    """``(counts as tracked, why git could not say or "")`` for the absolute ``path``, asked once per process.

    Tracked when git tracks the file or, for a link, the file it points to; also when git cannot say
    and the file lies in a git work tree (fail closed). Every ``QWEN_TMP_OSS_*`` value of one ``.env``
    asks the same question, hence the cache.
    """
    unknown = ""
    for candidate in dict.fromkeys((path, Path(os.path.realpath(path)))):
        state, why = tracked_state(candidate)
        if state:
            return True, ""
        if state is None and not unknown and _in_work_tree(candidate.parent):
            unknown = why
    return (True, unknown) if unknown else (False, "")


def _not_yours(path: Path) -> str | None:
    """Why a ``.env`` is not the user's own (a phrase), or None when it is."""
    why = why_untrusted(Path(path))
    if why:
        return f"a file that is not yours ({why})"
    tracked, unknown = tracked_verdict(Path(os.path.abspath(path)))
    if not tracked:
        return None
    return f"and git could not say whether it tracks that file ({unknown})" if unknown else "and git tracks that file"


def copied_from_tracked_files(settings, process_env: Mapping[str, str]) -> dict:
    """``{name: path}`` for each judged value in ``process_env`` that a ``.env`` that is not the user's
    (tracked by git, or another user's) could have put there (``possible_values``)."""
    fold = CASE_INSENSITIVE_ENV
    judged = {_fold(name, fold) for name in JUDGED_NAMES}
    present = {name: value for name, value in process_env.items() if value and _fold(name, fold) in judged}
    if present.get("HOME") and present["HOME"] == account_home():
        del present["HOME"]   # the account's own home folder, wherever it was read from: nothing to judge
    if not present:
        return {}
    copied = Copied()
    for path in candidate_files(settings):
        left = {name: value for name, value in present.items() if name not in copied}
        if not left:
            break
        if path is TOO_MANY:  # fail closed: which .env load_dotenv() found was not worked out
            for name in left:
                copied[name] = path
                _warn(name, path, "", f"more than {MAX_MODULE_FOLDERS} folders of loaded modules lie in the "
                      "project, too many to look for the .env load_dotenv() may have found from each")
            break
        text = _compared_text(path)
        if text is None:
            continue
        if text is TOO_LARGE:
            same, why, fitted = list(left), _not_yours(path), set()
            unchecked = f"it is too large to compare, over {MAX_COMPARED_BYTES // (1024 * 1024)} MiB"
        else:
            same, why, unchecked, fitted = _compared(path, text, left, process_env, fold)
        if why is None:
            continue
        for name in same:
            copied[name] = path
            if name in fitted:
                copied.fitted.add(name)
            if not _refused_later(settings, name, path, why):
                _warn(name, path, why, unchecked, name in fitted)
    return copied


def _compared(path: Path, text: str, left: dict, process_env: Mapping[str, str], fold: bool) -> tuple:
    """``(names of left that path could have set, why path is not the user's or None, why they could not be
    compared or "", those of the names only a self-expanding line fits)``. Whose file it is is asked first
    when telling would take expanding ``${...}``: the user's own file is never expanded (linear time),
    another's within ``MAX_EXPANDED_PER_FILE``."""
    from .dotenv_parser import MAX_EXPANDED_VALUE, ExpansionTooLarge, binding_pairs  # only when a .env is compared

    pairs = binding_pairs(text)
    bound = {_fold(name, fold) for name, _ in pairs}
    named = [name for name in left if _fold(name, fold) in bound]   # load_dotenv() sets only these
    wanted = {_fold(name, fold) for name in named}
    if not any("${" in (value or "") for name, value in pairs if _fold(name, fold) in wanted):
        literal: dict = {}
        for name, value in pairs:
            literal.setdefault(_fold(name, fold), set()).add(value)
        same = [name for name in named if left[name] in literal.get(_fold(name, fold), ())]
        return same, _not_yours(path) if same else None, "", set()
    why = _not_yours(path)
    if why is None:
        return [], None, "", set()
    try:
        possible = possible_values(text, process_env, fold, pairs)
    except ExpansionTooLarge:
        return named, why, (f"its ${{...}} expansions are too large to compare, over {MAX_EXPANDED_VALUE // 1024} "
                            f"KiB a value or {MAX_EXPANDED_PER_FILE // (1024 * 1024)} MiB in all"), set()
    same = [name for name in named if possible.holds(_fold(name, fold), left[name])]
    return same, why, "", {name for name in same if not possible.exactly(_fold(name, fold), left[name])}


def _refused_later(settings, name: str, path: Path, why: str) -> bool:
    """Will ``check_not_tracked`` refuse this value itself, naming the file (so no warning is needed)?"""
    if name not in ENDPOINT_NAMES + BUCKET_NAMES or path not in settings.dotenv_paths() or "not yours" in why:
        return False
    try:
        return bool(settings.dotenv_values(path).get(name))
    except QwenOpsError:
        return True  # the scripts refuse the unreadable .env itself


def check_file_sourced_host(name: str, url: str, source: str, documented: Callable[[str], bool]) -> None:
    """A .env file (possibly from a cloned repository) may not send credentials to an unknown host.

    From a file only hosts ``documented`` accepts pass, on the https port; loopback, any other host
    and any other port must be set in the process environment, where only the user puts it.
    Callers ask ``check_not_tracked`` first: a tracked file's value is refused for that reason alone.
    """
    if source.startswith("env:"):
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not documented(host):
        kind = "a loopback host" if is_loopback_host(host) else "not a documented host"
        raise QwenOpsError(f"{name} in {source} points to {host}, which is {kind}; a .env file may only name "
                           "documented hosts: set it in the environment instead if you really mean it", CONFIG)
    if parts.port not in (None, 443):
        raise QwenOpsError(f"{name} in {source} names port {parts.port}; a .env file may only name documented "
                           "hosts on the https port: set it in the environment instead if you really mean it",
                           CONFIG)


def check_not_tracked(name: str, source: str) -> None:
    """Refuse a redirecting value (endpoint, bucket) that comes from a .env git tracks (``tracked_verdict``)."""
    if source.startswith("env:"):
        return
    tracked, unknown = tracked_verdict(Path(os.path.abspath(source)))
    if not tracked:
        return
    if unknown:
        raise QwenOpsError(f"{name} in {source} is not used: git could not say whether it tracks that file "
                           f"({unknown}) and it lies in a git work tree, so it counts as tracked; set your own "
                           f"{name} in the environment (export it), or make git work here", CONFIG)
    raise QwenOpsError(f"{name} in {source} is not used: git tracks that file, so whoever commits to the "
                       f"repository would choose where your data goes; if you need {name}, set your own value in "
                       "the environment (export it) or in a .env that git ignores", CONFIG)


_OWN_VALUE = "; set your own value in the environment or in a .env git ignores"
_REDIRECTS = f"so it does not choose where the key, files or traffic go{_OWN_VALUE}"
_CONSEQUENCE = {
    **dict.fromkeys(HOME_NAMES, "so your key file, CLI configuration, upload cache and credential stores stay in "
                                "your own home folder" + _OWN_VALUE),
    **dict.fromkeys(STORAGE_NAMES, "so the upload cache and checkpoints (which hold signed URLs) stay in your own "
                                   "folder" + _OWN_VALUE),
    "OPENSSL_CONF": ("but OpenSSL reads it once for the whole process (it can change TLS settings and load code) "
                     "and nothing can undo that here: delete that line"),
    "SSLKEYLOGFILE": ("this bundle never writes TLS keys, but your other TLS clients would (that file and a capture "
                      "read the traffic): delete that line"),
}


def _warn(name: str, path: Path, why: str, unchecked: str, fitted: bool = False) -> None:
    """One line for ``name`` judged as ``path``'s; ``unchecked``: why it could not be compared ("": it was);
    ``fitted``: only a line of ``path`` that expands ``name`` itself fits the value."""
    if (name, str(path)) in _warned:
        return
    _warned.add((name, str(path)))
    if fitted:
        print(one_line(f"warning: {name} in the environment could have been made by {path}'s {name} line, {why}: "
                       f"that line expands {name} itself (load_dotenv(override=True) would wrap your own value in its "
                       f"text), and your value holds its text, so it is set aside as that file's and not used; "
                       f"{_keep_yours(name, path)}"), file=sys.stderr)
        return
    if path is TOO_MANY:
        how = f"{name} in the environment may be a value a .env sets ({unchecked})"
    elif unchecked:
        how = f"{name} in the environment may be a value {path} sets ({unchecked}), {why}"
    else:
        how = f"{name} in the environment is the value {path} sets, {why}"
    consequence = _CONSEQUENCE.get(name.upper(), _REDIRECTS)
    print(one_line(f"warning: {how} (load_dotenv() copied it?): judged as that file's and not used, {consequence}"),
          file=sys.stderr)


def _keep_yours(name: str, path: Path) -> str:
    return f"to keep your {name}, delete or fix that line of {path} (or rename {name} there)"


def certificate_note(env: Mapping[str, str]) -> str:
    """For a certificate failure: which CA variable was set in the environment but set aside (``env``: a
    ``JudgedEnv``) and how to keep it; "" when none was."""
    copied = getattr(env, "copied", {})
    for name in copied:
        if name.upper() in CA_VARIABLES:
            path, fitted = copied[name], name in copied.fitted
            could = f"{path}'s {name} line could have made it" if fitted else f"it is the value {path} sets"
            return (f"{name} is set, but was set aside ({could}, and that file is not yours): "
                    f"{_keep_yours(name, path) if fitted else f'to use a CA bundle, set your own {name}'}")
    return ""
