"""Reading ``.env`` files: python-dotenv when it is installed, else a stdlib parser.

Both paths give the same answers on ``tests/dotenv_corpus`` (comments, ``export``,
quotes and escapes, CRLF, BOM, empty values, duplicate keys: last one wins).
Variable interpolation is off in both: a key file never expands ``${...}``.

Files are read defensively: a file that is too large, binary, not UTF-8 or
unreadable raises ``QwenOpsError`` (exit code CONFIG) naming the path only.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from .errors import CONFIG, QwenOpsError

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


def parse_dotenv_text(text: str) -> dict[str, str | None]:
    """Parse ``.env`` content. A key written without ``=`` maps to None."""
    text = text[1:] if text.startswith("\ufeff") else text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    result: dict[str, str | None] = {}
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            break
        m = _EXPORT.match(text, pos)
        if m:
            pos = m.end()
        if text[pos] == "#":  # a comment line
            pos = _LINE_REST.match(text, pos).end()
            continue
        key_match = (_QUOTED_KEY if text[pos] == "'" else _UNQUOTED_KEY).match(text, pos)
        if not key_match:
            pos = _LINE_REST.match(text, pos).end()
            continue
        key = key_match.group(1) if text[pos] == "'" else key_match.group(0)
        pos = _SPACES.match(text, key_match.end()).end()
        value: str | None = None
        if text[pos:pos + 1] == "=":
            after_eq = _SPACES.match(text, pos + 1).end()
            if after_eq > pos + 1 and text[after_eq:after_eq + 1] == "#":
                value, pos = "", after_eq
            else:
                parsed = _parse_value(text, after_eq)
                if parsed is None:
                    pos = _LINE_REST.match(text, after_eq).end()
                    continue
                value, pos = parsed
        pos = _TRAILING_COMMENT.match(text, pos).end()
        line_end = _LINE_END.match(text, pos)
        if not line_end:  # junk after a value: the whole binding is dropped
            pos = _LINE_REST.match(text, pos).end()
            continue
        pos = line_end.end()
        result[key] = value
    return result


def read_dotenv_file(path: Path) -> dict[str, str | None]:
    """Read and parse one ``.env`` file, refusing binary, huge or unreadable files."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_DOTENV_BYTES + 1)
    except OSError as exc:
        raise QwenOpsError(f"cannot read {path}: {exc.strerror or 'unreadable'}", CONFIG) from None
    if len(raw) > MAX_DOTENV_BYTES:
        raise QwenOpsError(f"{path} is larger than {MAX_DOTENV_BYTES // 1024} KiB; not a .env file", CONFIG)
    if b"\x00" in raw:
        raise QwenOpsError(f"{path} looks binary (NUL bytes); not a .env file", CONFIG)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise QwenOpsError(f"{path} is not valid UTF-8", CONFIG) from None
    return parse_with_best_parser(text)


def parse_with_best_parser(text: str) -> dict[str, str | None]:
    """python-dotenv when importable (the reference), else our stdlib parser."""
    try:
        from dotenv import dotenv_values
    except ImportError:
        return parse_dotenv_text(text)
    import io

    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    return dict(dotenv_values(stream=io.StringIO(normalized), interpolate=False))
