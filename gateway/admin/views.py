"""Records as the admin API and console show them (JSON data), and their JSON Schemas.

One rendering per record, shared by the API (:mod:`gateway.admin.operations`) and the console:
timestamps in ISO 8601, enums by value, no DER (a certificate's PEM has its own operation), no
secret ever. The schemas go into the OpenAPI document (``components.schemas``), so a client or
a schema-checking test sees exactly what these functions produce.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from gateway.admin.plain import plain
from gateway.model import AuditEvent, CertificateRecord, RequestRecord
from gateway.pkix import san_strings
from gateway.policy import CertificateTemplate


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def request_view(r: RequestRecord) -> dict[str, Any]:
    """A request in a listing."""
    return {
        "id": r.id,
        "protocol": r.protocol,
        "transaction_id": r.transaction_id,
        "template": r.template,
        "kind": r.kind.value,
        "state": r.state.value,
        "pending_reason": None if r.pending_reason is None else r.pending_reason.value,
        "requester": r.requester.principal,
        "auth_method": r.requester.auth_method,
        "connector": r.connector,
        "denial_code": r.denial_code,
        "denial_rule": r.denial_rule,
        "denial_detail": r.denial_detail,
        "certificate_serial": r.certificate_serial,
        "prior_serial": r.prior_serial,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.updated_at),
    }


def key_view(key: Any) -> dict[str, Any]:
    """``{"type": "RSA", "size": 2048}``, ``{"type": "EC", "curve": "secp256r1", "size": 256}``."""
    if isinstance(key, rsa.RSAPublicKey):
        return {"type": "RSA", "size": key.key_size}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"type": "EC", "curve": key.curve.name, "size": key.curve.key_size}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"type": "Ed25519", "size": 256}
    if isinstance(key, ed448.Ed448PublicKey):
        return {"type": "Ed448", "size": 456}
    if isinstance(key, dsa.DSAPublicKey):
        return {"type": "DSA", "size": key.key_size}
    return {"type": type(key).__name__}


def csr_view(csr_der: bytes) -> dict[str, Any]:
    """What a certificate manager judges: the CSR's subject, SANs and key."""
    try:
        csr = x509.load_der_x509_csr(csr_der)
        subject = csr.subject.rfc4514_string()
    except ValueError:
        return {"subject": None, "sans": [], "key": {"type": "unreadable"}}
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sans = list(san_strings(ext.value))
    except (x509.ExtensionNotFound, ValueError):
        sans = []
    try:
        key = key_view(csr.public_key())
    except (ValueError, TypeError):  # unsupported algorithm
        key = {"type": "unsupported"}
    return {"subject": subject, "sans": sans, "key": key}


def certificate_view(c: CertificateRecord, now: datetime) -> dict[str, Any]:
    status = c.status.value
    if status == "valid" and c.not_after <= now:
        status = "expired"
    return {
        "serial": c.serial,
        "request_id": c.request_id,
        "subject": c.subject,
        "sans": list(c.sans),
        "template": c.template,
        "template_major": c.template_major,
        "requester": c.requester,
        "issuer": c.issuer,
        "not_before": iso(c.not_before),
        "not_after": iso(c.not_after),
        "status": status,
        "revoked_at": iso(c.revoked_at),
        "revocation_reason": (
            None if c.revocation_reason is None else c.revocation_reason.name.lower()
        ),
        "superseded_by": c.superseded_by,
        "spki_sha256": c.spki_sha256,
    }


def audit_view(e: AuditEvent) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": iso(e.at),
        "event": e.event,
        "actor": e.actor,
        "request_id": e.request_id,
        "serial": e.serial,
        "detail": plain(e.detail),
    }


def template_summary(t: CertificateTemplate) -> dict[str, Any]:
    """The rules a certificate manager checks a request against, in brief."""
    return {
        "name": t.name,
        "display_name": t.display_name,
        "validity": plain(t.validity),
        "renewal_period": plain(t.renewal_period),
        "manager_approval": t.issuance.manager_approval,
        "connector": t.connector,
        "subject_source": plain(t.subject.source),
        "key_algorithms": plain(t.key_policy.algorithms),
        "min_rsa_bits": t.key_policy.min_rsa_bits,
        "curves": plain(t.key_policy.curves),
        "san_types": plain(t.san.types),
        "dns_suffixes": list(t.san.dns_suffixes),
        "max_sans": t.san.max_count,
        "enroll": list(t.permissions.enroll),
    }


def template_view(t: CertificateTemplate) -> dict[str, Any]:
    """Every setting of a template."""
    return {"summary": template_summary(t), "settings": plain(t)}


# --- JSON Schemas ---------------------------------------------------------------------------

_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}


def page_schema(item_ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": item_ref}},
            "next": {"type": ["string", "null"]},
        },
    }


def _object(properties: Mapping[str, Any], required: bool = True) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(properties) if required else [],
        "properties": dict(properties),
    }


REQUEST_SCHEMA = _object(
    {
        "id": _STR,
        "protocol": _STR,
        "transaction_id": _STR,
        "template": _STR,
        "kind": _STR,
        "state": {"type": "string", "enum": ["received", "pending", "issued", "denied", "failed"]},
        "pending_reason": {"type": ["string", "null"]},
        "requester": _STR,
        "auth_method": _STR,
        "connector": _OPT_STR,
        "denial_code": _OPT_STR,
        "denial_rule": _OPT_STR,
        "denial_detail": _OPT_STR,
        "certificate_serial": _OPT_STR,
        "prior_serial": _OPT_STR,
        "created_at": _TIME,
        "updated_at": _TIME,
    }
)
KEY_SCHEMA = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": _STR, "size": {"type": "integer"}, "curve": _STR},
}
CSR_SCHEMA = _object(
    {"subject": _OPT_STR, "sans": {"type": "array", "items": _STR}, "key": KEY_SCHEMA}
)
CERTIFICATE_SCHEMA = _object(
    {
        "serial": _STR,
        "request_id": _OPT_STR,
        "subject": _STR,
        "sans": {"type": "array", "items": _STR},
        "template": _STR,
        "template_major": {"type": "integer"},
        "requester": _STR,
        "issuer": _STR,
        "not_before": _TIME,
        "not_after": _TIME,
        "status": {"type": "string", "enum": ["valid", "expired", "revoked"]},
        "revoked_at": _OPT_TIME,
        "revocation_reason": _OPT_STR,
        "superseded_by": _OPT_STR,
        "spki_sha256": _STR,
    }
)
AUDIT_SCHEMA = _object(
    {
        "id": {"type": "integer"},
        "at": _TIME,
        "event": _STR,
        "actor": _STR,
        "request_id": _OPT_STR,
        "serial": _OPT_STR,
        "detail": {"type": "object"},
    }
)
TEMPLATE_SUMMARY_SCHEMA = {
    "type": "object",
    "required": ["name", "validity", "manager_approval", "connector"],
    "properties": {
        "name": _STR,
        "display_name": _STR,
        "validity": _STR,
        "renewal_period": _STR,
        "manager_approval": {"type": "boolean"},
        "connector": _STR,
    },
}
TEMPLATE_SCHEMA = _object({"summary": TEMPLATE_SUMMARY_SCHEMA, "settings": {"type": "object"}})
TOKEN_SCHEMA = _object(
    {
        "name": _STR,
        "role": {"type": "string", "enum": ["viewer", "approver", "admin"]},
        "state": {"type": "string", "enum": ["active", "expired", "revoked"]},
        "created_at": _TIME,
        "created_by": _STR,
        "expires_at": _OPT_TIME,
        "revoked_at": _OPT_TIME,
        "last_used_at": _OPT_TIME,
    }
)

#: ``components.schemas`` of the OpenAPI document (referenced as ``#/components/schemas/X``).
SCHEMAS: dict[str, Any] = {
    "Request": REQUEST_SCHEMA,
    "Csr": CSR_SCHEMA,
    "Certificate": CERTIFICATE_SCHEMA,
    "AuditEvent": AUDIT_SCHEMA,
    "TemplateSummary": TEMPLATE_SUMMARY_SCHEMA,
    "Template": TEMPLATE_SCHEMA,
    "Token": TOKEN_SCHEMA,
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}
