"""Indented JSON text as ``json.dumps(obj, indent=2, ensure_ascii=False)`` writes it, for
:func:`protocols.acme.messages.dumps` (every ACME response body).

Why not ``json.dumps`` itself: given ``indent``, the standard library drops its C encoder for
a generator-based pure-Python one, which costs twice what :func:`indented` does on the small
documents ACME answers with. Only exact ``dict``/``list``/``tuple``/``str``/``int``/
``float``/``bool``/``None`` with string keys are written here; anything else (a subclass
such as an enum, a non-string key, a cycle) is left to ``json.dumps``, so the output never
differs (``tests/unit/test_acme_messages.py`` checks this on arbitrary values).
"""

from __future__ import annotations

from json.encoder import encode_basestring as _json_string
from typing import Any

_INFINITY = float("inf")


class _Unsupported(Exception):
    """A value :func:`indented` leaves to ``json.dumps``."""


def indented(obj: Any) -> str | None:
    """``obj`` as indented JSON text, or ``None`` if it is not made of plain JSON types."""
    out: list[str] = []
    try:
        _write(obj, "\n", out)
    except (_Unsupported, RecursionError):
        return None
    return "".join(out)


def _write(obj: Any, newline: str, out: list[str]) -> None:
    """Append ``obj`` at the depth whose lines start with ``newline`` (then the indent)."""
    kind = type(obj)
    if kind is str:
        out.append(_json_string(obj))
    elif kind is dict:
        if not obj:
            out.append("{}")
            return
        inner = newline + "  "
        sep = inner
        out.append("{")
        for key, value in obj.items():
            if type(key) is not str:
                raise _Unsupported
            out.append(sep)
            out.append(_json_string(key))
            out.append(": ")
            _write(value, inner, out)
            sep = "," + inner
        out.append(newline)
        out.append("}")
    elif kind is list or kind is tuple:
        if not obj:
            out.append("[]")
            return
        inner = newline + "  "
        sep = inner
        out.append("[")
        for value in obj:
            out.append(sep)
            _write(value, inner, out)
            sep = "," + inner
        out.append(newline)
        out.append("]")
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(obj))
    elif kind is float:
        out.append(_float(obj))
    else:
        raise _Unsupported


def _float(value: float) -> str:
    """What ``json.dumps`` writes for a float (``allow_nan``: NaN and the infinities too)."""
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)
