"""named_tuple.NamedTuple behaves as typing.NamedTuple for every way the bundle declares one."""

from __future__ import annotations

import pickle
import typing

import pytest

from qianwen_ops.named_tuple import NamedTuple


class Point(NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str = ""

    SCALE = 10

    @property
    def norm(self) -> int:
        return abs(self.x) + abs(self.y)

    def scaled(self) -> Point:
        return self._replace(x=self.x * self.SCALE, y=self.y * self.SCALE)


class TypingPoint(typing.NamedTuple):
    """A point."""

    x: int
    y: int = 0
    label: str = ""


def test_same_fields_defaults_methods_and_text_as_typing():
    p = Point(3, -4)
    assert p == (3, -4, "") and tuple(p) == tuple(TypingPoint(3, -4)) and isinstance(p, tuple)
    assert p.norm == 7 and p.scaled() == Point(30, -40) and type(p.scaled()) is Point
    assert Point._fields == TypingPoint._fields and Point._field_defaults == TypingPoint._field_defaults
    assert repr(p) == "Point(x=3, y=-4, label='')" and Point.__doc__ == "A point."
    assert p._asdict() == {"x": 3, "y": -4, "label": ""} and Point._make([1, 2, "a"]) == Point(1, 2, "a")
    assert Point.__module__ == __name__ and Point.__qualname__ == "Point"
    assert pickle.loads(pickle.dumps(p)) == p  # noqa: S301 - our own bytes
    with pytest.raises(AttributeError):
        p.x = 1


def test_declaration_errors_as_typing():
    with pytest.raises(TypeError):
        class Bad(NamedTuple):
            a: int = 0
            b: int
    with pytest.raises(AttributeError):
        class Worse(NamedTuple):
            a: int

            def _replace(self):
                return self
