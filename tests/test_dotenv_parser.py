"""Both .env parsers, each run explicitly, give the expected answers; reads pick python-dotenv when present."""

from __future__ import annotations

import io
import sys
import types

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from qianwen_ops import dotenv_parser
from qianwen_ops.dotenv_parser import (
    available_parsers,
    best_parser,
    normalize,
    parse_dotenv_text,
    parse_with_best_parser,
    parse_with_python_dotenv,
)

# (text, what a .env reader must see). Expected values are written out, so a test names the parser that broke.
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
    ("export ", {}),                      # crashed the stdlib parser (IndexError)
    ("A=1\nexport ", {"A": "1"}),
    ("A=1\nexport", {"A": "1", "export": None}),
    ("export \nB=1", {"B": "1"}),
    ("\ufeffDASHSCOPE_API_KEY=sk-your-key-here\r\n", {"DASHSCOPE_API_KEY": "sk-your-key-here"}),
    ("\ufeffexport QIANWEN_API_KEY='sk-a'\n", {"QIANWEN_API_KEY": "sk-a"}),
    ('A="multi\nDASHSCOPE_API_KEY=sk-inside\n"\nB=2\n', {"A": "multi\nDASHSCOPE_API_KEY=sk-inside\n", "B": "2"}),
    ("'DASHSCOPE_API_KEY'=v\n", {"DASHSCOPE_API_KEY": "v"}),
]
PARSERS = {"stdlib": parse_dotenv_text, "python-dotenv": parse_with_python_dotenv}


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("text,expected", CORPUS, ids=[repr(text)[:40] for text, _ in CORPUS])
def test_each_parser_reads_the_corpus(parser, text, expected):
    assert PARSERS[parser](text) == expected


def test_both_parsers_are_available_here_and_reads_use_python_dotenv():
    assert [label for label, _ in available_parsers()] == ["stdlib", "python-dotenv"]
    assert best_parser()[0] == "python-dotenv"


def test_without_python_dotenv_reads_use_the_stdlib_parser(monkeypatch):
    monkeypatch.setitem(sys.modules, "dotenv", None)  # import dotenv -> ImportError, as on a bare python3
    assert [label for label, _ in available_parsers()] == ["stdlib"]
    assert best_parser() == ("stdlib", parse_dotenv_text)
    assert parse_with_best_parser("\ufeffDASHSCOPE_API_KEY=sk-a\nexport ") == {"DASHSCOPE_API_KEY": "sk-a"}


def test_python_dotenv_never_sees_a_bom_or_a_carriage_return(monkeypatch):
    """python-dotenv releases before 1.2 kept a BOM as part of the first name, hiding a key there."""
    seen = []

    def dotenv_values_stub(stream=None, interpolate=True):
        text = stream.read()
        seen.append(text)
        return dict(dotenv_values(stream=io.StringIO(text), interpolate=interpolate))

    monkeypatch.setitem(sys.modules, "dotenv", types.SimpleNamespace(dotenv_values=dotenv_values_stub))
    assert parse_with_best_parser("\ufeffDASHSCOPE_API_KEY=sk-a\r\nB=2\r") == {"DASHSCOPE_API_KEY": "sk-a", "B": "2"}
    assert seen == ["DASHSCOPE_API_KEY=sk-a\nB=2\n"]


def test_read_dotenv_file_finds_a_key_behind_a_bom_with_either_parser(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_bytes(b"\xef\xbb\xbfDASHSCOPE_API_KEY=sk-bom\r\n")
    assert dotenv_parser.read_dotenv_file(path) == {"DASHSCOPE_API_KEY": "sk-bom"}
    monkeypatch.setitem(sys.modules, "dotenv", None)
    assert dotenv_parser.read_dotenv_file(path) == {"DASHSCOPE_API_KEY": "sk-bom"}


@pytest.mark.parametrize("text", [t for t, _ in CORPUS])
def test_binding_positions_map_back_to_the_original_text(text):
    norm = normalize(text)
    for binding in dotenv_parser.bindings(norm.text):
        start = norm.original_index(binding.key_pos)
        assert text[start:].lstrip("'").startswith(binding.key)
        stop = norm.original_index(binding.stop)
        assert stop == len(text) or text[stop] in "\r\n"


_line = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.from_regex(r"[A-Z_]{1,8}", fullmatch=True),
              st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                      max_size=20)),
    st.builds(lambda k, v: f"export {k}='{v}'", st.from_regex(r"[A-Z_]{1,8}", fullmatch=True),
              st.text(alphabet="abc #\"\\", max_size=10)),
    st.builds(lambda k, v: f'{k}="{v}"', st.from_regex(r"[A-Z_]{1,8}", fullmatch=True),
              st.text(alphabet="abc #'\\n", max_size=10)),
    st.sampled_from(["# comment", "", "   ", "JUSTKEY", "=x", "A=1 # c", "export ", "export"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_line, max_size=8), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_generated_files_agree(lines, newline, bom):
    text = ("\ufeff" if bom else "") + newline.join(lines)
    assert parse_dotenv_text(text) == parse_with_python_dotenv(text)
