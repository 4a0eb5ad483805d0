"""A typed, path-tracking view of a decoded TOML table, for configuration validation.

Every accessor checks the value's type and raises :class:`gateway.errors.ConfigError` with the
full key path (``san.dns_suffixes[2]``) on failure. Unknown keys are refused when the table is
opened, with a "did you mean" hint, because a silently ignored typo is a policy hole.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Collection, Iterable, Mapping
from typing import NoReturn, TypeVar

from gateway.errors import ConfigError

E = TypeVar("E", bound=enum.StrEnum)

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean"}


def join(path: str, key: str) -> str:
    """Append ``key`` (a name or ``[index]``) to a dotted key path."""
    if not path:
        return key
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"


class Table:
    """One TOML table at ``path`` inside ``file``; ``keys`` is the allowed key set
    (``None``: any key, for free-form maps such as ``connector_params``)."""

    def __init__(
        self,
        data: object,
        path: str,
        file: str,
        keys: Collection[str] | None = None,
    ) -> None:
        self.path = path
        self.file = file
        if not isinstance(data, Mapping):
            self.fail("", f"must be a table, not {_describe(data)}")
        self.data: Mapping[str, object] = data
        if keys is not None:
            for key in self.data:
                if key not in keys:
                    hint = difflib.get_close_matches(key, list(keys), n=1)
                    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                    self.fail(key, f"unknown key{extra}")

    def fail(self, key: str, reason: str) -> NoReturn:
        """Raise ``ConfigError`` for ``key`` (relative to this table; ``""`` is the table)."""
        raise ConfigError(self.file, join(self.path, key) if key else self.path, reason)

    def keys(self) -> Iterable[str]:
        """The keys present, in file order."""
        return tuple(self.data)

    def _get(self, key: str, expected: type, default: object) -> object:
        if key not in self.data:
            if default is _REQUIRED:
                self.fail(key, "required key is missing")
            return default
        value = self.data[key]
        # bool is an int subclass: `major_version = true` must not pass as 1.
        if type(value) is not expected:
            self.fail(key, f"must be {_TYPE_NAMES[expected]}, not {_describe(value)}")
        return value

    def string(self, key: str, default: str | None = None) -> str:
        """A string value; ``default=None`` makes the key required."""
        value = self._get(key, str, _REQUIRED if default is None else default)
        assert isinstance(value, str)
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        """An integer value within ``low..high`` (inclusive)."""
        value = self._get(key, int, default)
        assert isinstance(value, int)
        if not low <= value <= high:
            self.fail(key, f"must be between {low} and {high}, not {value}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """A boolean value."""
        value = self._get(key, bool, default)
        assert isinstance(value, bool)
        return value

    def strings(self, key: str, default: tuple[str, ...] | None) -> list[tuple[str, str]]:
        """An array of strings as ``(relative key path, value)`` pairs; ``default=None`` makes
        the key required."""
        if key not in self.data:
            if default is None:
                self.fail(key, "required key is missing")
            return [(f"{key}[{i}]", value) for i, value in enumerate(default)]
        value = self.data[key]
        if not isinstance(value, list):
            self.fail(key, f"must be an array of strings, not {_describe(value)}")
        items: list[tuple[str, str]] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"{key}[{index}]", f"must be a string, not {_describe(item)}")
            items.append((f"{key}[{index}]", item))
        return items

    def choice(self, key: str, value: str, kind: type[E]) -> E:
        """``value`` (found at ``key``) as a member of the string enum ``kind``."""
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(member.value for member in kind)
            self.fail(key, f"{value!r} is not one of {allowed}")

    def regex(self, key: str, default: str) -> re.Pattern[str]:
        """A regular expression (applied with full-match semantics by its users)."""
        return compile_regex(self, key, self.string(key, default))

    def regex_list(self, key: str) -> list[re.Pattern[str]]:
        """An array of regular expressions, default empty."""
        return [compile_regex(self, path, text) for path, text in self.strings(key, ())]

    def table(self, key: str, keys: Collection[str] | None, *, required: bool = False) -> Table:
        """A sub-table (an empty one if absent and not ``required``)."""
        if key not in self.data:
            if required:
                self.fail(key, "required table is missing")
            return Table({}, join(self.path, key), self.file, keys)
        return Table(self.data[key], join(self.path, key), self.file, keys)

    def tables(self, key: str, keys: Collection[str]) -> list[Table]:
        """An array of tables (``[[subject.rdn]]``), default empty."""
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.fail(key, f"must be an array of tables, not {_describe(value)}")
        return [
            Table(item, join(self.path, f"{key}[{index}]"), self.file, keys)
            for index, item in enumerate(value)
        ]


_REQUIRED = object()


def compile_regex(table: Table, key: str, text: str) -> re.Pattern[str]:
    """Compile ``text`` or fail naming ``key`` (relative to ``table``)."""
    try:
        return re.compile(text)
    except re.error as exc:
        table.fail(key, f"invalid regular expression {text!r}: {exc}")


def _describe(value: object) -> str:
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
