"""The stdlib .env parser agrees with python-dotenv (the reference) on a shared corpus."""

from __future__ import annotations

import io

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from qianwen_ops.dotenv_parser import parse_dotenv_text, parse_with_best_parser

CORPUS = [
    "A=1",
    "A=1\nB=2\n",
    "# a comment\nA=1 # trailing comment\n",
    "export A=exported\n",
    "export   B = spaced \n",
    "A='single quoted # not a comment'\n",
    'A="double quoted \\n escapes \\t and \\" quote"\n',
    "A='single \\' escaped'\n",
    "A=\r\nB=crlf\r\n",
    "\ufeffA=bom\n",
    "A=\nB=''\nC=\"\"\n",
    "A=first\nA=second\n",
    "A\nB=2\n",
    "A=unquoted value with spaces   \n",
    "A=#not-a-comment\nB= # comment\n",
    'A="multi\nline"\nB=after\n',
    "A='unterminated\nB=still-read\n",
    "A=\"x\" junk\nB=ok\n",
    "'QUOTED_KEY'=v\n",
    "=novalue\nB=ok\n",
    "  indented=1\n\n\n   \nB=2",
    "A=a=b=c\n",
    "DASHSCOPE_API_KEY=sk-your-key-here\nQIANWEN_API_KEY=\"sk-abc\"\n",
    "A=1\rB=2\r",
    "A=é ü 中文\n",
    "A=\"\\\\\"\n",
]


def reference(text: str) -> dict:
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    return dict(dotenv_values(stream=io.StringIO(normalized), interpolate=False))


@pytest.mark.parametrize("text", CORPUS)
def test_stdlib_parser_matches_python_dotenv(text):
    assert parse_dotenv_text(text) == reference(text)


def test_best_parser_uses_python_dotenv_when_present():
    assert parse_with_best_parser("A='x' # c\n") == {"A": "x"}


_line = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.from_regex(r"[A-Z_]{1,8}", fullmatch=True),
              st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                      max_size=20)),
    st.builds(lambda k, v: f"export {k}='{v}'", st.from_regex(r"[A-Z_]{1,8}", fullmatch=True),
              st.text(alphabet="abc #\"\\", max_size=10)),
    st.builds(lambda k, v: f'{k}="{v}"', st.from_regex(r"[A-Z_]{1,8}", fullmatch=True),
              st.text(alphabet="abc #'\\n", max_size=10)),
    st.sampled_from(["# comment", "", "   ", "JUSTKEY", "=x", "A=1 # c"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=8), st.sampled_from(["\n", "\r\n"]))
def test_generated_files_agree(lines, newline):
    text = newline.join(lines)
    assert parse_dotenv_text(text) == reference(text)
