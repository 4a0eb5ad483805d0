"""/simpleenroll and /simplereenroll (RFC 7030 §4.2).

simpleenroll: any authentication the label accepts; the CSR is judged by the label's template.
simplereenroll: only with a valid, unrevoked, unexpired certificate of this CA as the TLS client
certificate (§3.3.2); the CSR's Subject and SubjectAltName must equal it (§4.2.2; the
ChangeSubjectName attribute is not supported, so any difference is a 403). The same key renews,
a new key re-keys; both are ``RequestKind.RENEWAL`` with the old certificate as
``prior_certificate`` (the TLS handshake proved possession of its key), and the service marks
the old certificate superseded by the new one.
"""

from __future__ import annotations

from types import MappingProxyType

from aiohttp import web
from cryptography import x509

from gateway.errors import PolicyDenied
from gateway.model import Requester, RequestKind
from gateway.pkix.csr import spki_fingerprint
from protocols.est.auth import Authenticated, check_own_certificate
from protocols.est.context import EstContext
from protocols.est.handlers.common import (
    authenticated_csr,
    check_pop_link,
    read_csr,
    spki_of,
    submit,
)
from protocols.est.render import EstReply, outcome_reply
from protocols.est.settings import LabelSettings
from protocols.est.tls import TransportFacts


async def simpleenroll(
    request: web.Request, est: EstContext, label: LabelSettings, transport: TransportFacts
) -> EstReply:
    auth, csr = await authenticated_csr(request, est, label, transport)
    outcome = await submit(est, label, auth, auth.requester, csr)
    return outcome_reply(outcome, realm=est.settings.realm, cte_header=est.settings.send_cte_header)


async def simplereenroll(
    request: web.Request, est: EstContext, label: LabelSettings, transport: TransportFacts
) -> EstReply:
    cert = transport.client_certificate
    if cert is None and transport.client_certificate_problem:
        raise PolicyDenied("est-client-certificate", transport.client_certificate_problem)
    if cert is None:
        raise PolicyDenied(
            "est-client-certificate",
            "a client certificate must be provided for /simplereenroll (RFC 7030 §3.3.2)",
        )
    record = await check_own_certificate(cert, est.own_chain, est.store.get_certificate, est.now())
    csr = await read_csr(request, est)
    check_same_names(csr, cert)
    check_pop_link(csr, label, transport)
    rekey = spki_of(csr) != spki_fingerprint(cert.public_key())
    facts = {
        "tls_client_subject": cert.subject.rfc4514_string(),
        "tls_client_serial": record.serial,
        "transport": transport.via,
        "est_operation": "rekey" if rekey else "renew",
    }
    requester = Requester(
        "est", record.requester, "tls-client-cert", label.groups, MappingProxyType(facts)
    )
    auth = Authenticated(requester, client_certificate=cert, own_certificate=record, facts=facts)
    outcome = await submit(
        est,
        label,
        auth,
        requester,
        csr,
        kind=RequestKind.RENEWAL,
        prior=cert,
        superseded_by=record.superseded_by,
    )
    return outcome_reply(outcome, realm=est.settings.realm, cte_header=est.settings.send_cte_header)


def _sans(
    extensions: x509.Extensions,
) -> set[x509.GeneralName]:
    try:
        return set(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return set()


def check_same_names(csr: x509.CertificateSigningRequest, cert: x509.Certificate) -> None:
    """RFC 7030 §4.2.2: Subject and SubjectAltName identical to the current certificate."""
    try:
        subject, extensions = csr.subject, csr.extensions
    except ValueError as exc:
        raise PolicyDenied("csr-format", f"the CSR cannot be decoded: {exc}") from None
    if subject != cert.subject:
        raise PolicyDenied(
            "est-reenroll-names",
            f"the CSR subject {subject.rfc4514_string()!r} differs from the certificate's "
            f"{cert.subject.rfc4514_string()!r} (RFC 7030 §4.2.2)",
        )
    if _sans(extensions) != _sans(cert.extensions):
        raise PolicyDenied(
            "est-reenroll-names",
            "the CSR subjectAltName differs from the certificate's (RFC 7030 §4.2.2)",
        )
