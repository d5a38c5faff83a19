"""Reading ``.env`` files: one stdlib parser, python-dotenv's grammar, each binding keeping its text.

The probe and ``setup_env.py`` run on a bare ``python3``, so the parser is our own; what it
reads is what python-dotenv's ``load_dotenv()`` reads (the tests hold it to ``dotenv_values()``
on a corpus and on generated files): comments, ``export``, single and double quotes with their
escapes, multi-line quoted values, empty values, ``NAME`` without ``=`` (None), duplicates
(the last one wins). No ``${...}`` interpolation when reading: a key file never expands anything.
``interpolate`` says what ``load_dotenv()``, which expands ``${NAME}`` and ``${NAME:-default}`` by
default, would set from the same bindings (``provenance`` compares the environment with it).

A line break is ``\\n``, ``\\r\\n`` or a lone ``\\r``, wherever it is; inside a quoted value each
reads as ``\\n``, as python-dotenv reads a file (Python's universal newlines). A UTF-8 BOM at
the start is skipped.

``bindings`` yields every statement of a text (blank lines, comments and statements that do not
parse included) with its ``original`` text: joined, they give the text back exactly, so an
editor replaces one binding's text and leaves every other byte alone.

Files are read defensively (``read_dotenv``): a file that is too large, binary, UTF-16 or
UTF-32 (what PowerShell 5.1's ``echo ... > .env`` writes, which ``load_dotenv()`` cannot read
either), not UTF-8, or unreadable raises ``QwenOpsError`` (exit code CONFIG) in one line naming
the path, never a value.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import CONFIG, QwenOpsError
from .fsutil import read_regular
from .named_tuple import NamedTuple

MAX_DOTENV_BYTES = 1024 * 1024
LINE_BREAK = re.compile(r"\r\n|\r|\n")

_WIDE_ENCODINGS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                   (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))

_SPACE = re.compile(r"\s*")                     # blank lines included
_BLANKS = re.compile(r"[^\S\r\n]*")             # within one line
_EXPORT = re.compile(r"export[^\S\r\n]+")
_KEY = re.compile(r"[^=#\s]+")
_QUOTED_KEY = re.compile(r"'([^']+)'")
_QUOTED_VALUE = {"'": re.compile(r"'((?:\\.|[^'\\])*)'", re.DOTALL),
                 '"': re.compile(r'"((?:\\.|[^"\\])*)"', re.DOTALL)}
_ESCAPES = {"'": re.compile(r"\\[\\']"), '"': re.compile(r"\\[\\'\"abfnrtv]")}
_UNQUOTED_VALUE = re.compile(r"[^\r\n]*")
_INLINE_COMMENT = re.compile(r"\s+#.*")
_COMMENT = re.compile(r"[^\S\r\n]*(?:#[^\r\n]*)?")
_END = re.compile(r"[^\S\r\n]*(?:\r\n|\r|\n|\Z)")
_REST = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")
_FINAL_BREAK = re.compile(r"(?:\r\n|\r|\n)\Z")


class Binding(NamedTuple):
    """One statement of a ``.env`` text, with the exact text it came from."""

    key: str | None        # None: blank lines, a comment, or a statement that does not parse
    value: str | None      # None: no key, or a NAME without "="
    original: str          # from the blank lines before the statement through its line break
    line: int              # the line ``original`` starts on (1-based)
    value_at: int | None   # where the value's text starts in ``original`` (after "=" and blanks)
    error: bool            # the statement does not parse (python-dotenv skips it as well)

    def with_value(self, text: str) -> str:
        """``original`` with the value and the rest of its line (a comment) replaced by ``text``."""
        found = _FINAL_BREAK.search(self.original)
        return self.original[:self.value_at] + text + (found.group(0) if found else "")


class _Unreadable(Exception):
    def __init__(self, pos: int):
        super().__init__(pos)
        self.pos = pos


def _quoted_text(text: str, escapes: re.Pattern) -> str:
    text = LINE_BREAK.sub("\n", text)
    return escapes.sub(lambda m: codecs.decode(m.group(0), "unicode-escape"), text)


def _value(text: str, pos: int) -> tuple[str, int]:
    """The value that starts at ``pos`` and where it ends."""
    quote = text[pos:pos + 1]
    if quote in _QUOTED_VALUE:
        found = _QUOTED_VALUE[quote].match(text, pos)
        if found is None:
            raise _Unreadable(pos)
        return _quoted_text(found.group(1), _ESCAPES[quote]), found.end()
    found = _UNQUOTED_VALUE.match(text, pos)
    return _INLINE_COMMENT.sub("", found.group(0)).rstrip(), found.end()


def _statement(text: str, start: int) -> tuple[str | None, str | None, int | None, int]:
    """(key, value, value start, end) of the statement at ``start``; ``_Unreadable`` when it does not parse."""
    pos = _SPACE.match(text, start + 1 if start == 0 and text.startswith("\ufeff") else start).end()
    if pos == len(text):
        return None, None, None, pos
    export = _EXPORT.match(text, pos)
    pos = export.end() if export else pos
    key = None
    if text[pos:pos + 1] != "#":
        quoted = text[pos:pos + 1] == "'"
        found = (_QUOTED_KEY if quoted else _KEY).match(text, pos)
        if found is None:
            raise _Unreadable(pos)
        key = LINE_BREAK.sub("\n", found.group(1)) if quoted else found.group(0)
        pos = _BLANKS.match(text, found.end()).end()
    value, value_at = None, None
    if text[pos:pos + 1] == "=":
        value_at = _BLANKS.match(text, pos + 1).end()
        if value_at > pos + 1 and text[value_at:value_at + 1] == "#":  # "NAME= # note": empty
            value, pos = "", value_at
        else:
            value, pos = _value(text, value_at)
    end = _END.match(text, _COMMENT.match(text, pos).end())
    if end is None:  # text after the value
        raise _Unreadable(pos)
    return key, value, value_at, end.end()


def bindings(text: str) -> Iterator[Binding]:
    """Every statement of ``text`` in order; their ``original`` texts joined are ``text``."""
    pos, line = 0, 1
    while pos < len(text):
        try:
            key, value, value_at, end = _statement(text, pos)
            error = False
        except _Unreadable as unreadable:
            key, value, value_at, end = None, None, None, _REST.match(text, unreadable.pos).end()
            error = True
        original = text[pos:end]
        yield Binding(key, value, original, line, None if value_at is None else value_at - pos, error)
        line += len(LINE_BREAK.findall(original))
        pos = end


def parse_dotenv_text(text: str) -> dict[str, str | None]:
    """What ``text`` sets: the last binding of each name wins; a name without ``=`` maps to None."""
    return {b.key: b.value for b in bindings(text) if b.key is not None}


def binding_pairs(text: str) -> list:
    """Every ``(name, value)`` statement of ``text`` in order, duplicates included (what python-dotenv expands)."""
    return [(b.key, b.value) for b in bindings(text) if b.key is not None]


# python-dotenv 1.x (dotenv/variables.py) finds ``${NAME}`` or ``${NAME:-default}`` with the regular expression
# ``\$\{(?P<name>[^}:]*)(?::-(?P<default>[^}]*))?\}``, left to right; a ``$`` without braces, ``$NAME`` and nested
# braces stay literal text. Quoting does not matter. ``variables`` finds the same in linear time (the expression
# rescans the rest of the text from every unclosed ``${``: quadratic).
_NAME_END = re.compile(r"[:}]")
MAX_EXPANDED_VALUE = 64 * 1024   # characters one ``interpolate`` value may grow to


class ExpansionTooLarge(Exception):
    """An ``interpolate`` value grew past ``MAX_EXPANDED_VALUE`` or past the caller's budget."""


def variables(value: str) -> Iterator[tuple]:
    """``(start, end, name, default or None)`` of each ``${...}`` python-dotenv expands in ``value``, in order."""
    pos = 0
    while True:
        start = value.find("${", pos)
        if start < 0:
            return
        stop = _NAME_END.search(value, start + 2)
        if stop is None:          # every ${ needs a } after it: none is left
            return
        at = stop.start()
        if value[at] == "}":
            yield start, at + 1, value[start + 2:at], None
            pos = at + 1
        elif value.startswith(":-", at):
            close = value.find("}", at + 2)
            if close < 0:
                return
            yield start, close + 1, value[start + 2:at], value[at + 2:close]
            pos = close + 1
        else:                     # ":" without "-": no ${ before it matches (each name stops at that ":")
            pos = at + 1


def interpolate(pairs: list, environ: Mapping, override: bool = False, budget: list | None = None) -> dict:
    """What ``load_dotenv(override=override)`` sets from ``pairs`` (``binding_pairs``) with ``environ``
    as the process environment: each ``${NAME}`` takes ``NAME`` from the environment (``override``:
    from the earlier lines first), else from an earlier line, else the default, else ""; a name
    without ``=`` stays None. Each line sees the earlier lines as already expanded. Our own code;
    the rules are python-dotenv's ``resolve_variables`` (the tests hold it to ``dotenv_values()``).

    Bounded: a value may not grow past ``MAX_EXPANDED_VALUE`` characters, and ``budget`` (a one-item list)
    holds how many characters the expanded values may still take in all; ``ExpansionTooLarge`` past either.
    """
    done: dict = {}
    first, second = (done, environ) if override else (environ, done)

    for name, value in pairs:
        if value is None or "${" not in value:
            done[name] = value
            continue
        pieces, size, pos = [], 0, 0
        for start, end, variable, default in variables(value):
            found = first[variable] if variable in first else second.get(variable, default or "")
            found = found if found is not None else ""
            pieces += (value[pos:start], found)
            size += start - pos + len(found)
            if size > MAX_EXPANDED_VALUE:
                raise ExpansionTooLarge(name)
            pos = end
        pieces.append(value[pos:])
        size += len(value) - pos
        if budget is not None:
            budget[0] -= size
            if budget[0] < 0:
                raise ExpansionTooLarge(name)
        if size > MAX_EXPANDED_VALUE:
            raise ExpansionTooLarge(name)
        done[name] = "".join(pieces)
    return done


def decode_dotenv(raw: bytes, path: Path) -> str:
    """The text of a ``.env`` file's bytes (a BOM kept), or ``QwenOpsError`` (CONFIG) naming only the path."""
    if len(raw) > MAX_DOTENV_BYTES:
        raise QwenOpsError(f"{path} is larger than {MAX_DOTENV_BYTES // 1024} KiB; not a .env file", CONFIG)
    for bom, encoding in _WIDE_ENCODINGS:
        if raw.startswith(bom):
            raise QwenOpsError(f"{path} is saved as {encoding} (as PowerShell 5.1's `echo ... > .env` writes it), "
                               "which python-dotenv cannot read either; save it as UTF-8 (Notepad: Save as, "
                               "Encoding: UTF-8) and run this again", CONFIG)
    if b"\x00" in raw:
        raise QwenOpsError(f"{path} looks binary (NUL bytes); not a .env file", CONFIG)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise QwenOpsError(f"{path} is not valid UTF-8", CONFIG) from None


class DotenvText(NamedTuple):
    text: str   # exactly as in the file (BOM and line breaks included)
    mode: int   # its permission bits


def read_dotenv(path: Path) -> DotenvText | None:
    """The text and mode of the regular file ``path``; None when it is missing or not a regular file.

    A FIFO or device is never read (opened non-blocking, then ``fstat``), so never waited on.
    """
    try:
        found = read_regular(path, MAX_DOTENV_BYTES)
    except OSError as exc:
        raise QwenOpsError(f"cannot read {path}: {exc.strerror or 'unreadable'}", CONFIG) from None
    return DotenvText(decode_dotenv(found[0], path), found[1]) if found is not None else None


def read_dotenv_file(path: Path) -> dict[str, str | None]:
    """What the ``.env`` file ``path`` sets ({} when it is missing or not a regular file)."""
    found = read_dotenv(path)
    return parse_dotenv_text(found.text) if found else {}
