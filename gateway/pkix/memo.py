"""Memoisation primitives for the issuance hot path, kept out of the domain model.

Two shapes of cache, each a seam whose answer must equal the plain computation it stands
for (tests/unit/test_model_memo.py and test_identity_memo.py hold them to that):

* :class:`once` -- an attribute computed on first access and kept on the instance;
* :class:`IdentityMemo` -- ``compute(obj)`` remembered per object identity.

Nothing here knows about certificates; :mod:`gateway.pkix.csr` uses these for the per-CSR
and per-key values the model's value objects expose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

_T = TypeVar("_T")
_K = TypeVar("_K")


class once(Generic[_T]):
    """A per-instance cached attribute, computed on first access.

    Like ``functools.cached_property`` minus its lock (Python 3.11 takes an RLock on every
    first access, a visible cost on the issuance path) and it works on frozen dataclasses: the
    value goes straight into the instance ``__dict__``, which then shadows this non-data
    descriptor. Objects using it are read by one task at a time, so no lock is needed.
    ``compute`` must be a pure function of the (immutable) instance: the cached value is then
    what a fresh call would return."""

    def __init__(self, compute: Callable[[Any], _T]) -> None:
        self._compute = compute
        self._name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> once[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _T: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> _T | once[_T]:
        if instance is None:
            return self
        value = self._compute(instance)
        instance.__dict__[self._name] = value
        return value


class IdentityMemo(Generic[_K, _T]):
    """``compute(obj)`` remembered per object *identity*, for immutable objects that are not
    hashable cheaply (cryptography keys, extensions) and are asked about several times while
    they live. An entry holds its object, so the object's id cannot be reused while cached;
    past ``limit`` entries the memo starts over."""

    def __init__(self, compute: Callable[[_K], _T], limit: int) -> None:
        self._compute = compute
        self._limit = limit
        self._entries: dict[int, tuple[_K, _T]] = {}

    def __call__(self, obj: _K) -> _T:
        entry = self._entries.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        value = self._compute(obj)
        self.seed(obj, value)
        return value

    def seed(self, obj: _K, value: _T) -> None:
        """Remember ``value`` for ``obj`` without computing it (the caller knows it equals
        ``compute(obj)``)."""
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[id(obj)] = (obj, value)
