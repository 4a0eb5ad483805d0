"""Configuration: complete validation, errors naming file, key path and reason; secrets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.config import Table, load_config, resolve_secret
from gateway.errors import ConfigError
from tests.helpers import REPO


def write(tmp: Path, text: str) -> Path:
    p = tmp / "certgate.toml"
    p.write_text(text)
    return p


def test_shipped_example_config_loads() -> None:
    config = load_config(REPO / "conf" / "certgate.toml")
    assert config.server.port == 8080
    assert config.templates_dir == REPO / "conf" / "templates"
    assert "local" in config.connectors


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(None, data_dir=tmp_path)
    assert config.data_dir == tmp_path
    assert config.server.external_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[server]\nprot = 1\n", "server.prot", "unknown key"),
        ("[server]\nport = 'x'\n", "server.port", "expected an integer"),
        ("[server]\nport = 70000\n", "server.port", "at most 65535"),
        ("[server]\nexternal_url = 'ftp://x'\n", "server.external_url", "absolute http"),
        ("[poller]\ninterval = 'soon'\n", "poller.interval", "duration"),
        ("[logging]\nlevel = 'LOUD'\n", "logging.level", "DEBUG"),
        ("[store]\nurl = 'mysql://x'\n", "store.url", "must start with"),
        ("[store]\nurl = 'postgresql+asyncpg://u:pw@h/db'\n", "store.url", "secret"),
        ("[store]\npool_size = 0\n", "store.pool_size", "at least 1"),
        ("[store]\nmax_overflow = -1\n", "store.max_overflow", "at least 0"),
        ("bogus = 1\n", "bogus", "unknown key"),
        ("[testing]\nenabled = true\n", "testing", "CERTGATE_TESTING"),
    ],
)
def test_config_errors_name_file_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert info.value.key_path == key
    assert reason in info.value.reason


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path)
    assert info.value.file == str(path)


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CG_SECRET", "s3cret")
    assert resolve_secret("env:CG_SECRET", "f", "k") == "s3cret"
    (tmp_path / "pw").write_text("from-file\n")
    assert resolve_secret("file:pw", str(tmp_path / "certgate.toml"), "k") == "from-file"


@pytest.mark.parametrize("ref", ["hunter2", "env:", "env:CG_NOT_SET_ANYWHERE", "file:/nonexistent"])
def test_bad_secret_references_are_refused(ref: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_secret(ref, "certgate.toml", "connectors.local.passphrase")
    assert info.value.key_path == "connectors.local.passphrase"


def test_store_url_with_password_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CG_DB", "postgresql+asyncpg://u:pw@127.0.0.1/db")
    config = load_config(write(tmp_path, "[store]\nurl = 'env:CG_DB'\n"))
    assert config.store_url == "postgresql+asyncpg://u:pw@127.0.0.1/db"


def test_store_pool_defaults_and_settings(tmp_path: Path) -> None:
    default = load_config(None, data_dir=tmp_path)
    assert (default.store_pool_size, default.store_max_overflow) == (20, 10)
    config = load_config(write(tmp_path, "[store]\npool_size = 7\nmax_overflow = 0\n"))
    assert (config.store_pool_size, config.store_max_overflow) == (7, 0)


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[data]\ndir = 'fromfile'\n")
    assert load_config(path).data_dir == tmp_path / "fromfile"
    monkeypatch.setenv("CERTGATE_DATA", str(tmp_path / "fromenv"))
    assert load_config(path).data_dir == tmp_path / "fromenv"
    assert load_config(path, data_dir=tmp_path / "flag").data_dir == tmp_path / "flag"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("90d", 7776000), ("6w", 3628800), ("1y", 31536000)],
)
def test_durations(text: object, seconds: int) -> None:
    assert Table({"k": text}, "f").seconds("k", "1s") == seconds


def test_a_bare_number_is_not_a_duration_and_the_error_says_what_to_write() -> None:
    """One grammar (gateway.durations): a bare integer names no unit, in every table."""
    with pytest.raises(ConfigError) as info:
        Table({"k": 12}, "f", "t").seconds("k", "1s")
    assert info.value.key_path == "t.k" and "write '12s'" in info.value.reason


def test_zero_is_refused_unless_the_key_allows_it() -> None:
    with pytest.raises(ConfigError, match="zero"):
        Table({"k": "0s"}, "f").seconds("k", "1s")
    assert Table({"k": "0s"}, "f").seconds("k", "1s", minimum=timedelta(0)) == 0


@pytest.mark.parametrize("key", ["header_timeout", "body_timeout"])
def test_server_timeouts_are_at_least_a_second(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, f"[server]\n{key} = '0s'\n"))
    assert info.value.key_path == f"server.{key}"
    config = load_config(write(tmp_path, "[server]\nshutdown_timeout = '0s'\n"))
    assert config.server.shutdown_timeout == 0


def test_unknown_keys_are_one_line_errors_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nprot = 8080\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: server.prot: unknown key (did you mean 'port'?)"


def test_port_override_rederives_a_derived_external_url(tmp_path: Path) -> None:
    server = load_config(write(tmp_path, "[server]\nport = 9000\n")).server
    assert server.listening_on("127.0.0.1", 9443).external_url == "http://127.0.0.1:9443"


def test_port_override_keeps_a_configured_external_url(tmp_path: Path) -> None:
    text = "[server]\nexternal_url = 'https://ca.example.test'\n"
    server = load_config(write(tmp_path, text)).server
    assert server.listening_on("0.0.0.0", 9443).external_url == "https://ca.example.test"


def test_a_front_ends_enabled_switch_must_be_a_boolean(tmp_path: Path) -> None:
    """The front-end's own table is validated when it is mounted, and only if enabled: a
    non-boolean ``enabled`` would silently leave it off, so the configuration refuses it."""
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[est]\nenabled = 'yes'\n"))
    assert (info.value.key_path, info.value.reason) == (
        "est.enabled",
        "expected true or false, got a string",
    )
