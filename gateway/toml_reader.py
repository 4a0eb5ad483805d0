"""The one reader for decoded TOML: a typed, path-tracking view of a table.

Both the gateway configuration (:mod:`gateway.config`, and through it the front-ends' and
connectors' tables) and the certificate templates (:mod:`gateway.policy.loader`) are read through
:class:`Table`. Every accessor checks the value's type and raises
:class:`gateway.errors.ConfigError` naming the file, the full key path (``server.port``,
``san.dns_suffixes[2]``, ``subject.rdn[0].pattern``) and the reason, in one line:
``file: key.path: reason (did you mean 'x'?)``. Durations are read in the one duration grammar
(:mod:`gateway.durations`), each with its minimum.

Unknown keys are errors, because a silently ignored typo is a configuration or policy hole. A
table opened with its allowed ``keys`` refuses strangers at once; any table refuses, in
:meth:`Table.finish`, the keys no accessor asked for. Both name the likely intended key.
"""

from __future__ import annotations

import builtins
import difflib
import enum
import re
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from gateway.durations import POSITIVE, parse_duration
from gateway.errors import ConfigError

E = TypeVar("E", bound=enum.StrEnum)

_REQUIRED: Any = object()


def join(path: str, key: str) -> str:
    """Append ``key`` (a name or ``[index]``) to a dotted key path."""
    if not path:
        return key
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"


def describe(value: object) -> str:
    """A TOML value's kind in words (``"an integer"``, ``"a table"``) for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return type(value).__name__


class Table:
    """One TOML table at key path ``path`` inside ``file``.

    ``keys`` is the allowed key set, checked when the table is opened (``None``: checked by
    :meth:`finish` against what was read, or not at all for free-form maps). Accessors whose
    ``default`` is ``None`` make the key required.
    """

    def __init__(
        self,
        data: object,
        file: builtins.str,
        path: builtins.str = "",
        keys: Collection[builtins.str] | None = None,
    ) -> None:
        self.file = file
        self.path = path
        if not isinstance(data, Mapping):
            self.fail("", f"expected a table, got {describe(data)}")
        self.data: Mapping[builtins.str, Any] = data
        self._seen: set[builtins.str] = set()
        if keys is not None:
            for name in self.data:
                if name not in keys:
                    self.fail(name, _unknown(name, keys))

    # -- paths and errors ----------------------------------------------------------------

    def key(self, name: builtins.str) -> builtins.str:
        """The full key path of ``name`` (a key of this table or ``name[index]``)."""
        return join(self.path, name) if name else self.path

    def fail(self, name: builtins.str, reason: builtins.str) -> NoReturn:
        """Raise ``ConfigError`` for ``name`` (relative to this table; ``""``: the table)."""
        raise ConfigError(self.file, self.key(name), reason)

    def keys(self) -> tuple[builtins.str, ...]:
        """The keys present, in file order (each counts as read)."""
        self._seen.update(self.data)
        return tuple(self.data)

    def finish(self) -> None:
        """Refuse the first key that no accessor asked for."""
        for name in self.data:
            if name not in self._seen:
                self.fail(name, _unknown(name, self._seen))

    # -- scalars -------------------------------------------------------------------------

    def _get(self, name: builtins.str, kind: type, default: Any, what: builtins.str) -> Any:
        self._seen.add(name)
        if name not in self.data:
            if default is _REQUIRED:
                self.fail(name, "required key is missing")
            return default
        value = self.data[name]
        # bool is an int subclass: `port = true` must not pass as 1.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            self.fail(name, f"expected {what}, got {describe(value)}")
        return value

    def raw(self, name: builtins.str) -> Any:
        """The value as decoded (``None`` if absent), for callers that validate it themselves."""
        self._seen.add(name)
        return self.data.get(name)

    def str(self, name: builtins.str, default: builtins.str | None = None) -> builtins.str:
        """A string; ``default=None`` makes the key required."""
        value: builtins.str = self._get(
            name, builtins.str, _REQUIRED if default is None else default, "a string"
        )
        return value

    def opt_str(self, name: builtins.str) -> builtins.str | None:
        """A string, or ``None`` if absent."""
        value: builtins.str | None = self._get(name, builtins.str, None, "a string")
        return value

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        *,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
    ) -> builtins.int:
        """An integer within ``minimum..maximum`` (inclusive, either bound optional)."""
        value: builtins.int = self._get(name, builtins.int, default, "an integer")
        if minimum is not None and value < minimum:
            self.fail(name, f"must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            self.fail(name, f"must be at most {maximum}, not {value}")
        return value

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        """``true`` or ``false``."""
        value: builtins.bool = self._get(name, builtins.bool, default, "true or false")
        return value

    def duration(
        self, name: builtins.str, default: builtins.str, *, minimum: timedelta = POSITIVE
    ) -> timedelta:
        """A duration in the one grammar (``"30s"``, ``"90d"``; :mod:`gateway.durations`) of
        at least ``minimum`` (default: positive). A bare number is refused: it names no unit."""
        self._seen.add(name)
        value = self.data.get(name, default)
        if not isinstance(value, builtins.str):
            hint = (
                f" (a bare number names no unit: write '{value}s' for seconds)"
                if isinstance(value, builtins.int) and not isinstance(value, builtins.bool)
                else ""
            )
            self.fail(name, f"expected a duration like {default!r}, got {describe(value)}{hint}")
        try:
            return parse_duration(value, minimum)
        except ValueError as exc:
            self.fail(name, builtins.str(exc))

    def seconds(
        self, name: builtins.str, default: builtins.str, *, minimum: timedelta = POSITIVE
    ) -> builtins.int:
        """:meth:`duration` as whole seconds."""
        return builtins.int(self.duration(name, default, minimum=minimum).total_seconds())

    def choice(self, name: builtins.str, value: builtins.str, kind: type[E]) -> E:
        """``value`` (found at ``name``, e.g. ``types[1]``) as a member of the enum ``kind``."""
        try:
            return kind(value)
        except ValueError:
            allowed = [member.value for member in kind]
            hint = difflib.get_close_matches(value, allowed, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            self.fail(name, f"{value!r} is not one of {', '.join(allowed)}{suggestion}")

    def regex(self, name: builtins.str, default: builtins.str) -> re.Pattern[builtins.str]:
        """A regular expression (applied with full-match semantics by its users)."""
        return self._compile(name, self.str(name, default))

    def _compile(self, name: builtins.str, text: builtins.str) -> re.Pattern[builtins.str]:
        try:
            return re.compile(text)
        except re.error as exc:
            self.fail(name, f"invalid regular expression {text!r}: {exc}")

    # -- arrays --------------------------------------------------------------------------

    def str_items(
        self, name: builtins.str, default: tuple[builtins.str, ...] | None = ()
    ) -> list[tuple[builtins.str, builtins.str]]:
        """An array of strings as ``(relative key path, value)`` pairs (``("ekus[1]",
        "client_auth")``), so that callers judging an item can name it; ``default=None`` makes
        the key required."""
        self._seen.add(name)
        if name not in self.data:
            if default is None:
                self.fail(name, "required key is missing")
            return [(f"{name}[{i}]", value) for i, value in enumerate(default)]
        value = self.data[name]
        if not isinstance(value, list):
            self.fail(name, f"expected an array of strings, got {describe(value)}")
        items: list[tuple[builtins.str, builtins.str]] = []
        for index, item in enumerate(value):
            if not isinstance(item, builtins.str):
                self.fail(f"{name}[{index}]", f"expected a string, got {describe(item)}")
            items.append((f"{name}[{index}]", item))
        return items

    def str_list(
        self, name: builtins.str, default: tuple[builtins.str, ...] = ()
    ) -> tuple[builtins.str, ...]:
        """An array of strings."""
        return tuple(value for _, value in self.str_items(name, default))

    def regex_list(self, name: builtins.str) -> list[re.Pattern[builtins.str]]:
        """An array of regular expressions, default empty."""
        return [self._compile(path, text) for path, text in self.str_items(name)]

    # -- sub-tables ----------------------------------------------------------------------

    def table(
        self,
        name: builtins.str,
        keys: Collection[builtins.str] | None = None,
        *,
        required: builtins.bool = False,
    ) -> Table:
        """A sub-table (an empty one if absent and not ``required``)."""
        self._seen.add(name)
        if name not in self.data:
            if required:
                self.fail(name, "required table is missing")
            return Table({}, self.file, self.key(name), keys)
        return Table(self.data[name], self.file, self.key(name), keys)

    def tables(
        self, name: builtins.str, keys: Collection[builtins.str] | None = None
    ) -> list[Table]:
        """An array of tables (``[[subject.rdn]]``), default empty."""
        self._seen.add(name)
        value = self.data.get(name, [])
        if not isinstance(value, list):
            self.fail(name, f"expected an array of tables, got {describe(value)}")
        return [
            Table(item, self.file, self.key(f"{name}[{index}]"), keys)
            for index, item in enumerate(value)
        ]


def _unknown(name: str, known: Collection[str]) -> str:
    hint = difflib.get_close_matches(name, sorted(known), n=1)
    return f"unknown key (did you mean {hint[0]!r}?)" if hint else "unknown key"
