"""``[acme]`` validation: key paths in errors, defaults, the EAB encryption key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from protocols.acme.eab import seal, unseal
from protocols.acme.messages import Problem
from protocols.acme.settings import parse_settings

TEMPLATES: dict[str, Any] = {"acme-tls": object(), "tls-server": object()}


def parse(raw: dict[str, Any], tmp: Path) -> Any:
    return parse_settings(
        raw, "c.toml", default_template="tls-server", templates=TEMPLATES, data_dir=tmp
    )


def test_defaults(tmp_path: Path) -> None:
    s = parse({"enabled": True}, tmp_path)
    assert s.default_template == "tls-server" and s.profiles == ("tls-server",)
    assert s.http01_port == 80 and s.tls_alpn01_port == 443 and s.dns_resolver is None
    assert s.revocation_reasons == (0, 1, 3, 4, 5)
    assert (tmp_path / "acme-eab.key").stat().st_mode & 0o777 == 0o600
    assert parse({}, tmp_path).eab_encryption_key == s.eab_encryption_key  # kept, not re-made


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"default_template": "nope"}, "acme.default_template"),
        ({"profiles": ["acme-tls", "nope"]}, "acme.profiles[1]"),
        ({"http01_port": 70000}, "acme.http01_port"),
        ({"dns_resolver": "8.8.8.8"}, "acme.dns_resolver"),
        ({"revocation_reasons": [7]}, "acme.revocation_reasons"),
        ({"typo": 1}, "acme.typo"),
        ({"eab_encryption_key": "inline"}, "acme.eab_encryption_key"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse(raw, tmp_path)
    assert exc.value.key_path == key


def test_eab_keys_are_sealed_with_the_kid_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EAB_K", "s3cret")
    s = parse({"eab_encryption_key": "env:EAB_K"}, tmp_path)
    sealed = seal(s.eab_encryption_key, "kid-1", b"hmac")
    assert b"hmac" not in sealed and unseal(s.eab_encryption_key, "kid-1", sealed) == b"hmac"
    with pytest.raises(Problem):
        unseal(s.eab_encryption_key, "kid-2", sealed)


def test_terms_caa_and_shared_limit_defaults(tmp_path: Path) -> None:
    s = parse({}, tmp_path)
    assert s.terms_of_service == "" and s.require_terms_agreement and not s.terms_required
    assert parse({"terms_of_service": "https://t/1"}, tmp_path).terms_required
    relaxed = parse({"terms_of_service": "https://t/1", "require_terms_agreement": False}, tmp_path)
    assert not relaxed.terms_required
    assert s.caa_identities == () and s.caa_recheck_after == 8 * 3600
    assert parse({"caa_identities": ["CA.Example."]}, tmp_path).caa_identities == ("ca.example",)
    assert (s.rate_limit_new_accounts, s.rate_limit_new_accounts_window) == (100, 3 * 3600)
    assert (s.rate_limit_new_orders, s.rate_limit_new_orders_window) == (3000, 3600)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"caa_identities": ["bad name"]}, "acme.caa_identities[0]"),
        ({"caa_identities": ["a..b"]}, "acme.caa_identities[0]"),
        ({"caa_identities": "ca.example"}, "acme.caa_identities"),
        ({"rate_limit_new_orders": -1}, "acme.rate_limit_new_orders"),
        ({"rate_limit_new_orders_window": "0s"}, "acme.rate_limit_new_orders_window"),
        ({"require_terms_agreement": "yes"}, "acme.require_terms_agreement"),
    ],
)
def test_new_keys_errors_name_the_key(tmp_path: Path, raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse(raw, tmp_path)
    assert exc.value.key_path == key
