"""The local CA's own certificates: a self-signed root and an issuing CA under it.

RFC 5280 §4.2.1.1-§4.2.1.3 and §4.2.1.9: both carry key identifiers, CA basic constraints
(the issuing CA with pathLen 0) and critical keyCertSign/cRLSign usage; the issuing CA also has
digitalSignature, so it can sign SCEP and OCSP responses itself. Both start an hour in the past
so policy may backdate leaves for clock skew.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from backends.local_ca.keystore import CASigner
from backends.local_ca.settings import LocalCASettings

_BACKDATE = timedelta(hours=1)


def ca_certificates(
    settings: LocalCASettings,
    root_key: CASigner,
    issuing_key: CASigner,
    now: datetime,
    root_urls: tuple[str, ...],
) -> tuple[x509.Certificate, x509.Certificate]:
    """(issuing, root), the issuing CA naming ``root_urls`` as caIssuers (§4.2.2.1) when
    given; valid for the settings' validities, the issuing CA never past its root."""
    root_name = _name(settings, "Root CA")
    root_not_after = now + settings.root_validity
    root = root_key.sign_certificate(
        _ca_builder(root_name, root_name, root_key, root_key, now - _BACKDATE, root_not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_usage(digital_signature=False), critical=True)
    )
    issuing_builder = (
        _ca_builder(
            _name(settings, "Issuing CA"),
            root_name,
            issuing_key,
            root_key,
            now - _BACKDATE,
            min(now + settings.issuing_validity, root_not_after),
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        # digitalSignature too: lets the issuing CA sign SCEP/OCSP responses directly.
        .add_extension(_ca_usage(digital_signature=True), critical=True)
    )
    if root_urls:
        issuing_builder = issuing_builder.add_extension(
            x509.AuthorityInformationAccess(
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(u)
                )
                for u in root_urls
            ),
            critical=False,
        )
    issuing = root_key.sign_certificate(issuing_builder)
    return (issuing, root)


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    subject_key: CASigner,
    issuer_key: CASigner,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )


def _ca_usage(*, digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _name(settings: LocalCASettings, role: str) -> x509.Name:
    attributes = []
    if settings.organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.organization))
    attributes.append(
        x509.NameAttribute(NameOID.COMMON_NAME, f"{settings.common_name_prefix} {role}")
    )
    return x509.Name(attributes)
