"""Template TOML loading: the shipped templates load, and every error names file, key path and
reason."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.policy import (
    CertificateTemplate,
    KeyAlgorithm,
    PolicyEngine,
    SanType,
    SubjectSource,
    load_template,
    load_templates,
    parse_template,
)
from tests.unit.policy_helpers import make_template, template_data

SHIPPED = Path(__file__).resolve().parents[2] / "conf" / "templates"


def _error(data: dict[str, Any], file: str = "t.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_template(data, file)
    return info.value


def _write(directory: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as TOML (a tiny writer for the shapes these tests use)."""
    path = directory / f"{data['name']}.toml"
    path.write_text(_toml(data))
    return path


def _toml(data: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list) and all(isinstance(i, dict) for i in v) and v:
            return "[" + ", ".join("{" + _inline(i) + "}" for i in v) + "]"
        if isinstance(v, list):
            return "[" + ", ".join(value(i) for i in v) + "]"
        if isinstance(v, dict):
            return "{" + _inline(v) + "}"
        raise TypeError(v)

    def _inline(table: dict[str, Any]) -> str:
        return ", ".join(f"{k} = {value(v)}" for k, v in table.items())

    return "".join(f"{k} = {value(v)}\n" for k, v in data.items())


# --- shipped templates ----------------------------------------------------------------------


def test_shipped_templates_load() -> None:
    templates = load_templates(SHIPPED)
    # The core's three; front-ends ship their own templates beside them.
    assert {"tls-server", "device", "approval-required"} <= set(templates)


def test_shipped_templates_form_a_valid_engine() -> None:
    engine = PolicyEngine(load_templates(SHIPPED))
    assert engine.template("tls-server").name == "tls-server"


def test_shipped_tls_server_template_matches_its_brief() -> None:
    t = load_template(SHIPPED / "tls-server.toml")
    assert (t.validity, t.renewal_period) == (timedelta(days=90), timedelta(days=30))
    assert t.san.types == {SanType.DNS, SanType.IP} and t.san.required
    assert t.subject.source is SubjectSource.REQUEST and t.subject.cn_must_be_san
    assert t.key_usage.usages == {"digital_signature", "key_encipherment"}


def test_shipped_device_template_requires_a_cn() -> None:
    t = load_template(SHIPPED / "device.toml")
    cn_rule = t.subject.rdn[0]
    assert (cn_rule.label, cn_rule.required) == ("CN", True)
    assert t.validity == timedelta(days=365) and t.renewal_period == timedelta(weeks=6)


def test_shipped_approval_template_requires_manager_approval() -> None:
    t = load_template(SHIPPED / "approval-required.toml")
    assert t.issuance.manager_approval
    assert (t.validity, t.renewal_period) == (timedelta(days=30), timedelta(days=10))


def test_shipped_templates_have_distinct_uuid_oids() -> None:
    oids = [t.oid for t in load_templates(SHIPPED).values()]
    assert len(set(oids)) == len(oids) and all(o.startswith("2.25.") for o in oids)


def test_every_shipped_key_is_commented() -> None:
    for path in SHIPPED.glob("*.toml"):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if "=" in line and not line.lstrip().startswith("#"):
                assert lines[index - 1].lstrip().startswith("#") or "#" in line, (path, line)


# --- defaults -----------------------------------------------------------------------------


def test_minimal_template_gets_documented_defaults() -> None:
    t = parse_template(
        {
            "name": "m",
            "oid": "2.25.7",
            "validity": "1y",
            "renewal_period": "6w",
            "permissions": {"enroll": ["*"]},
        },
        "m.toml",
    )
    assert t.display_name == "m" and t.schema_version == 2 and t.connector == "local"
    assert t.key_policy.algorithms == {KeyAlgorithm.RSA, KeyAlgorithm.EC}
    assert t.issuance.renewal_requires_prior_signature and not t.issuance.early_renewal


# --- errors name file, key path and reason ------------------------------------------------


def test_unknown_top_level_key_is_an_error_with_a_hint() -> None:
    err = _error({**template_data(), "validty": "90d"})
    assert (err.file, err.key_path) == ("t.toml", "validty")
    assert "did you mean 'validity'" in err.reason


def test_unknown_nested_key_names_its_path() -> None:
    err = _error(template_data(san={"dns_sufixes": []}))
    assert err.key_path == "san.dns_sufixes"


def test_unknown_rdn_rule_key_names_its_index() -> None:
    err = _error(template_data(subject={"rdn": [{"type": "CN"}, {"type": "O", "patern": "x"}]}))
    assert err.key_path == "subject.rdn[1].patern"


def test_bad_duration_is_an_error() -> None:
    err = _error(template_data(validity="90 days"))
    assert err.key_path == "validity" and "invalid duration" in err.reason


def test_zero_duration_is_an_error() -> None:
    assert _error(template_data(renewal_period="0d")).key_path == "renewal_period"


def test_renewal_period_not_shorter_than_validity_is_an_error() -> None:
    err = _error(template_data(validity="30d", renewal_period="30d"))
    assert err.key_path == "renewal_period" and "shorter than validity" in err.reason


def test_bad_regex_names_the_list_index() -> None:
    err = _error(template_data(san={"dns_regex": ["ok", "also-ok", "(unclosed"]}))
    assert err.key_path == "san.dns_regex[2]" and "invalid regular expression" in err.reason


def test_bad_dns_suffix_names_the_list_index() -> None:
    err = _error(template_data(san={"dns_suffixes": [".a.com", "b.com", "Bad Suffix"]}))
    assert err.key_path == "san.dns_suffixes[2]"


def test_bad_rdn_pattern_is_an_error() -> None:
    err = _error(template_data(subject={"rdn": [{"type": "CN", "pattern": "[a-"}]}))
    assert err.key_path == "subject.rdn[0].pattern"


def test_bad_template_oid_is_an_error() -> None:
    assert _error(template_data(oid="1.50.3")).key_path == "oid"


def test_bad_eku_is_an_error() -> None:
    err = _error(template_data(key_usage={"ekus": ["server_auth", "web_server"]}))
    assert err.key_path == "key_usage.ekus[1]" and "unknown EKU" in err.reason


def test_dotted_eku_is_accepted() -> None:
    t = make_template(key_usage={"ekus": ["1.3.6.1.4.1.311.20.2.2"]})
    assert t.key_usage.ekus[0].dotted_string == "1.3.6.1.4.1.311.20.2.2"


def test_unknown_rdn_type_is_an_error() -> None:
    err = _error(template_data(subject={"rdn": [{"type": "CommonName"}]}))
    assert err.key_path == "subject.rdn[0].type"


def test_duplicate_rdn_rule_is_an_error() -> None:
    err = _error(template_data(subject={"rdn": [{"type": "CN"}, {"type": "CN"}]}))
    assert err.key_path == "subject.rdn[1].type"


def test_boolean_where_integer_expected_is_an_error() -> None:
    err = _error(template_data(major_version=True))
    assert err.key_path == "major_version" and "integer" in err.reason


def test_string_where_list_expected_is_an_error() -> None:
    assert _error(template_data(san={"types": "dns"})).key_path == "san.types"


def test_unknown_san_type_is_an_error() -> None:
    err = _error(template_data(san={"types": ["dns", "upn"]}))
    assert err.key_path == "san.types[1]"


def test_unknown_curve_is_an_error() -> None:
    assert _error(template_data(key_policy={"curves": ["p256"]})).key_path == "key_policy.curves[0]"


def test_ca_key_usage_is_an_error() -> None:
    err = _error(template_data(key_usage={"usages": ["digital_signature", "key_cert_sign"]}))
    assert err.key_path == "key_usage.usages[1]"


def test_unknown_subject_source_is_an_error() -> None:
    assert _error(template_data(subject={"source": "directory"})).key_path == "subject.source"


def test_missing_permissions_is_an_error() -> None:
    data = template_data()
    del data["permissions"]
    assert _error(data).key_path == "permissions"


def test_missing_validity_is_an_error() -> None:
    data = template_data()
    del data["validity"]
    err = _error(data)
    assert err.key_path == "validity" and "missing" in err.reason


def test_invalid_template_name_is_an_error() -> None:
    assert _error(template_data(name="TLS_Server")).key_path == "name"


def test_template_superseding_itself_is_an_error() -> None:
    assert _error(template_data(supersedes=["t"])).key_path == "supersedes[0]"


def test_name_must_equal_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text(_toml(template_data("t")))
    with pytest.raises(ConfigError) as info:
        load_template(path)
    assert (info.value.file, info.value.key_path) == (str(path), "name")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text("name = \n")
    with pytest.raises(ConfigError) as info:
        load_template(path)
    assert info.value.file == str(path) and "invalid TOML" in info.value.reason


def test_supersedes_naming_an_unknown_template_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, template_data("a"))
    path = _write(tmp_path, template_data("b", supersedes=["a", "ghost"]))
    with pytest.raises(ConfigError) as info:
        load_templates(tmp_path)
    err = info.value
    assert (err.file, err.key_path) == (str(path), "supersedes[1]") and "ghost" in err.reason


def test_duplicate_template_oids_are_an_error(tmp_path: Path) -> None:
    _write(tmp_path, template_data("a"))
    _write(tmp_path, {**template_data("b"), "oid": template_data("a")["oid"]})
    with pytest.raises(ConfigError) as info:
        load_templates(tmp_path)
    assert info.value.key_path == "oid"


def test_supersession_cycle_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, template_data("a", supersedes=["b"]))
    _write(tmp_path, template_data("b", supersedes=["a"]))
    with pytest.raises(ConfigError) as info:
        load_templates(tmp_path)
    assert "cycle" in info.value.reason


def test_empty_template_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_templates(tmp_path)


def test_test_writer_round_trips_through_tomllib() -> None:
    data = template_data(subject={"rdn": [{"type": "CN", "pattern": "a\\.b"}]})
    assert tomllib.loads(_toml(data)) == data


def test_template_model_refuses_renewal_period_not_below_validity() -> None:
    with pytest.raises(ValueError):
        CertificateTemplate(
            name="x", oid="2.25.1", validity=timedelta(days=1), renewal_period=timedelta(days=2)
        )
