"""The local CA validates its whole settings table in the constructor, naming the key path."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backends.local_ca import LocalCA
from backends.local_ca.settings import KeyAlgorithm
from gateway.errors import ConfigError
from gateway.ports import ConnectorContext


class _NoJournal:
    async def get(self, request_id: str) -> bytes | None:
        raise AssertionError("not used")

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        raise AssertionError("not used")


@pytest.fixture(autouse=True)
def _no_ambient_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTGATE_CA_PASSPHRASE", raising=False)


def _construct(settings: dict[str, Any], tmp_path: Path, name: str = "local") -> LocalCA:
    return LocalCA(
        ConnectorContext(name, settings, tmp_path, _NoJournal(), str(tmp_path / "certgate.toml"))
    )


@pytest.mark.parametrize(
    ("settings", "key_path"),
    [
        ({"bogus": 1}, "connectors.local.bogus"),
        ({"key_algorithm": "ed25519"}, "connectors.local.key_algorithm"),
        ({"key_algorithm": 256}, "connectors.local.key_algorithm"),
        ({"passphrase": "inline-secret"}, "connectors.local.passphrase"),
        ({"passphrase": "env:CERTGATE_TEST_SURELY_UNSET"}, "connectors.local.passphrase"),
        ({"passphrase": "file:/nonexistent/pass"}, "connectors.local.passphrase"),
        ({"common_name_prefix": ""}, "connectors.local.common_name_prefix"),
        ({"organization": 3}, "connectors.local.organization"),
        ({"root_validity": "20 years"}, "connectors.local.root_validity"),
        ({"issuing_validity": True}, "connectors.local.issuing_validity"),
        ({"crl_validity": "0d"}, "connectors.local.crl_validity"),
        ({"crl_urls": "http://ca.example/crl"}, "connectors.local.crl_urls"),
        ({"crl_urls": ["ftp://ca.example/crl"]}, "connectors.local.crl_urls[0]"),
        ({"aia_urls": ["http://ok.example/ca", 7]}, "connectors.local.aia_urls[1]"),
        ({"aia_urls": ["http:///no-host"]}, "connectors.local.aia_urls[0]"),
        ({"import_key": "k.pem"}, "connectors.local.import_certificate"),
        ({"import_certificate": "c.pem"}, "connectors.local.import_key"),
        (
            {"import_pkcs12": "a.p12", "import_certificate": "c.pem", "import_key": "k.pem"},
            "connectors.local.import_pkcs12",
        ),
        ({"import_chain": "chain.pem"}, "connectors.local.import_chain"),
        ({"import_certificate": 5, "import_key": "k.pem"}, "connectors.local.import_certificate"),
        (
            {"import_pkcs12": "a.p12", "import_pkcs12_passphrase": "hunter2"},
            "connectors.local.import_pkcs12_passphrase",
        ),
    ],
)
def test_invalid_setting_is_a_config_error_naming_its_key_path(
    settings: dict[str, Any], key_path: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        _construct(settings, tmp_path)
    assert caught.value.key_path == key_path
    assert caught.value.file == str(tmp_path / "certgate.toml")


def test_errors_use_the_one_reader_style_with_a_suggestion(tmp_path: Path) -> None:
    """The local CA reads its table through gateway.toml_reader.Table like every other table:
    one line, ``file: key.path: reason (did you mean X?)``."""
    file = str(tmp_path / "certgate.toml")
    with pytest.raises(ConfigError) as caught:
        _construct({"crl_validty": "7d"}, tmp_path)
    assert str(caught.value) == (
        f"{file}: connectors.local.crl_validty: unknown key (did you mean 'crl_validity'?)"
    )
    with pytest.raises(ConfigError, match="write '30s'"):
        _construct({"crl_validity": 30}, tmp_path)
    with pytest.raises(ConfigError, match=r"\(did you mean 'ec-p256'\?\)$"):
        _construct({"key_algorithm": "ec-p265"}, tmp_path)


def test_passphrase_options_without_their_source_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTGATE_TEST_IMPORT_PASS", "x")
    with pytest.raises(ConfigError) as caught:
        _construct({"import_key_passphrase": "env:CERTGATE_TEST_IMPORT_PASS"}, tmp_path)
    assert caught.value.key_path == "connectors.local.import_key_passphrase"


def test_empty_passphrase_environment_variable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTGATE_CA_PASSPHRASE", "")
    with pytest.raises(ConfigError, match="CERTGATE_CA_PASSPHRASE"):
        _construct({}, tmp_path)


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pass").write_text("\n")
    with pytest.raises(ConfigError) as caught:
        _construct({"passphrase": f"file:{tmp_path / 'pass'}"}, tmp_path)
    assert caught.value.key_path == "connectors.local.passphrase"


def test_secret_references_are_resolved_with_trailing_newline_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pass").write_text("from-file\n")
    ca = _construct({"passphrase": f"file:{tmp_path / 'pass'}"}, tmp_path)
    assert ca.settings.passphrase == b"from-file"
    monkeypatch.setenv("CERTGATE_TEST_CA_PASS", "from-env")
    ca = _construct({"passphrase": "env:CERTGATE_TEST_CA_PASS"}, tmp_path)
    assert ca.settings.passphrase == b"from-env"


def test_environment_passphrase_applies_when_none_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTGATE_CA_PASSPHRASE", "ambient")
    assert _construct({}, tmp_path).settings.passphrase == b"ambient"


def test_no_passphrase_anywhere_means_a_generated_one(tmp_path: Path) -> None:
    assert _construct({}, tmp_path).settings.passphrase is None


def test_defaults_match_the_documented_ones(tmp_path: Path) -> None:
    settings = _construct({}, tmp_path).settings
    assert settings.key_algorithm is KeyAlgorithm.EC_P256
    assert settings.common_name_prefix == "certgate"
    assert settings.organization == ""
    assert settings.root_validity == timedelta(days=20 * 365)
    assert settings.issuing_validity == timedelta(days=10 * 365)
    assert settings.crl_validity == timedelta(days=7)
    assert settings.crl_urls is None and settings.aia_urls is None  # the gateway's own URLs
    assert settings.import_source is None


def test_durations_accept_every_unit(tmp_path: Path) -> None:
    settings = _construct(
        {"root_validity": "2y", "issuing_validity": "3w", "crl_validity": "90m"}, tmp_path
    ).settings
    assert settings.root_validity == timedelta(days=730)
    assert settings.issuing_validity == timedelta(weeks=3)
    assert settings.crl_validity == timedelta(minutes=90)


def test_relative_import_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    source = _construct(
        {"import_certificate": "ca/issuing.pem", "import_key": "/abs/issuing.key"}, tmp_path
    ).settings.import_source
    assert source is not None
    assert source.certificate == tmp_path / "ca" / "issuing.pem"
    assert source.key == Path("/abs/issuing.key")


def test_secrets_never_appear_in_the_settings_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTGATE_TEST_CA_PASS", "s3cret-value")
    ca = _construct({"passphrase": "env:CERTGATE_TEST_CA_PASS"}, tmp_path)
    assert "s3cret-value" not in repr(ca.settings)


def test_connector_name_that_cannot_name_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _construct({}, tmp_path, name="../escape")
    assert caught.value.key_path == "connectors.../escape"
