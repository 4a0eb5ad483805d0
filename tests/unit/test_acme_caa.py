"""The pure CAA decision (RFC 8659 §4, RFC 8657) and the certificate format negotiation
(RFC 8555 §7.4.2, RFC 9110 §12.5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.acme.caa import CaaRecord, IssueValue, evaluate, parse_issue_value
from protocols.acme.certificate import PEM_CHAIN, PKCS7, PKIX_CERT, negotiate

CA = ("certgate.example",)
ME = "https://acme.test/acme/acct/1"


def decide(*records: tuple[int, str, str], wildcard: bool = False, method: str = "dns-01") -> bool:
    found = [CaaRecord(flags, tag, value) for flags, tag, value in records]
    return evaluate(found, CA, wildcard=wildcard, account_uri=ME, method=method) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("certgate.example", IssueValue("certgate.example", {})),
        ("  CertGate.Example ; ", IssueValue("certgate.example", {})),
        (";", IssueValue(None, {})),
        ("", IssueValue(None, {})),
        (
            "ca.example; accounturi=https://a/1 ;validationmethods=dns-01,http-01",
            IssueValue(
                "ca.example",
                {"accounturi": "https://a/1", "validationmethods": "dns-01,http-01"},
            ),
        ),
        ("ca.example; AccountURI = x", IssueValue("ca.example", {"accounturi": "x"})),
        ("ca..example", None),
        ("-ca.example", None),
        ("ca.example; novalue", None),
        ("ca.example; a=1; a=2", None),
        ("ca.example; k=v w", None),  # a space inside a value
    ],
)
def test_parse_issue_value(text: str, expected: IssueValue | None) -> None:
    assert parse_issue_value(text) == expected


@given(st.text())
def test_parse_issue_value_never_raises(text: str) -> None:
    parse_issue_value(text)


def test_no_issue_property_means_no_restriction() -> None:
    assert decide()
    assert decide((0, "iodef", "mailto:a@b.example"))
    assert decide((0, "issuewild", "other.example"))  # issuewild ignored for a plain name


def test_issue_must_name_this_ca() -> None:
    assert decide((0, "issue", "certgate.example"))
    assert not decide((0, "issue", "other.example"))
    assert decide((0, "issue", "other.example"), (0, "issue", "certgate.example"))
    assert not decide((0, "issue", ";"))


def test_issuewild_replaces_issue_for_wildcards_only_when_present() -> None:
    records = ((0, "issue", "certgate.example"), (0, "issuewild", "other.example"))
    assert not decide(*records, wildcard=True)
    assert decide(*records, wildcard=False)
    assert decide((0, "issue", "certgate.example"), wildcard=True)
    assert decide(
        (0, "issue", "other.example"), (0, "issuewild", "certgate.example"), wildcard=True
    )


def test_a_critical_unknown_tag_forbids_and_a_known_one_does_not() -> None:
    assert not decide((128, "tbs", "x"), (0, "issue", "certgate.example"))
    assert decide((0, "tbs", "x"), (0, "issue", "certgate.example"))
    assert decide((128, "issue", "certgate.example"), (128, "iodef", "mailto:a@b.example"))


def test_accounturi_and_validationmethods() -> None:
    assert decide((0, "issue", f"certgate.example; accounturi={ME}"))
    assert not decide((0, "issue", f"certgate.example; accounturi={ME}/2"))
    assert decide((0, "issue", "certgate.example; validationmethods=http-01,dns-01"))
    assert not decide((0, "issue", "certgate.example; validationmethods=http-01"))
    # one record per account: any matching record authorizes
    assert decide(
        (0, "issue", f"certgate.example; accounturi={ME}/2"),
        (0, "issue", f"certgate.example; accounturi={ME}"),
    )
    # pre-authorized (no ACME method) never satisfies validationmethods
    found = [CaaRecord(0, "issue", "certgate.example; validationmethods=dns-01")]
    assert evaluate(found, CA, wildcard=False, account_uri=ME, method=None) is not None


def test_unknown_parameters_are_ignored() -> None:
    assert decide((0, "issue", "certgate.example; policy=ev; future=1"))


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, PEM_CHAIN),
        ("", PEM_CHAIN),
        ("*/*", PEM_CHAIN),
        ("application/*", PEM_CHAIN),
        (PKCS7, PKCS7),
        (PKIX_CERT, PKIX_CERT),
        ("APPLICATION/PKIX-CERT", PKIX_CERT),
        (f"{PKIX_CERT}, */*", PKIX_CERT),  # named exactly beats a wildcard at equal q
        (f"{PKIX_CERT};q=0.5, {PKCS7};q=0.7", PKCS7),
        (f"{PKIX_CERT};q=0.5, */*;q=0.7", PEM_CHAIN),
        (f"{PEM_CHAIN};q=0, */*", PKCS7),
        (f"{PKIX_CERT};q=0", None),
        ("text/html", None),
        ("text/*, image/png", None),
        (f"{PKCS7};q=abc", None),
        (f"{PKCS7}; charset=utf-8", PKCS7),
    ],
)
def test_negotiate(accept: str | None, chosen: str | None) -> None:
    assert negotiate(accept) == chosen


@given(st.text())
def test_negotiate_never_raises(accept: str) -> None:
    assert negotiate(accept) in (None, PEM_CHAIN, PKCS7, PKIX_CERT)
