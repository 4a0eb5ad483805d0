"""Signing end-entity certificates and CRLs with the issuing CA key (RFC 5280).

The issuer signs exactly what policy planned (subject, key, validity, extensions) and adds only
what is bound to the issuer: SKI, AKI, and -- when configured -- CRL Distribution Points and
Authority Information Access. Everything that does not depend on the plan is encoded once;
the TBSCertificate is assembled from DER pieces (:mod:`backends.local_ca.der`) and signed, so
issuing costs little more than the signature itself.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from backends.local_ca import der
from backends.local_ca.keystore import CASigner, KeyStoreError
from gateway.errors import CAUnavailable, ConnectorError, ErrorCode
from gateway.model import (
    CertificateRecord,
    CertificateStatus,
    Denied,
    IssuancePlan,
    RevocationReason,
)
from gateway.pkix.csr import spki_der
from gateway.pkix.der import extension as encode_extension
from gateway.pkix.memo import IdentityMemo

#: Retry hint while the CA cannot sign (expired or not yet valid issuing CA, closed key).
UNAVAILABLE_RETRY_AFTER = 3600

#: Bound on the encoded-extension cache (templates x key algorithms, with room to spare).
_ENCODED_LIMIT = 1024

_NO_REASON_CODE = frozenset({RevocationReason.UNSPECIFIED, RevocationReason.REMOVE_FROM_CRL})


def new_serial() -> int:
    """A positive, non-zero 128-bit serial with 127 random bits (RFC 5280 §4.1.2.2 allows up
    to 20 octets; the top bit is fixed so every serial has the same width)."""
    return (1 << 127) | secrets.randbits(127)


class Issuer:
    """The issuing CA: ``chain`` is issuing CA first, root last."""

    def __init__(
        self,
        signer: CASigner,
        chain: tuple[x509.Certificate, ...],
        *,
        crl_urls: Sequence[str] = (),
        aia_urls: Sequence[str] = (),
        ocsp_urls: Sequence[str] = (),
        crl_validity: timedelta = timedelta(days=7),
    ) -> None:
        certificate = chain[0]
        self.chain = chain
        self.not_before = certificate.not_valid_before_utc
        self.not_after = certificate.not_valid_after_utc
        self._signer = signer
        self._name = certificate.subject
        self._name_text = certificate.subject.rfc4514_string()
        self._crl_validity = crl_validity
        self._last_crl_number = 0
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key())
        self._aki = aki
        bound: list[x509.ExtensionType] = [aki]
        owned = {ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER}
        if crl_urls:
            # One distribution point, its fullName listing alternative locations (§4.2.1.13).
            uris = [x509.UniformResourceIdentifier(url) for url in crl_urls]
            point = x509.DistributionPoint(uris, None, None, None)
            bound.append(x509.CRLDistributionPoints([point]))
            owned.add(ExtensionOID.CRL_DISTRIBUTION_POINTS)
        if aia_urls or ocsp_urls:
            # One AIA extension: the OCSP responder (id-ad-ocsp) first, then caIssuers
            # (RFC 5280 §4.2.2.1).
            access = [(AuthorityInformationAccessOID.OCSP, u) for u in ocsp_urls]
            access += [(AuthorityInformationAccessOID.CA_ISSUERS, u) for u in aia_urls]
            bound.append(
                x509.AuthorityInformationAccess(
                    x509.AccessDescription(method, x509.UniformResourceIdentifier(u))
                    for method, u in access
                )
            )
            owned.add(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
        # All issuer-bound extensions are non-critical.
        self._bound = tuple(encode_extension(x509.Extension(v.oid, False, v)) for v in bound)
        self._owned = frozenset(owned)
        self._layout = der.CertificateLayout(signer.signature_algorithm, certificate.subject)
        #: the plan's template-derived extensions are shared objects: encoded once each
        self._encoded: IdentityMemo[x509.Extension[x509.ExtensionType], bytes] = IdentityMemo(
            encode_extension, _ENCODED_LIMIT
        )

    def check(self, now: datetime) -> None:
        """Raise :class:`CAUnavailable` unless the issuing CA is within its validity."""
        if now >= self.not_after:
            raise CAUnavailable(
                f"the issuing CA {self._name_text} expired at {self.not_after.isoformat()}",
                UNAVAILABLE_RETRY_AFTER,
            )
        if now < self.not_before:
            raise CAUnavailable(
                f"the issuing CA {self._name_text} is valid only from "
                f"{self.not_before.isoformat()}",
                UNAVAILABLE_RETRY_AFTER,
            )

    def issue(self, plan: IssuancePlan, now: datetime) -> tuple[x509.Certificate, bytes] | Denied:
        """Sign ``plan`` (RFC 5280 §4.1), its validity clipped to the issuer's (§6.1.3 (a)(2));
        the certificate and its DER.

        The plan's SKI/AKI are replaced by the issuer's; its CDP/AIA are kept unless the CA
        configures its own. A plan wholly outside the issuer's validity is denied.
        """
        self.check(now)
        not_before = max(plan.not_before, self.not_before)
        not_after = min(plan.not_after, self.not_after)
        if not_after <= not_before:
            return Denied(
                ErrorCode.CA_DENIED.value,
                "the requested validity lies outside the issuing CA's validity "
                f"({self.not_before.isoformat()} .. {self.not_after.isoformat()})",
                "ca",
            )
        try:
            spki = spki_der(plan.public_key)
            oids = set()
            extensions = []
            for ext in plan.extensions:
                if ext.oid in self._owned:
                    continue
                oids.add(ext.oid)
                extensions.append(self._extension(ext))
            if len(oids) != len(extensions):
                raise ValueError("the plan repeats an extension")
            extensions.append(der.subject_key_identifier_extension(der.key_identifier(spki)))
            extensions.extend(self._bound)
            tbs = self._layout.tbs(
                serial=new_serial(),
                not_before=not_before,
                not_after=not_after,
                subject=plan.subject,
                spki_der=spki,
                extensions=extensions,
            )
            signed = self._layout.certificate(tbs, self._signer.sign_tbs(tbs))
            return x509.load_der_x509_certificate(signed), signed
        except KeyStoreError as exc:
            raise CAUnavailable(str(exc), UNAVAILABLE_RETRY_AFTER) from None
        except (ValueError, TypeError) as exc:
            # A plan the CA cannot encode (duplicate extension, unsupported key): permanent.
            raise ConnectorError(f"cannot sign request {plan.request_id}: {exc}") from None

    def _extension(self, ext: x509.Extension[x509.ExtensionType]) -> bytes:
        """``ext`` encoded; the template's shared extension objects only once each (the
        SubjectAltName, new with every request, is encoded every time)."""
        if ext.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            return encode_extension(ext)
        return self._encoded(ext)

    def crl(self, records: Sequence[CertificateRecord], now: datetime) -> bytes:
        """A full CRL (RFC 5280 §5) of the revoked ``records`` this CA issued, as DER.

        The CRL number (§5.2.3) is the signing time in milliseconds, kept strictly increasing
        within the process: monotonic across restarts and instances without shared state, as
        long as the clocks are roughly right.
        """
        number = max(int(time.time() * 1000), self._last_crl_number + 1)
        self._last_crl_number = number
        this_update = now.replace(microsecond=0)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._name)
            .last_update(this_update)
            .next_update(this_update + self._crl_validity)
            .add_extension(self._aki, critical=False)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for record in records:
            # The inventory holds every connector's certificates: list only ours.
            if record.status is not CertificateStatus.REVOKED or record.issuer != self._name_text:
                continue
            builder = builder.add_revoked_certificate(_entry(record))
        try:
            return self._signer.sign_crl(builder).public_bytes(serialization.Encoding.DER)
        except KeyStoreError as exc:
            raise CAUnavailable(str(exc), UNAVAILABLE_RETRY_AFTER) from None


def _entry(record: CertificateRecord) -> x509.RevokedCertificate:
    """One CRL entry; reasonCode is omitted for unspecified (RFC 5280 §5.3.1)."""
    if record.revoked_at is None or record.revoked_at.tzinfo is None:
        raise ConnectorError(f"revoked certificate {record.serial} has no revocation time")
    try:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(record.serial, 16))
            .revocation_date(record.revoked_at)
        )
    except ValueError:
        raise ConnectorError(f"inventory serial {record.serial!r} is not a valid serial") from None
    reason = record.revocation_reason
    # removeFromCRL belongs to delta CRLs only; such an entry stays listed, without a reason.
    if reason is not None and reason not in _NO_REASON_CODE:
        entry = entry.add_extension(x509.CRLReason(reason.x509_flag), critical=False)
    return entry.build()
