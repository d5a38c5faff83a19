"""``NamedTuple``: typing's class syntax for named tuples, without importing ``typing``.

Importing ``typing`` costs about 14 M instructions, 5% of the whole probe process (``bench/``), and
its ``NamedTuple`` twice what ``collections.namedtuple`` does per class. A class declared here the
usual way (annotated fields, defaults, methods, properties, a docstring) is a plain
``collections.namedtuple`` class with those added, as ``typing.NamedTuple`` makes it. Annotations
elsewhere use ``collections.abc`` (already loaded at start-up) or stay strings
(``from __future__ import annotations``).
"""

from __future__ import annotations

from collections import namedtuple

_PROHIBITED = frozenset({"__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
                         "_make", "_replace", "_asdict", "_source"})
_SPECIAL = frozenset({"__module__", "__name__", "__annotations__"})


class _Maker(type):
    def __new__(mcls, name: str, bases: tuple, namespace: dict):
        if namespace.get("_is_base"):
            return super().__new__(mcls, name, bases, namespace)
        annotations = namespace.get("__annotations__", {})
        fields = list(annotations)
        defaults = [namespace[field] for field in fields if field in namespace]
        if any(field in namespace for field in fields[:len(fields) - len(defaults)]):
            raise TypeError(f"{name}: a field without a default follows one with a default")
        made = namedtuple(name, fields, defaults=defaults, module=namespace.get("__module__"))
        made.__annotations__ = dict(annotations)
        for key, value in namespace.items():
            if key in _PROHIBITED:
                raise AttributeError(f"{name}: cannot overwrite NamedTuple attribute {key}")
            if key not in _SPECIAL and key not in made._fields:
                setattr(made, key, value)
        return made


class NamedTuple(metaclass=_Maker):
    """Subclass it with annotated fields, as ``typing.NamedTuple``."""

    _is_base = True
