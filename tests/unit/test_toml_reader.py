"""The one TOML reader behind the configuration and the templates: types, key paths, unknown
keys (with a hint), required keys and bounds."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.errors import ConfigError
from gateway.toml_reader import Table


def _error(call: Callable[[], object]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        call()
    return info.value


def test_a_boolean_is_not_an_integer() -> None:
    err = _error(lambda: Table({"port": True}, "f.toml", "server").int("port", 1))
    assert (err.file, err.key_path, err.reason) == (
        "f.toml",
        "server.port",
        "expected an integer, got a boolean",
    )


def test_unread_key_is_refused_by_finish_with_a_hint() -> None:
    t = Table({"prot": 1}, "f.toml", "server")
    t.int("port", 8080)
    err = _error(t.finish)
    assert err.key_path == "server.prot" and err.reason == "unknown key (did you mean 'port'?)"


def test_declared_keys_refuse_strangers_when_opened() -> None:
    err = _error(lambda: Table({"a": 1}, "t.toml").table("san", ["types"]).str("x"))
    assert err.key_path == "san.x" and "required key is missing" in err.reason
    err = _error(lambda: Table({"san": {"typs": []}}, "t.toml").table("san", ["types"]))
    assert err.key_path == "san.typs" and "did you mean 'types'" in err.reason


def test_array_items_are_named_by_index() -> None:
    t = Table({"rdn": [{"type": "CN"}, {"type": 7}]}, "t.toml", "subject")
    second = t.tables("rdn", ["type"])[1]
    err = _error(lambda: second.str("type"))
    assert err.key_path == "subject.rdn[1].type" and err.reason.endswith("got an integer")
    err = _error(lambda: Table({"ekus": ["a", 2]}, "t.toml").str_list("ekus"))
    assert err.key_path == "ekus[1]"


@pytest.mark.parametrize(("value", "reason"), [(0, "at least 1"), (5, "at most 4")])
def test_integer_bounds_name_the_bound(value: int, reason: str) -> None:
    err = _error(lambda: Table({"v": value}, "t.toml").int("v", 2, minimum=1, maximum=4))
    assert reason in err.reason and str(value) in err.reason


def test_a_table_that_is_not_a_table_names_itself() -> None:
    err = _error(lambda: Table({"est": [1]}, "c.toml").table("est"))
    assert (err.key_path, err.reason) == ("est", "expected a table, got an array")
