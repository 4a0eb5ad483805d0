"""The CES front-end's one mapping from certgate errors and denials to SOAP faults is total,
and each fault renders as a schema-shaped SOAP 1.2 fault that parses back."""

from __future__ import annotations

import pytest

from gateway.codecs.ms import hresults as hr
from gateway.codecs.ms.wstrust import EnrollmentFault, build_fault, parse_reply
from gateway.errors import ErrorCode
from gateway.model import Denied
from gateway.policy import RULE_NAMES
from protocols.wstep.errors import FAULTS, fault_for, fault_for_denial, http_status


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_a_fault_with_a_known_hresult(code: ErrorCode) -> None:
    fault = fault_for(code, "why")
    assert fault.hresult in hr.BY_VALUE
    assert fault.code in {"Sender", "Receiver"}
    # WCF (AD CS CES) sends every fault, Sender or Receiver, with HTTP 500.
    assert http_status(fault) == 500
    parsed = parse_reply(build_fault(fault, relates_to="urn:uuid:x"))
    assert isinstance(parsed, EnrollmentFault)
    assert (parsed.hresult, parsed.reason, parsed.code) == (fault.hresult, "why", fault.code)


def test_the_mapping_covers_exactly_the_error_codes() -> None:
    assert set(FAULTS) == set(ErrorCode)


def test_client_errors_are_sender_faults() -> None:
    for code in (
        ErrorCode.BAD_REQUEST,
        ErrorCode.BAD_CSR,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.UNKNOWN_TEMPLATE,
        ErrorCode.NOT_FOUND,
    ):
        assert fault_for(code, "x").code == "Sender"


def test_unauthorized_carries_the_ws_security_failed_authentication_subcode() -> None:
    fault = fault_for(ErrorCode.UNAUTHORIZED, "no")
    assert fault.subcode == "o:FailedAuthentication"
    assert fault.hresult == hr.code("E_ACCESSDENIED")


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_every_policy_rule_denial_maps_to_an_enrollment_hresult(rule: str) -> None:
    fault = fault_for_denial(Denied("policy-denied", "because", rule), "rid")
    assert fault.hresult is not None and hr.BY_VALUE[fault.hresult].name.startswith(
        ("CERTSRV_E_", "CRYPT_E_")
    )
    assert fault.request_id == "rid" and rule in fault.reason


@pytest.mark.parametrize(
    ("rule", "name"),
    [
        ("rsa-key-size", "CERTSRV_E_KEY_LENGTH"),
        ("enroll-permission", "CERTSRV_E_TEMPLATE_DENIED"),
        ("cn-in-sans", "CERTSRV_E_BAD_REQUESTSUBJECT"),
        ("san-required", "CERTSRV_E_SUBJECT_ALT_NAME_REQUIRED"),
        ("manager", "CERTSRV_E_ENROLL_DENIED"),
    ],
)
def test_denials_use_the_hresult_ad_cs_uses(rule: str, name: str) -> None:
    fault = fault_for_denial(Denied("policy-denied", "x", rule), None)
    assert fault.hresult == hr.code(name)


def test_ca_denial_and_connector_failure_are_receiver_faults() -> None:
    assert fault_for_denial(Denied("ca-denied", "x", "ca"), None).code == "Receiver"
    assert fault_for_denial(Denied("connector-error", "x", "ca"), None).hresult == hr.code("E_FAIL")
