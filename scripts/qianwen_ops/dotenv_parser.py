"""Reading ``.env`` files: python-dotenv when it is installed, else a stdlib parser.

Both parsers give the same answers on the corpus in ``tests/test_dotenv_parser.py``
(comments, ``export``, quotes and escapes, multi-line quoted values, CRLF, BOM, empty
values, duplicate keys: last one wins); the tests run each of them explicitly.
Variable interpolation is off in both: a key file never expands ``${...}``.

The stdlib parser also reports where each binding sits (``bindings``), so that an
editor can change exactly one value and nothing else.

Files are read defensively: a file that is too large, binary, not UTF-8 or
unreadable raises ``QwenOpsError`` (exit code CONFIG) naming the path only.
"""

from __future__ import annotations

import bisect
import codecs
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import CONFIG, QwenOpsError
from .named_tuple import NamedTuple

MAX_DOTENV_BYTES = 1024 * 1024

_SPACES = re.compile(r"[^\S\n]*")
_EXPORT = re.compile(r"export[^\S\n]+")
_UNQUOTED_KEY = re.compile(r"[^=#\s]+")
_QUOTED_KEY = re.compile(r"'([^']+)'")
_SINGLE_VALUE = re.compile(r"'((?:\\.|[^'\\])*)'", re.DOTALL)
_DOUBLE_VALUE = re.compile(r'"((?:\\.|[^"\\])*)"', re.DOTALL)
_LINE_REST = re.compile(r"[^\n]*")
_TRAILING_COMMENT = re.compile(r"[^\S\n]*(?:#[^\n]*)?")
_LINE_END = re.compile(r"[^\S\n]*(?:\n|$)")
_SINGLE_ESCAPES = re.compile(r"\\[\\']")
_DOUBLE_ESCAPES = re.compile(r"\\[\\'\"abfnrtv]")


def _unescape(pattern: re.Pattern, text: str) -> str:
    return pattern.sub(lambda m: codecs.decode(m.group(0), "unicode-escape"), text)


def _parse_value(text: str, pos: int) -> tuple[str, int] | None:
    """Parse the value that starts at ``pos``; None when it is not well formed."""
    first = text[pos:pos + 1]
    if first == "'":
        m = _SINGLE_VALUE.match(text, pos)
        return (_unescape(_SINGLE_ESCAPES, m.group(1)), m.end()) if m else None
    if first == '"':
        m = _DOUBLE_VALUE.match(text, pos)
        return (_unescape(_DOUBLE_ESCAPES, m.group(1)), m.end()) if m else None
    if first in ("", "\n"):
        return "", pos
    m = _LINE_REST.match(text, pos)
    value = re.sub(r"\s+#.*", "", m.group(0)).rstrip()
    return value, m.end()


class Binding(NamedTuple):
    """One ``NAME=value`` found by the stdlib parser; positions index the normalized text."""

    key: str
    value: str | None      # None for a bare ``NAME`` without ``=``
    start: int             # first character of the statement (``export`` included)
    key_pos: int           # first character of the name (its quote, if quoted)
    value_pos: int | None  # first character of the value (None without ``=``)
    stop: int              # end of the statement's last line, before its line break


class Normalized(NamedTuple):
    """Text with the BOM removed and every line break turned into ``\n``, and the way back."""

    text: str
    removed: list  # original indices dropped by the normalization, ascending

    def original_index(self, pos: int) -> int:
        """Index in the original text of the character at ``pos`` (or of the end)."""
        extra = 0
        while True:
            moved = bisect.bisect_right(self.removed, pos + extra)
            if moved == extra:
                return pos + extra
            extra = moved


def normalize(text: str) -> Normalized:
    removed = []
    parts = []
    start = 0
    if text.startswith("\ufeff"):
        removed.append(0)
        start = 1
    pos = start
    for m in re.finditer(r"\r\n?", text):
        if m.start() < start:
            continue
        parts.append(text[pos:m.start()])
        parts.append("\n")
        if m.end() - m.start() == 2:
            removed.append(m.start() + 1)  # "\r\n" keeps the index of its "\r"
        pos = m.end()
    parts.append(text[pos:])
    return Normalized("".join(parts), removed)


def bindings(text: str) -> Iterator[Binding]:
    """Every binding in already normalized ``text``, in file order (duplicates included)."""
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        start = pos
        m = _EXPORT.match(text, pos)
        if m:
            pos = m.end()
            if pos >= end:  # a file ending in "export "
                break
        if text[pos] == "#":  # a comment line
            pos = _LINE_REST.match(text, pos).end()
            continue
        key_pos = pos
        key_match = (_QUOTED_KEY if text[pos] == "'" else _UNQUOTED_KEY).match(text, pos)
        if not key_match:
            pos = _LINE_REST.match(text, pos).end()
            continue
        key = key_match.group(1) if text[pos] == "'" else key_match.group(0)
        pos = _SPACES.match(text, key_match.end()).end()
        value: str | None = None
        value_pos: int | None = None
        if text[pos:pos + 1] == "=":
            value_pos = _SPACES.match(text, pos + 1).end()
            if value_pos > pos + 1 and text[value_pos:value_pos + 1] == "#":
                value, pos = "", value_pos
            else:
                parsed = _parse_value(text, value_pos)
                if parsed is None:
                    pos = _LINE_REST.match(text, value_pos).end()
                    continue
                value, pos = parsed
        pos = _TRAILING_COMMENT.match(text, pos).end()
        line_end = _LINE_END.match(text, pos)
        if not line_end:  # junk after a value: the whole binding is dropped
            pos = _LINE_REST.match(text, pos).end()
            continue
        pos = line_end.end()
        stop = pos - 1 if line_end.group(0).endswith("\n") else pos
        yield Binding(key, value, start, key_pos, value_pos, stop)


def parse_dotenv_text(text: str) -> dict[str, str | None]:
    """The stdlib parser. A key written without ``=`` maps to None."""
    return {b.key: b.value for b in bindings(normalize(text).text)}


def parse_with_python_dotenv(text: str) -> dict[str, str | None]:
    """python-dotenv's answer (ImportError when it is missing), given the same normalized text.

    The BOM is removed here: python-dotenv releases before 1.2 kept it as part of the first
    name, which hid a key on the first line.
    """
    import io
    import logging

    from dotenv import dotenv_values

    log = logging.getLogger("dotenv.main")  # its "could not parse" warnings: the stdlib parser is silent too
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return dict(dotenv_values(stream=io.StringIO(normalize(text).text), interpolate=False))
    finally:
        log.setLevel(level)


def available_parsers() -> list[tuple[str, Callable[[str], dict]]]:
    """``("stdlib", ...)`` always, then ``("python-dotenv", ...)`` when it can be imported."""
    found = [("stdlib", parse_dotenv_text)]
    try:
        import dotenv  # noqa: F401
    except ImportError:
        return found
    return [*found, ("python-dotenv", parse_with_python_dotenv)]


def best_parser() -> tuple[str, Callable[[str], dict]]:
    """The parser reads use: python-dotenv when importable (the reference), else stdlib."""
    return available_parsers()[-1]


def decode_dotenv(raw: bytes, path: Path) -> str:
    """The text of a ``.env`` file's bytes, or ``QwenOpsError`` (CONFIG) naming only the path."""
    if len(raw) > MAX_DOTENV_BYTES:
        raise QwenOpsError(f"{path} is larger than {MAX_DOTENV_BYTES // 1024} KiB; not a .env file", CONFIG)
    if b"\x00" in raw:
        raise QwenOpsError(f"{path} looks binary (NUL bytes); not a .env file", CONFIG)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise QwenOpsError(f"{path} is not valid UTF-8", CONFIG) from None


def read_dotenv_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_DOTENV_BYTES + 1)
    except OSError as exc:
        raise QwenOpsError(f"cannot read {path}: {exc.strerror or 'unreadable'}", CONFIG) from None


def read_dotenv_file(path: Path) -> dict[str, str | None]:
    """Read and parse one ``.env`` file, refusing binary, huge or unreadable files."""
    return parse_with_best_parser(decode_dotenv(read_dotenv_bytes(path), path))


def parse_with_best_parser(text: str) -> dict[str, str | None]:
    return best_parser()[1](text)
