"""revokeCert (RFC 8555 §7.6): by the issuing account, by an account authorized for every
identifier in the certificate, or signed by the certificate's own key."""

from __future__ import annotations

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.errors import Conflict
from gateway.model import CertificateStatus, RevocationReason, serial_hex
from gateway.pkix import san_strings
from protocols.acme.base import Acme, handler
from protocols.acme.messages import Problem, parse_b64_der


def _spki(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@handler
async def revoke_cert(acme: Acme, request: web.Request) -> web.Response:
    signed = await acme.authenticate(request, either=True, terms=False)
    payload = signed.payload()
    der = parse_b64_der(payload, "certificate")
    reason = payload.get("reason", None)
    if reason is not None and (
        not isinstance(reason, int)
        or isinstance(reason, bool)
        or reason not in acme.settings.revocation_reasons
    ):
        raise Problem.bad_revocation_reason(acme.settings.revocation_reasons)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise Problem.malformed("certificate is not a DER X.509 certificate") from None
    except x509.InvalidVersion as exc:  # not a ValueError in cryptography
        raise Problem.malformed(
            f"certificate has an invalid X.509 version ({exc.parsed_version}; RFC 5280 §4.1.2.1)"
        ) from None
    record = await acme.records.get_certificate(serial_hex(cert.serial_number))
    if record is None or record.der != der:
        raise Problem.malformed("the certificate was not issued by this server", 404)
    if signed.jws.kid is None:  # signed by the certificate key itself
        if _spki(signed.key) != _spki(cert.public_key()):
            raise Problem.unauthorized("the JWS key is not the certificate's key")
        actor = "acme:certificate-key"
    else:
        me = signed.require_account()
        owner = await acme.store.read(acme.repo.order_for_certificate, record.serial)
        if owner is None or owner.account_id != me.id:
            held = await acme.store.read(acme.repo.valid_identifiers, me.id, acme.now())
            names = {tuple(s.split(":", 1)) for s in san_strings(cert)}
            if not names or not names <= held:
                raise Problem.unauthorized("this account may not revoke this certificate")
        actor = f"acme:account:{me.id}"
    if record.status is CertificateStatus.REVOKED:
        raise Problem.already_revoked()
    await acme.take_nonce(request)  # before acting: a replayed request revokes nothing
    try:
        await acme.service.revoke(
            record.serial, RevocationReason(reason if reason is not None else 0), actor
        )
    except Conflict:
        raise Problem.already_revoked() from None
    return await acme.reply(request, b"", content_type="application/json")
