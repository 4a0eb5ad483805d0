"""Who is calling: a WS-Security UsernameToken checked against ``wstep_users``, or a TLS client
certificate (the ``Certificate`` CES endpoint), mapped to a :class:`gateway.model.Requester`.

A client certificate that this gateway issued maps to the principal it was issued to, so a
key-based renewal acts for the same identity; any other certificate the TLS layer accepted
(``[wstep.tls] client_ca``) maps to ``cert:<subject DN>``.

A UsernameToken carries the password in clear (UsernameToken profile 1.0 §4, PasswordText), so
one that arrives over plain HTTP is refused before the password is looked at, unless
``[wstep] allow_password_over_http`` says a TLS-terminating proxy is in front. Refused
passwords are audit events (``wstep.request.refused``; the username, never the password).
"""

from __future__ import annotations

import ssl
from types import MappingProxyType

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.codecs.ms.wstrust import Envelope
from gateway.errors import Unauthorized
from gateway.model import CertificateStatus, Requester, serial_hex
from gateway.pkix import fingerprint
from protocols.wstep.ports import Records
from protocols.wstep.settings import WSTEPSettings
from protocols.wstep.users import PasswordVerifier

PROTOCOL = "wstep"
_DER = Encoding.DER


def peer_certificate(request: web.Request) -> x509.Certificate | None:
    """The verified TLS client certificate, if the connection has one."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None


async def authenticate(
    request: web.Request,
    envelope: Envelope,
    settings: WSTEPSettings,
    verifier: PasswordVerifier,
    store: Records,
) -> Requester:
    """The caller as a :class:`Requester`; :class:`Unauthorized` if nobody proved anything."""
    if envelope.username is not None:
        if "username" not in settings.auth:
            raise Unauthorized("username/password authentication is disabled")
        if not request.secure and not settings.allow_password_over_http:
            await _refused(store, envelope.username, "password-over-http")
            raise Unauthorized(
                "a password (WS-Security UsernameToken) is accepted only over TLS: "
                "use the https CES endpoint that GetPolicies lists"
            )
        account = await verifier.verify(envelope.username, envelope.password or "")
        if account is None:
            await _refused(store, envelope.username, "bad-password")
            raise Unauthorized("the username or password is wrong")
        return Requester(
            protocol=PROTOCOL,
            principal=account.principal,
            auth_method="password",
            groups=frozenset(account.groups),
            verified_facts=MappingProxyType({"username": account.username}),
        )
    cert = peer_certificate(request) if "certificate" in settings.auth else None
    if cert is not None:
        facts = MappingProxyType({"client_certificate_sha256": fingerprint(cert)})
        record = await store.get_certificate(serial_hex(cert.serial_number))
        if record is not None and record.der == cert.public_bytes(_DER):
            if record.status is not CertificateStatus.VALID:
                raise Unauthorized("the client certificate is revoked")
            return Requester(PROTOCOL, record.requester, "tls-client-cert", verified_facts=facts)
        return Requester(
            PROTOCOL,
            f"cert:{cert.subject.rfc4514_string()}",
            "tls-client-cert",
            verified_facts=facts,
        )
    raise Unauthorized("authentication required: a UsernameToken or a TLS client certificate")


async def _refused(store: Records, username: str, rule: str) -> None:
    detail = {"rule": rule, "username": username[:255]}
    await store.audit("wstep.request.refused", "anonymous", detail=detail)
