"""The EST error mapping is total over ErrorCode, and outcomes render per RFC 7030 §4.2.3."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from gateway.errors import CAUnavailable, ErrorCode, PolicyDenied, RuleCategory, Unauthorized
from gateway.model import Denied, Issued, Pending, PendingReason
from gateway.policy import RULE_CATEGORIES, RULE_NAMES
from protocols.est.render import (
    STATUS,
    denied_reply,
    error_reply,
    exception_reply,
    is_csr_rule,
    issued_reply,
    outcome_reply,
)
from tests.pki_helpers import self_signed


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_an_est_status_and_a_text_reason(code: ErrorCode) -> None:
    reply = error_reply(code, "because", realm="r")
    assert reply.status == STATUS[code] and 400 <= reply.status <= 599
    assert reply.content_type == "text/plain" and reply.body == b"because\n"
    if reply.status == 401:
        assert reply.headers["WWW-Authenticate"] == 'Basic realm="r"'
    if reply.status == 503:
        assert reply.headers["Retry-After"].isdigit()


def test_unauthorized_carries_the_basic_challenge() -> None:
    reply = exception_reply(Unauthorized("who are you"), realm="certgate EST")
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="certgate EST"'


def test_ca_unavailable_is_503_with_its_retry_after() -> None:
    reply = exception_reply(CAUnavailable("down", retry_after=42), realm="r")
    assert (reply.status, reply.headers["Retry-After"]) == (503, "42")


def test_policy_exception_is_403_naming_the_rule() -> None:
    reply = exception_reply(PolicyDenied("est-pop-link", "mismatch"), realm="r")
    assert reply.status == 403 and reply.body == b"est-pop-link: mismatch\n"


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_csr_rules_are_400_and_other_rules_403(rule: str) -> None:
    reply = denied_reply(Denied("policy-denied", "no", rule), realm="r")
    csr_rule = RULE_CATEGORIES[rule] is RuleCategory.CSR  # by category, never a name prefix
    assert is_csr_rule(rule) is csr_rule
    assert reply.status == (400 if csr_rule else 403)
    assert rule.encode() in reply.body


def test_ca_denial_is_403_and_connector_failure_502() -> None:
    assert denied_reply(Denied("ca-denied", "no", "ca"), realm="r").status == 403
    assert denied_reply(Denied("connector-error", "boom", "ca"), realm="r").status == 502


def test_pending_is_202_with_integer_retry_after() -> None:
    reply = outcome_reply(Pending("id-1", 60, PendingReason.APPROVAL), realm="r", cte_header=True)
    assert reply.status == 202 and reply.headers["Retry-After"] == "60"
    assert b"id-1" in reply.body


def test_issued_is_certs_only_with_only_the_issued_certificate() -> None:
    _, leaf = self_signed("leaf")
    _, ca = self_signed("ca")
    reply = outcome_reply(Issued(leaf, (ca,)), realm="r", cte_header=True)
    assert reply.status == 200
    assert reply.content_type == "application/pkcs7-mime; smime-type=certs-only"
    assert reply.headers["Content-Transfer-Encoding"] == "base64"
    certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode(b"".join(reply.body.split())))
    assert certs == [leaf]


def test_cte_header_can_be_switched_off() -> None:
    _, leaf = self_signed()
    reply = outcome_reply(Issued(leaf, ()), realm="r", cte_header=False)
    assert "Content-Transfer-Encoding" not in reply.headers


def test_the_reply_from_the_cas_der_equals_the_reply_from_the_certificate() -> None:
    # outcome_reply answers with the DER the CA produced (Issued.der); the plain path encodes
    # the certificate object again
    _, leaf = self_signed("leaf")
    der = leaf.public_bytes(Encoding.DER)
    fast = outcome_reply(Issued(leaf, (), der), realm="r", cte_header=True)
    plain = issued_reply(leaf, cte_header=True)
    assert (fast.status, fast.body, fast.content_type, fast.headers) == (
        plain.status,
        plain.body,
        plain.content_type,
        plain.headers,
    )
    assert outcome_reply(Issued(leaf, ()), realm="r", cte_header=True).body == plain.body
