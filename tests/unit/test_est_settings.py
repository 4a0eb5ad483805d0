"""``[est]`` validation: every error names ``est.<key>`` and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from protocols.est.settings import parse_settings

TEMPLATES = {"device": object(), "tls-server": object(), "approval-required": object()}


def _parse(raw: dict[str, Any], file: str = "/etc/certgate/certgate.toml") -> Any:
    return parse_settings(raw, file, "tls-server", TEMPLATES)


def _error(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _parse(raw)
    return info.value


def test_defaults() -> None:
    s = _parse({"enabled": True})
    assert (s.host, s.port, s.default.template, s.default.own_ca) == (
        "127.0.0.1", 8443, "tls-server", True,
    )  # fmt: skip
    assert s.default.auth == ("tls-client-cert", "basic") and s.retry_window == 300


def test_label_inherits_from_est() -> None:
    s = _parse({"auth": ["basic"], "groups": ["g"], "labels": {"iot": {"template": "device"}}})
    iot = s.label("iot")
    assert iot is not None and iot.auth == ("basic",) and iot.groups == {"g"}
    assert s.label("missing") is None and s.label("") is s.default


@pytest.mark.parametrize("label", ["cacerts", "simpleenroll", "csrattrs", "bad/label", ""])
def test_label_must_not_be_an_operation_or_odd(label: str) -> None:
    error = _error({"labels": {label: {"template": "device"}}})
    assert error.key_path == f"est.labels.{label}"


def test_unknown_template_is_named() -> None:
    error = _error({"labels": {"iot": {"template": "nope"}}})
    assert error.key_path == "est.labels.iot.template" and "nope" in error.reason


def test_unknown_auth_method() -> None:
    assert _error({"auth": ["digest"]}).key_path == "est.auth[0]"


def test_unknown_key_is_an_error() -> None:
    assert _error({"prot": 1}).key_path == "est.prot"


def test_bad_trusted_proxy() -> None:
    assert _error({"trusted_proxies": ["nope"]}).key_path == "est.trusted_proxies[0]"


def test_trusted_proxy_networks() -> None:
    s = _parse({"trusted_proxies": ["10.0.0.0/8", "::1"]})
    assert s.trusts_proxy("10.1.2.3") and s.trusts_proxy("::1")
    assert not s.trusts_proxy("127.0.0.1") and not s.trusts_proxy(None)


def test_certificate_and_key_go_together() -> None:
    assert _error({"tls_certificate": "a.pem"}).key_path == "est.tls_key"


def test_missing_anchor_file(tmp_path: Path) -> None:
    error = _error({"trust_anchors": [str(tmp_path / "none.pem")]})
    assert error.key_path == "est.trust_anchors[0]" and "cannot read" in error.reason


def test_the_commented_example_in_conf_is_valid(tmp_path: Path) -> None:
    import tomllib

    from tests.helpers import REPO
    from tests.pki_helpers import make_ca

    text = (REPO / "conf" / "certgate.toml").read_text()
    block = text[text.index("# [est]\n") : text.index("# [scep]")]
    uncommented = "\n".join(line[2:] for line in block.splitlines() if line.startswith("# "))
    raw = tomllib.loads(uncommented)["est"]
    make_ca(tmp_path, "manufacturer-ca")
    settings = parse_settings(raw, str(tmp_path / "certgate.toml"), "tls-server", TEMPLATES)
    iot = settings.label("iot")
    assert iot is not None and iot.own_ca and len(iot.anchors) == 1
    assert raw["enabled"] is False
