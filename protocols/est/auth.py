"""Who is asking (RFC 7030 §3.2.3, §3.3.2): TLS client certificate, HTTP Basic (stored users or
one-time enrollment codes), or both, per label. The result is the :class:`Requester` that
template enrollment permissions are checked against.

* A client certificate counts for a label only if it was issued directly by one of the label's
  trust anchors (the gateway's own CA, ``"certgate"``, and/or configured bootstrap or
  manufacturer CAs; :mod:`protocols.est.client_trust`) and is inside its validity period; one
  from the gateway's CA must also be in the inventory and not revoked. The TLS handshake
  accepts any certificate (:mod:`protocols.est.tls_request`): this is the only check.
* A certificate that does not count is logged and ignored where the label accepts Basic
  (Basic is used if sent, else 401 asks for it); a certificate-only label answers 403 naming
  the label and its trust anchors.
* Basic: ``user:password`` of an ``est_users`` account; otherwise the password is tried as a
  one-time enrollment code of this label (the user name may be empty or the code's identity).
* Missing or wrong credentials: 401 with ``WWW-Authenticate`` when the label accepts Basic.
"""

from __future__ import annotations

import binascii
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from aiohttp import BasicAuth
from cryptography import x509
from cryptography.x509.oid import NameOID

from gateway.errors import PolicyDenied, Unauthorized
from gateway.model import CertificateRecord, CertificateStatus, Requester, serial_hex
from protocols.est.client_trust import (
    UntrustedCertificate,
    anchor_names,
    client_purpose_problem,
    verify_client_certificate,
)
from protocols.est.settings import LabelSettings
from protocols.est.state import Code, EstState
from protocols.est.tls import TransportFacts, directly_issued_by

log = logging.getLogger("certgate.est")

CertLookup = Callable[[str], Awaitable[CertificateRecord | None]]


@dataclass(frozen=True)
class Authenticated:
    """An authenticated EST client. ``code`` is the one-time code used (its binding to the
    CSR's key happens once the CSR is known); ``own_certificate`` is the inventory record of a
    client certificate issued by this gateway."""

    requester: Requester
    code: Code | None = None
    client_certificate: x509.Certificate | None = None
    own_certificate: CertificateRecord | None = None
    facts: dict[str, str] = field(default_factory=dict)


def principal_of(cert: x509.Certificate) -> str:
    """A certificate's principal: its CN, else the whole subject (RFC 4514)."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns and isinstance(cns[0].value, str):
        return cns[0].value
    return cert.subject.rfc4514_string() or f"serial:{serial_hex(cert.serial_number)}"


def _check_time(cert: x509.Certificate, now: datetime) -> None:
    if now > cert.not_valid_after_utc:
        raise PolicyDenied(
            "est-client-certificate",
            f"the client certificate expired at {cert.not_valid_after_utc.isoformat()}",
        )
    if now < cert.not_valid_before_utc:
        raise PolicyDenied("est-client-certificate", "the client certificate is not yet valid")


async def check_own_certificate(
    cert: x509.Certificate,
    own_chain: tuple[x509.Certificate, ...],
    lookup: CertLookup,
    now: datetime,
) -> CertificateRecord:
    """The client certificate must be one this gateway's CA issued, valid now, in the
    inventory and not revoked (RFC 7030 §3.3.2, §4.2.2)."""
    if not own_chain or not directly_issued_by(cert, own_chain[0]):
        raise PolicyDenied(
            "est-client-certificate", "the client certificate was not issued by this CA"
        )
    _check_time(cert, now)
    problem = client_purpose_problem(cert)
    if problem is not None:
        raise PolicyDenied("est-client-certificate", f"the client certificate: {problem}")
    record = await lookup(serial_hex(cert.serial_number))
    if record is None:
        raise PolicyDenied(
            "est-client-certificate", "the client certificate is not in this CA's inventory"
        )
    if record.status is CertificateStatus.REVOKED:
        raise PolicyDenied("est-client-certificate", "the client certificate is revoked")
    return record


def _basic(header: str | None) -> BasicAuth | None:
    if not header:
        return None
    try:
        return BasicAuth.decode(header)
    except (ValueError, binascii.Error):
        raise Unauthorized("malformed Authorization header (expected Basic)") from None


async def authenticate(
    *,
    label: LabelSettings,
    transport: TransportFacts,
    authorization: str | None,
    own_chain: tuple[x509.Certificate, ...],
    state: EstState,
    lookup: CertLookup,
    now: datetime,
) -> Authenticated:
    """Authenticate for ``label`` with the first method that works (certificate, then Basic)."""
    groups = frozenset(label.groups)
    cert_result: Authenticated | None = None
    cert_problem: PolicyDenied | None = None
    cert = transport.client_certificate
    accepts_basic = "basic" in label.auth
    if cert is not None and "tls-client-cert" in label.auth:
        try:
            cert_result = await _by_certificate(cert, label, own_chain, lookup, now, transport)
        except PolicyDenied as exc:
            cert_problem = exc
            log.warning(
                "EST label %s: TLS client certificate subject=%r issuer=%r serial=%s not "
                "accepted (%s); %s",
                _name(label),
                cert.subject.rfc4514_string(),
                cert.issuer.rfc4514_string(),
                serial_hex(cert.serial_number),
                exc.reason,
                "ignored, HTTP Basic decides" if accepts_basic else "refused (403)",
            )
    elif transport.client_certificate_problem and "tls-client-cert" in label.auth:
        cert_problem = PolicyDenied("est-client-certificate", transport.client_certificate_problem)
        log.warning(
            "EST label %s: %s; %s",
            _name(label),
            transport.client_certificate_problem,
            "ignored, HTTP Basic decides" if accepts_basic else "refused (403)",
        )
    credentials = _basic(authorization) if accepts_basic else None
    if credentials is not None:
        basic = await _by_basic(credentials, label, state, now)
        facts = {**(cert_result.facts if cert_result else {}), **basic.facts}
        return Authenticated(
            requester_of(
                basic.requester.principal,
                basic.requester.auth_method,
                groups | basic.requester.groups,
                tuple(facts.items()),
            ),
            code=basic.code,
            client_certificate=cert_result.client_certificate if cert_result else None,
            own_certificate=cert_result.own_certificate if cert_result else None,
            facts=facts,
        )
    if cert_result is not None:
        return cert_result
    if accepts_basic:
        unaccepted = f"{cert_problem.reason}; " if cert_problem is not None else ""
        raise Unauthorized(
            f"{unaccepted}authentication required (HTTP Basic or a TLS client certificate)"
        )
    if cert_problem is not None:
        raise cert_problem
    raise PolicyDenied(
        "est-client-certificate",
        f"label {_name(label)} requires a TLS client certificate",
    )


@functools.lru_cache(maxsize=1024)
def requester_of(
    principal: str, auth_method: str, groups: frozenset[str], facts: tuple[tuple[str, str], ...]
) -> Requester:
    """The EST requester with these attributes, one object per distinct identity: a keep-alive
    client's requests share it, so its JSON text (stored with every request) is encoded once
    rather than per request. Requesters are immutable; tests hold this equal to a fresh one."""
    return Requester("est", principal, auth_method, groups, MappingProxyType(dict(facts)))


def _name(label: LabelSettings) -> str:
    return label.label or "(default)"


async def _by_certificate(
    cert: x509.Certificate,
    label: LabelSettings,
    own_chain: tuple[x509.Certificate, ...],
    lookup: CertLookup,
    now: datetime,
    transport: TransportFacts,
) -> Authenticated:
    record = None
    anchor = None
    if label.own_ca and own_chain and directly_issued_by(cert, own_chain[0]):
        record = await check_own_certificate(cert, own_chain, lookup, now)
        anchor = own_chain[0]
    else:
        _check_time(cert, now)
        anchors = (*(own_chain[:1] if label.own_ca else ()), *label.anchors)
        try:
            anchor = verify_client_certificate(cert, label.anchors, now)
        except UntrustedCertificate as exc:
            raise PolicyDenied(
                "est-client-certificate",
                f"the client certificate (subject {cert.subject.rfc4514_string()!r}, issuer "
                f"{cert.issuer.rfc4514_string()!r}) is not accepted by label {_name(label)}: "
                f"{exc.reason}; its trust anchors are: {anchor_names(anchors)}",
            ) from None
    facts = {
        "tls_client_subject": cert.subject.rfc4514_string(),
        "tls_client_serial": serial_hex(cert.serial_number),
        "tls_client_issuer": anchor.subject.rfc4514_string(),
        "transport": transport.via,
    }
    principal = record.requester if record is not None else principal_of(cert)
    requester = Requester(
        "est", principal, "tls-client-cert", frozenset(label.groups), MappingProxyType(facts)
    )
    return Authenticated(requester, client_certificate=cert, own_certificate=record, facts=facts)


async def _by_basic(
    credentials: BasicAuth, label: LabelSettings, state: EstState, now: datetime
) -> Authenticated:
    user = (
        await state.check_user(credentials.login, credentials.password)
        if credentials.login
        else None
    )
    if user is not None:
        facts = {"basic_user": user.username}
        return Authenticated(
            Requester(
                "est", user.username, "basic", frozenset(user.groups), MappingProxyType(facts)
            ),
            facts=facts,
        )
    code = await state.get_code(credentials.password) if credentials.password else None
    if code is None or code.label != label.label or credentials.login not in ("", code.identity):
        raise Unauthorized("invalid user name, password or enrollment code")
    if code.used_at is None and now > code.expires_at:
        raise Unauthorized("the enrollment code has expired")
    facts = {"enrollment_code": code.code_hash[:16]}
    return Authenticated(
        Requester("est", code.identity, "enrollment-code", frozenset(), MappingProxyType(facts)),
        code=code,
        facts=facts,
    )
