"""Generated .env files: setup_env never loses or alters another byte; afterwards the new key is in effect.

The oracle is python-dotenv (what the user's own ``load_dotenv()`` reads), not the stdlib parser
the editor uses. Each example either ends with the expected key in effect, or was refused
(exit 12) with the file byte-identical; no edit brings a line break the file did not use.
"""

from __future__ import annotations

import io

from dotenv import dotenv_values
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from qianwen_ops.credentials import KEY_NAMES, PLACEHOLDER, Secret, classify_key
from qianwen_ops.dotenv_editor import PLACEHOLDER_VALUE, setup_env
from qianwen_ops.dotenv_parser import LINE_BREAK
from qianwen_ops.errors import REFUSED_WRITE, QwenOpsError

NEW_KEY = "sk-Gen7-new-key"
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_name = st.sampled_from([*KEY_NAMES, *KEY_NAMES, "OTHER", "A"])
_value = st.sampled_from([*["sk-your-key-here"] * 3, "sk-real-abc123", "", "x y", "a#b", "sk-sp-plan9", "$HOME", "é"])
_quoted = st.sampled_from(["{}", "'{}'", '"{}"'])
_binding = st.builds(lambda export, name, eq, quote, value, end: f"{export}{name}{eq}{quote.format(value)}{end}",
                     st.sampled_from(["", "export ", "  ", "\t"]), _name, st.sampled_from(["=", " = ", "=\t"]),
                     _quoted, _value, st.sampled_from(["", " # note", "  ", "#note", " junk"]))
_multiline = st.builds(lambda q, inner: f"NOTE={q}first\n{inner}\nlast{q}", st.sampled_from(["'", '"']),
                       st.sampled_from(["DASHSCOPE_API_KEY=sk-your-key-here", "QIANWEN_API_KEY=sk-real-inside",
                                        "export DASHSCOPE_API_KEY=", "# not a comment"]))
_odd = st.sampled_from(["# DASHSCOPE_API_KEY=sk-in-a-comment", "", "   ", "JUSTKEY", "=x", "export ", "export",
                        "DASHSCOPE_API_KEY", "'DASHSCOPE_API_KEY'=sk-your-key-here", 'BROKEN="unclosed',
                        'DASHSCOPE_API_KEY="sk-unclosed', "'QIANWEN_API_KEY' = sk-your-key-here", "'open",
                        "DASHSCOPE_API_KEY'=sk-your-key-here", "export #", "\ufeffDASHSCOPE_API_KEY=sk-your-key-here"])
_lines = st.lists(st.one_of(_binding, _multiline, _odd), max_size=7)


@st.composite
def env_files(draw) -> bytes:
    """One line-break style per file, or (one time in four) a mix; the last line ends with one or not."""
    style = draw(st.sampled_from(["\n", "\r\n", "\r", "mixed"]))
    breaks = st.sampled_from(["\n", "\r\n", "\r"]) if style == "mixed" else st.just(style)
    lines = draw(_lines)
    ends = [draw(breaks) for _ in lines]
    if lines and draw(st.booleans()):
        ends[-1] = ""
    text = "".join(line.replace("\n", draw(breaks)) + end for line, end in zip(lines, ends))
    return (("\ufeff" if draw(st.booleans()) else "") + text).encode("utf-8")


def read(data: bytes) -> dict:
    """What python-dotenv reads from a file holding ``data`` (universal newlines, as from a path)."""
    return dict(dotenv_values(stream=io.StringIO(data.decode("utf-8"), newline=None), interpolate=False))


def line_breaks(data: bytes) -> set:
    return set(LINE_BREAK.findall(data.decode("utf-8")))


def in_effect(values: dict):
    for name in KEY_NAMES:
        if values.get(name):
            return name, values[name]
    return None


def without_keys(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in KEY_NAMES}


def run(folder, data: bytes, key: str | None):
    (folder / ".env").write_bytes(data)
    try:
        setup_env(folder, key=Secret(key) if key else None, env={})
    except QwenOpsError as exc:
        assert exc.exit_code == REFUSED_WRITE, exc.message
        assert (folder / ".env").read_bytes() == data, "refused, yet the file changed"
        event("refused")
        return None
    event("edited or left")
    new = (folder / ".env").read_bytes()
    assert line_breaks(new) <= (line_breaks(data) or {"\n"}), "a line break the file did not use"
    return new


def value_replaced(old: bytes, new: bytes, old_value: str, key: str) -> bool:
    """``new`` is ``old`` with one value text (that reads as ``old_value``) right after ``=`` turned into ``key``."""
    inserted = key.encode()
    for a in range(len(old) + 1):
        if old[:a] != new[:a]:
            break
        if not old[:a].rstrip(b" \t").endswith(b"=") or new[a:a + len(inserted)] != inserted:
            continue
        b = len(old) - (len(new) - a - len(inserted))
        if a <= b and old[b:] == new[a + len(inserted):]:
            removed = old[a:b].decode("utf-8")
            if read(f"X={removed}".encode()).get("X") == old_value:
                return True
    return False


@FAST
@given(data=env_files())
def test_placeholder_run_only_appends_and_leaves_a_key_in_effect(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("prop")
    before = in_effect(read(data))
    new = run(folder, data, None)
    if new is None:
        return
    if before is not None:
        assert new == data                      # a key in effect: not one byte changes
    else:
        assert new.startswith(data)             # append only
        assert read(new) == {**read(data), "DASHSCOPE_API_KEY": PLACEHOLDER_VALUE}
        assert in_effect(read(new)) == ("DASHSCOPE_API_KEY", PLACEHOLDER_VALUE)


@FAST
@given(data=env_files())
def test_from_stdin_changes_only_the_value_in_effect(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("prop")
    old = read(data)
    before = in_effect(old)
    new = run(folder, data, NEW_KEY)
    if new is None:
        return
    after = read(new)
    assert in_effect(after)[1] == NEW_KEY and without_keys(after) == without_keys(old)
    if before is None:
        event("appended")
        assert new.startswith(data)
    else:
        event("replaced in place")
        assert classify_key(before[1])[0] == PLACEHOLDER, "a real key was overwritten"
        assert after == {**old, before[0]: NEW_KEY}
        assert value_replaced(data, new, before[1], NEW_KEY), "bytes outside the value in effect changed"

