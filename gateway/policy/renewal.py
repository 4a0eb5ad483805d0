"""When a certificate is due for renewal, with AD CS autoenrollment semantics.

The Windows autoenrollment client renews once the remaining validity is at most the smaller of
20 % of the certificate's lifetime and the template's renewal period (``pKIOverlapPeriod``,
MS-CRTD), so never before 80 % of its life; a template major-version bump (``revision``,
MS-CRTD §2.6) or a superseding template (``msPKI-Supersede-Templates``) makes a certificate
due at once. ACME renewal information (RFC 9773 ``suggestedWindow``) opens at the same start
but ends well before ``notAfter`` (``protocols.acme.renewal_info.suggested_window``: a client
with a daily cron must not miss it), and ``certgate certs due`` lists certificates for which
:func:`is_due` holds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

from gateway.policy.extensions import TemplateExtension, read_template_extension
from gateway.policy.template import CertificateTemplate

__all__ = [
    "TemplateExtension",
    "certificate_is_due",
    "is_due",
    "read_template_extension",
    "renewal_window",
]


def renewal_window(
    not_before: datetime, not_after: datetime, template: CertificateTemplate
) -> tuple[datetime, datetime]:
    """``(start, end)`` of the renewal window of a certificate valid ``not_before..not_after``:
    ``start = not_after - min(20 % of the lifetime, template.renewal_period)``, ``end = not_after``.
    """
    lifetime = max(not_after - not_before, timedelta(0))
    overlap = min(lifetime / 5, template.renewal_period)
    return not_after - overlap, not_after


def is_due(
    cert_not_before: datetime,
    cert_not_after: datetime,
    cert_template_major: int | None,
    template: CertificateTemplate,
    now: datetime,
    superseded: bool = False,
) -> bool:
    """True if a certificate should be renewed at ``now``.

    Due when its template is ``superseded``, when ``cert_template_major`` (the major version it
    was issued under; ``None`` if unknown) is lower than ``template.major_version``, or once
    ``now`` reaches the start of :func:`renewal_window`.
    """
    if superseded:
        return True
    if cert_template_major is not None and cert_template_major < template.major_version:
        return True
    start, _ = renewal_window(cert_not_before, cert_not_after, template)
    return now >= start


def certificate_is_due(
    cert: x509.Certificate,
    template: CertificateTemplate,
    now: datetime,
    *,
    superseded: bool = False,
    template_major: int | None = None,
) -> bool:
    """:func:`is_due` for a certificate, reading its major version from the template extension
    when it names ``template`` (else ``template_major``). Raises ``ValueError`` if the extension
    is malformed."""
    ext = read_template_extension(cert)
    major = ext.major if ext is not None and ext.oid == template.oid else template_major
    return is_due(
        cert.not_valid_before_utc, cert.not_valid_after_utc, major, template, now, superseded
    )
