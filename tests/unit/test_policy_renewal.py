"""Renewal timing (AD CS autoenrollment semantics) and the renewal rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.errors import UnknownTemplate
from gateway.model import RequestKind
from gateway.policy import (
    TEMPLATE_EXTENSION_OID,
    certificate_is_due,
    decode_template_extension,
    encode_template_extension,
    is_due,
    read_template_extension,
    renewal_window,
)
from tests.unit.policy_helpers import (
    NOW,
    build_csr,
    cn,
    denial,
    dns,
    ec_key,
    engine,
    issue,
    make_template,
    plan,
    request,
)

DAY = timedelta(days=1)
T90 = make_template("t", validity="90d", renewal_period="30d", major_version=100)
T365 = make_template("y", validity="365d", renewal_period="6w")


# --- renewal_window / is_due -----------------------------------------------------------------


def test_window_opens_at_80_percent_when_that_is_later_than_the_renewal_period() -> None:
    start, end = renewal_window(NOW, NOW + 90 * DAY, T90)
    assert (start, end) == (NOW + 72 * DAY, NOW + 90 * DAY)


def test_window_opens_one_renewal_period_before_expiry_when_that_is_later() -> None:
    start, _ = renewal_window(NOW, NOW + 365 * DAY, T365)
    assert start == NOW + 365 * DAY - 42 * DAY


def test_certificate_is_not_due_before_the_window() -> None:
    assert not is_due(NOW, NOW + 90 * DAY, 100, T90, NOW + 71 * DAY)


def test_certificate_is_due_when_the_window_opens() -> None:
    assert is_due(NOW, NOW + 90 * DAY, 100, T90, NOW + 72 * DAY)


def test_major_version_bump_makes_a_certificate_due_at_once() -> None:
    assert is_due(NOW, NOW + 90 * DAY, 99, T90, NOW + DAY)


def test_unknown_major_version_falls_back_to_the_window() -> None:
    assert not is_due(NOW, NOW + 90 * DAY, None, T90, NOW + DAY)


def test_superseded_template_makes_a_certificate_due_at_once() -> None:
    assert is_due(NOW, NOW + 90 * DAY, 100, T90, NOW + DAY, superseded=True)


def test_certificate_is_due_reads_the_major_version_from_the_certificate() -> None:
    cert = issue(ec_key().public_key(), not_before=NOW, template=T90, major=99)
    assert certificate_is_due(cert, T90, NOW + DAY)


# --- template extension ----------------------------------------------------------------------


def test_template_extension_round_trips() -> None:
    oid = "2.25.329800735698586629295641978511506172918"
    assert decode_template_extension(encode_template_extension(oid, 101, 7)) == (oid, 101, 7)


def test_template_extension_round_trips_through_a_certificate() -> None:
    cert = issue(ec_key().public_key(), not_before=NOW, template=T90)
    assert read_template_extension(cert) == (T90.oid, 100, 0)


def test_certificate_without_template_extension_reads_none() -> None:
    assert read_template_extension(issue(ec_key().public_key(), not_before=NOW)) is None


def test_template_extension_without_versions_reads_zero() -> None:
    der = bytes.fromhex("3005") + bytes.fromhex("0603") + b"\x2a\x03\x04"
    assert decode_template_extension(der) == ("1.2.3.4", 0, 0)


def test_malformed_template_extension_raises_value_error() -> None:
    with pytest.raises(ValueError):
        decode_template_extension(b"\x30\x03\x02\x01")


def test_malformed_template_extension_in_a_certificate_raises_value_error() -> None:
    cert = (
        x509.CertificateBuilder()
        .subject_name(cn("x"))
        .issuer_name(cn("x"))
        .public_key(ec_key().public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + DAY)
        .add_extension(x509.UnrecognizedExtension(TEMPLATE_EXTENSION_OID, b"\x05\x00"), False)
        .sign(ec_key(), hashes.SHA256())
    )
    with pytest.raises(ValueError):
        read_template_extension(cert)


# --- renewal rules ---------------------------------------------------------------------------


def _renewal(template=T90, *, age: timedelta, major: int | None = None, key=None, **kw):  # type: ignore[no-untyped-def]
    key = key or ec_key()
    prior = issue(
        ec_key("secp256r1", 1).public_key() if kw.pop("rekey", False) else key.public_key(),
        not_before=NOW - age,
        template=kw.pop("prior_template", template),
        major=major,
    )
    csr = build_csr(key, cn("host.example.com"), dns("host.example.com"))
    return request(
        csr, template=template.name, kind=kw.pop("kind", RequestKind.RENEWAL), prior=prior, **kw
    )


def test_renewal_before_80_percent_is_refused() -> None:
    err = denial(engine(T90), _renewal(age=60 * DAY))
    assert err.rule == "renewal-window" and "not due" in err.reason


def test_renewal_after_80_percent_is_allowed() -> None:
    assert plan(engine(T90), _renewal(age=73 * DAY)).plan


def test_renewal_after_a_major_version_bump_is_allowed_early() -> None:
    assert plan(engine(T90), _renewal(age=DAY, major=99)).plan


def test_early_renewal_is_allowed_when_the_template_allows_it() -> None:
    early = make_template("t", issuance={"early_renewal": True})
    assert plan(engine(early), _renewal(early, age=DAY)).plan


def test_reenrollment_is_not_held_to_the_renewal_window() -> None:
    assert plan(engine(T90), _renewal(age=DAY, kind=RequestKind.REENROLLMENT)).plan


def test_renewal_without_prior_certificate_is_refused() -> None:
    req = request(kind=RequestKind.RENEWAL)
    assert denial(engine(T90), req).rule == "renewal-prior-signature"


def test_renewal_without_prior_certificate_passes_when_not_required() -> None:
    lax = make_template("t", issuance={"renewal_requires_prior_signature": False})
    assert plan(engine(lax), request(kind=RequestKind.RENEWAL)).plan


def test_renewal_with_a_new_key_is_refused_when_same_key_is_required() -> None:
    same = make_template("t", key_policy={"require_same_key_renewal": True})
    err = denial(engine(same), _renewal(same, age=80 * DAY, rekey=True))
    assert err.rule == "renewal-same-key"


def test_renewal_with_the_same_key_passes_when_same_key_is_required() -> None:
    same = make_template("t", key_policy={"require_same_key_renewal": True})
    assert plan(engine(same), _renewal(same, age=80 * DAY)).plan


def test_renewal_with_a_new_key_passes_by_default() -> None:
    assert plan(engine(T90), _renewal(age=80 * DAY, rekey=True)).plan


def test_renewal_of_an_unrelated_templates_certificate_is_refused() -> None:
    other = make_template("other")
    err = denial(engine(T90, other), _renewal(age=80 * DAY, prior_template=other))
    assert err.rule == "renewal-template" and "'other'" in err.reason


def test_renewal_of_a_certificate_without_template_extension_is_judged_by_the_window() -> None:
    req = _renewal(age=80 * DAY, prior_template=None)
    assert plan(engine(T90), req).plan


def test_renewal_onto_a_successor_is_due_at_once() -> None:
    old = make_template("old")
    new = make_template("new", supersedes=["old"])
    req = _renewal(new, age=DAY, prior_template=old)
    assert plan(engine(old, new), req).plan.template == "new"


# --- engine.is_due ---------------------------------------------------------------------------


def test_engine_is_due_finds_the_template_from_the_extension() -> None:
    cert = issue(ec_key().public_key(), not_before=NOW - 80 * DAY, template=T90)
    assert engine(T90).is_due(cert, NOW)


def test_engine_is_due_treats_superseded_templates_as_due() -> None:
    old = make_template("old")
    cert = issue(ec_key().public_key(), not_before=NOW, template=old)
    assert engine(old, make_template("new", supersedes=["old"])).is_due(cert, NOW + DAY)


def test_engine_is_due_without_a_known_template_raises_unknown_template() -> None:
    with pytest.raises(UnknownTemplate):
        engine(T90).is_due(issue(ec_key().public_key(), not_before=NOW), NOW)
