"""The stdlib .env parser reads what python-dotenv reads (the oracle), and keeps each binding's exact text."""

from __future__ import annotations

import io
import os
import sys

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CANARY_KEY, leaks
from qianwen_ops.dotenv_parser import (
    LINE_BREAK,
    MAX_EXPANDED_VALUE,
    ExpansionTooLarge,
    binding_pairs,
    bindings,
    interpolate,
    parse_dotenv_text,
    read_dotenv_file,
    variables,
)
from qianwen_ops.errors import CONFIG, QwenOpsError

# (text, what a .env reader must see). Expected values are written out, so a failure names the reader that broke.
CORPUS = [
    ("A=1", {"A": "1"}),
    ("A=1\nB=2\n", {"A": "1", "B": "2"}),
    ("# a comment\nA=1 # trailing comment\n", {"A": "1"}),
    ("export A=exported\n", {"A": "exported"}),
    ("export   B = spaced \n", {"B": "spaced"}),
    ("A='single quoted # not a comment'\n", {"A": "single quoted # not a comment"}),
    ('A="double quoted \\n escapes \\t and \\" quote"\n', {"A": 'double quoted \n escapes \t and " quote'}),
    ("A='single \\' escaped'\n", {"A": "single ' escaped"}),
    ("A=\r\nB=crlf\r\n", {"A": "", "B": "crlf"}),
    ("\ufeffA=bom\n", {"A": "bom"}),
    ("A=\nB=''\nC=\"\"\n", {"A": "", "B": "", "C": ""}),
    ("A=first\nA=second\n", {"A": "second"}),
    ("A\nB=2\n", {"A": None, "B": "2"}),
    ("A=unquoted value with spaces   \n", {"A": "unquoted value with spaces"}),
    ("A=#not-a-comment\nB= # comment\n", {"A": "#not-a-comment", "B": ""}),
    ('A="multi\nline"\nB=after\n', {"A": "multi\nline", "B": "after"}),
    ("A='unterminated\nB=still-read\n", {"B": "still-read"}),
    ('A="x" junk\nB=ok\n', {"B": "ok"}),
    ("'QUOTED_KEY'=v\n", {"QUOTED_KEY": "v"}),
    ("=novalue\nB=ok\n", {"B": "ok"}),
    ("  indented=1\n\n\n   \nB=2", {"indented": "1", "B": "2"}),
    ("A=a=b=c\n", {"A": "a=b=c"}),
    ('DASHSCOPE_API_KEY=sk-your-key-here\nQIANWEN_API_KEY="sk-abc"\n',
     {"DASHSCOPE_API_KEY": "sk-your-key-here", "QIANWEN_API_KEY": "sk-abc"}),
    ("A=1\rB=2\r", {"A": "1", "B": "2"}),
    ("A=é ü 中文\n", {"A": "é ü 中文"}),
    ('A="\\\\"\n', {"A": "\\"}),
    ("export ", {}),                      # crashed an earlier parser (IndexError)
    ("A=1\nexport ", {"A": "1"}),
    ("A=1\nexport", {"A": "1", "export": None}),
    ("export \nB=1", {"B": "1"}),
    ("A=1\r\nexport \r\nB=2\r\n", {"A": "1", "B": "2"}),
    ("\ufeffDASHSCOPE_API_KEY=sk-your-key-here\r\n", {"DASHSCOPE_API_KEY": "sk-your-key-here"}),
    ("\ufeffexport QIANWEN_API_KEY='sk-a'\n", {"QIANWEN_API_KEY": "sk-a"}),
    ("\ufeff\ufeffA=1", {"\ufeffA": "1"}),                    # only the first BOM is one
    ('A="multi\nDASHSCOPE_API_KEY=sk-inside\n"\nB=2\n', {"A": "multi\nDASHSCOPE_API_KEY=sk-inside\n", "B": "2"}),
    ("'DASHSCOPE_API_KEY'=v\n", {"DASHSCOPE_API_KEY": "v"}),
    # a line break inside quotes reads as "\n", whatever it was in the file (universal newlines)
    ("A=1\r\nB='x\r\ny'\r\n", {"A": "1", "B": "x\ny"}),
    ('A="a\rb"\rB=2', {"A": "a\nb", "B": "2"}),
    ("'K\r\nEY'=v\n", {"K\nEY": "v"}),
    ('A="x\\\r\ny"\n', {"A": "x\\\ny"}),
    ('A="\\r"\n', {"A": "\r"}),                              # an escape, not a line break
    ("A=x\x0bB=2\n", {"A": "x\x0bB=2"}),                      # a vertical tab is no line break
    ("A=1 #c\x0bB=2", {"A": "1"}),
]
IDS = [repr(text)[:40] for text, _ in CORPUS]


def python_dotenv_reads(text: str) -> dict:
    """The oracle: what python-dotenv's ``dotenv_values()`` reads from a file holding ``text``.

    A file is read with universal newlines; ``newline=None`` gives a stream the same translation.
    """
    return dict(dotenv_values(stream=io.StringIO(text, newline=None), interpolate=False))


@pytest.mark.parametrize("text,expected", CORPUS, ids=IDS)
def test_the_parser_reads_the_corpus(text, expected):
    assert parse_dotenv_text(text) == expected


@pytest.mark.parametrize("text,expected", CORPUS, ids=IDS)
def test_python_dotenv_reads_the_corpus_the_same_from_a_file(tmp_path, text, expected):
    path = tmp_path / ".env"
    path.write_bytes(text.encode("utf-8"))
    assert dict(dotenv_values(path, interpolate=False)) == expected == python_dotenv_reads(text)


def check_bindings(text: str) -> None:
    """Joined originals are the text; line numbers count; replacing one value changes only that value."""
    found = list(bindings(text))
    assert "".join(b.original for b in found) == text
    for i, b in enumerate(found):
        assert b.original and b.line == 1 + len(LINE_BREAK.findall("".join(x.original for x in found[:i])))
        assert (b.key is None) >= b.error and (b.value_at is None) == (b.value is None)
        if b.value_at is not None and all(x.key != b.key for x in found[i + 1:]):
            edited = "".join(x.with_value("sk-New") if x is b else x.original for x in found)
            assert parse_dotenv_text(edited) == {**parse_dotenv_text(text), b.key: "sk-New"}


@pytest.mark.parametrize("text", [t for t, _ in CORPUS], ids=IDS)
def test_bindings_keep_their_original_text(text):
    check_bindings(text)


def test_a_value_edit_keeps_the_line_break_and_the_bom():
    found = list(bindings("\ufeffexport A='x' # note\r\nB=2\r\n"))
    assert [b.original for b in found] == ["\ufeffexport A='x' # note\r\n", "B=2\r\n"]
    assert found[0].with_value("y") == "\ufeffexport A=y\r\n"
    assert [(b.key, b.line, b.error) for b in bindings("A=1\r\n\r\nB='open\rC=3")] == [
        ("A", 1, False), (None, 2, True), ("C", 4, False)]


def test_reads_never_need_python_dotenv(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_bytes(b"\xef\xbb\xbfDASHSCOPE_API_KEY=sk-bom\r\nexport ")
    monkeypatch.setitem(sys.modules, "dotenv", None)   # import dotenv -> ImportError, as on a bare python3
    assert read_dotenv_file(path) == {"DASHSCOPE_API_KEY": "sk-bom"}


@pytest.mark.parametrize("codec,named", [("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32-le", "UTF-32")])
def test_a_utf16_env_is_named_in_one_line(tmp_path, codec, named):
    """PowerShell 5.1's ``echo DASHSCOPE_API_KEY=... > .env`` writes UTF-16LE with a BOM and CRLF."""
    path = tmp_path / ".env"
    path.write_bytes(f"\ufeffDASHSCOPE_API_KEY={CANARY_KEY}\r\n".encode(codec))
    with pytest.raises(QwenOpsError) as refused:
        read_dotenv_file(path)
    message = refused.value.message
    assert refused.value.exit_code == CONFIG and "\n" not in message and not leaks(message)
    assert f"is saved as {named}" in message and "save it as UTF-8" in message


def test_a_missing_file_sets_nothing(tmp_path):
    assert read_dotenv_file(tmp_path / ".env") == {}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_never_read_or_waited_on(tmp_path):
    os.mkfifo(tmp_path / ".env")
    assert read_dotenv_file(tmp_path / ".env") == {}


_key = st.one_of(st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True), st.sampled_from(["export", "'A B'", "'Q'"]))
_text = st.lists(st.sampled_from([*"ab =#'\"\\\t\r\n\x0b\x85\u2028\ufeffé", "\\n", "\\'", '\\"']),
                max_size=12).map("".join)
_line = st.one_of(
    st.builds("{}{}{}={}{}".format, st.sampled_from(["", "export ", "  ", "\t"]), _key, st.sampled_from(["", " "]),
              st.one_of(_text, _text.map("'{}'".format), _text.map('"{}"'.format)),
              st.sampled_from(["", " # c", "#c", "  ", " junk"])),
    _key, _text,
    st.sampled_from(["# comment", "", "   ", "=x", "export ", "export", "export #", "'open", '"open']),
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_line, st.sampled_from(["\n", "\r\n", "\r"])), max_size=8), st.booleans(), st.booleans())
def test_generated_files_read_as_python_dotenv_reads_them(lines, bom, last_break):
    text = ("\ufeff" if bom else "") + "".join(line + brk for line, brk in lines)
    if lines and not last_break:
        text = text[:-len(lines[-1][1])]
    assert parse_dotenv_text(text) == python_dotenv_reads(text)
    check_bindings(text)


# What load_dotenv() makes of ${...} (python-dotenv interpolates by default): provenance compares with it.
INTERPOLATED = [
    "QWEN_BASE_URL=http://127.0.0.1:9${UNSET}\n",
    "A=${HOME}/x\nB=${A}/y ${A:-z} ${NOPE:-dflt} ${:-e} ${A:-}\n",
    "HOME=mine\nB=${HOME}\n",                       # the environment wins, unless override
    "A='${HOME}'\nB=\"${HOME}\"\nC=$HOME ${HOME ${HOME}} ${{HOME}}\n",
    "A\nB=${A:-none}\nA=again\nC=${A}\n",        # a name without = is None: expands to ""
    "NO_PROXY=${NO_PROXY},.corp\n",
    "E=${}\nF=${a:b}\nG=${a:-b:-c}\nH=${X:-}}\n",
]


@pytest.mark.parametrize("override", [False, True])
@pytest.mark.parametrize("text", INTERPOLATED)
def test_interpolation_is_python_dotenvs(monkeypatch, text, override):
    from dotenv.main import DotEnv

    environ = {"HOME": "/home/u", "NO_PROXY": "localhost", "A": "from-env"}
    monkeypatch.setattr(os, "environ", dict(environ))   # what python-dotenv reads, and only that
    expected = dict(DotEnv(None, stream=io.StringIO(text, newline=None), override=override).dict())
    assert interpolate(binding_pairs(text), environ, override) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "HOME"]),
                          st.lists(st.sampled_from(["${", "}", ":-", "A", "B", "HOME", "x", "$", ":", "-"]),
                                   max_size=8).map("".join)), max_size=5), st.booleans())
def test_generated_interpolations_are_python_dotenvs(pairs, override):
    from dotenv.main import resolve_variables

    environ = {"HOME": "/h", "B": "env-b"}
    saved = os.environ
    os.environ = dict(environ)  # noqa: B003 - python-dotenv reads os.environ; restored below
    try:
        expected = dict(resolve_variables(pairs, override=override))
    finally:
        os.environ = saved  # noqa: B003
    assert interpolate(pairs, environ, override) == expected


# python-dotenv's own expression (dotenv/variables.py), quadratic on unclosed "${"; ``variables`` must find the same.
DOTENV_VARIABLE = r"\$\{(?P<name>[^}:]*)(?::-(?P<default>[^}]*))?\}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["${", "}", ":-", ":", "-", "$", "{", "a", "B"]), max_size=14).map("".join))
def test_variables_are_what_python_dotenvs_expression_finds(value):
    import re

    expected = [(m.start(), m.end(), m.group("name"), m.group("default"))
                for m in re.finditer(DOTENV_VARIABLE, value)]
    assert list(variables(value)) == expected


@pytest.mark.parametrize("shape", ["${", "${a:-", "${a${"])
def test_unclosed_braces_cost_linear_time(shape):
    """40 KB of unclosed "${": python-dotenv's expression rescans the rest from each one (seconds)."""
    import time

    value = shape * (40000 // len(shape)) + (":x}" if shape == "${a${" else "")
    started = time.perf_counter()
    assert interpolate([("X", value)], {}) == {"X": value}
    assert time.perf_counter() - started < 0.5


def test_expansions_are_bounded_by_value_and_by_budget():
    bomb = [("V0", "x" * 64)] + [(f"V{i}", f"${{V{i - 1}}}" * 8) for i in range(1, 8)]   # 64 * 8**7 characters
    with pytest.raises(ExpansionTooLarge):
        interpolate(bomb, {})
    big = [("A", "x" * 1000), ("B", "${A}" * (MAX_EXPANDED_VALUE // 1000))]
    assert len(interpolate(big, {})["B"]) <= MAX_EXPANDED_VALUE
    with pytest.raises(ExpansionTooLarge):
        interpolate(big + [("C", "${B}${A}")], {})                       # one value past the limit
    budget = [3 * MAX_EXPANDED_VALUE // 2]
    interpolate(big, {}, budget=budget)
    with pytest.raises(ExpansionTooLarge):
        interpolate(big, {}, budget=budget)                           # the second pass exceeds what is left
