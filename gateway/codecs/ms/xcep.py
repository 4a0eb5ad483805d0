"""MS-XCEP wire codec: the ``GetPolicies`` request and response (certificate enrollment policy).

Pure bytes -> objects -> bytes. The CEP front-end (``protocols.wstep``) renders certgate's
templates with it; the CES connector's policy import (``backends.ms_ces``) reads AD CS
templates with it.

* MS-XCEP §3.1.4.1.1.1: ``GetPolicies(client, requestFilter)``; SOAP action
  :data:`ACTION_GET_POLICIES` (response :data:`ACTION_GET_POLICIES_RESPONSE`).
* MS-XCEP §3.1.4.1.2.2 / §3.1.4.1.3.23: ``GetPoliciesResponse = response, cAs, oIDs``.
* MS-XCEP §3.1.4.1.3.1 ``Attributes``: ``commonName``, ``policySchema``,
  ``certificateValidity`` (seconds), ``permission``, ``privateKeyAttributes``, ``revision``,
  ``supersededPolicies``, and the raw MS-CRTD flag words ``privateKeyFlags``,
  ``subjectNameFlags``, ``enrollmentFlags``, ``generalFlags``, then ``extensions``.
* MS-XCEP §3.1.4.1.3.4 ``CAURI``: ``clientAuthentication`` 1 anonymous, 2 Kerberos,
  4 username/password, 8 certificate; ``uri``; ``priority``; ``renewalOnly``.
* MS-XCEP §3.1.4.1.3.16 ``OID``: ``value``, ``group`` (9 = certificate template, 6 =
  extension), ``oIDReferenceID``, ``defaultName``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from gateway.codecs.ms.soap import XSI, Envelope, q
from gateway.errors import BadRequest

XCEP = "http://schemas.microsoft.com/windows/pki/2009/01/enrollmentpolicy"
ACTION_GET_POLICIES = f"{XCEP}/IPolicy/GetPolicies"
ACTION_GET_POLICIES_RESPONSE = f"{XCEP}/IPolicy/GetPoliciesResponse"

AUTH_ANONYMOUS, AUTH_KERBEROS, AUTH_USERNAME, AUTH_CERTIFICATE = 1, 2, 4, 8
OID_GROUP_EXTENSION, OID_GROUP_TEMPLATE = 6, 9

_MAX_UINT32 = 0xFFFFFFFF


@dataclass(frozen=True)
class PolicyExtension:
    """One ``Extension`` of a policy: the extension's OID, criticality and DER ``extnValue``."""

    oid: str
    critical: bool
    value: bytes


@dataclass(frozen=True)
class Policy:
    """One enrollment policy (an AD CS template) as MS-XCEP publishes it."""

    common_name: str
    template_oid: str
    display_name: str
    schema: int
    validity_seconds: int
    renewal_seconds: int
    enroll: bool
    auto_enroll: bool
    minimal_key_length: int
    major_revision: int
    minor_revision: int
    superseded: tuple[str, ...] = ()
    private_key_flags: int = 0
    subject_name_flags: int = 0
    enrollment_flags: int = 0
    general_flags: int = 0
    extensions: tuple[PolicyExtension, ...] = ()
    ca_references: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class EnrollmentCA:
    """A ``CA`` entry: where to enroll (CES URIs with their auth type) and its certificate."""

    reference: int
    uris: tuple[
        tuple[int, str, int, bool], ...
    ]  # (clientAuthentication, uri, priority, renewalOnly)
    certificate: bytes
    enroll_permission: bool = True


@dataclass(frozen=True)
class PolicyDocument:
    """A parsed ``GetPoliciesResponse``."""

    policy_id: str
    friendly_name: str
    next_update_hours: int | None
    policies: tuple[Policy, ...]
    cas: tuple[EnrollmentCA, ...]


# -- request -----------------------------------------------------------------------------


def build_get_policies_body() -> str:
    """A ``GetPolicies`` request with no filter and no cached policy (MS-XCEP §3.1.4.1.1.1)."""
    return (
        f'<GetPolicies xmlns="{XCEP}" xmlns:xsi="{XSI}"><client>'
        '<lastUpdate xsi:nil="true"/><preferredLanguage xsi:nil="true"/></client>'
        '<requestFilter xsi:nil="true"/></GetPolicies>'
    )


def parse_get_policies(envelope: Envelope) -> None:
    """Check that the body is a ``GetPolicies`` request (its filters are advisory and
    ignored: the response always lists every template the caller may see)."""
    if envelope.body.tag != q(XCEP, "GetPolicies"):
        raise BadRequest("the body is not an xcep:GetPolicies request")


# -- response ----------------------------------------------------------------------------


def _bool(value: bool) -> str:
    return "true" if value else "false"


def build_get_policies_response_body(document: PolicyDocument) -> str:
    """Serialize a ``GetPoliciesResponse`` (MS-XCEP §3.1.4.1.1.2). OIDs are numbered in
    order of first use: each template OID, then each extension OID."""
    oids: dict[tuple[str, int], tuple[int, str]] = {}

    def ref(value: str, group: int, name: str) -> int:
        key = (value, group)
        if key not in oids:
            oids[key] = (len(oids), name)
        return oids[key][0]

    out = [f'<GetPoliciesResponse xmlns="{XCEP}" xmlns:xsi="{XSI}"><response>']
    out.append(f"<policyID>{escape(document.policy_id)}</policyID>")
    out.append(f"<policyFriendlyName>{escape(document.friendly_name)}</policyFriendlyName>")
    if document.next_update_hours is None:
        out.append('<nextUpdateHours xsi:nil="true"/>')
    else:
        out.append(f"<nextUpdateHours>{document.next_update_hours}</nextUpdateHours>")
    out.append("<policiesNotChanged>false</policiesNotChanged><policies>")
    for p in document.policies:
        template_ref = ref(p.template_oid, OID_GROUP_TEMPLATE, p.display_name)
        out.append(f"<policy><policyOIDReference>{template_ref}</policyOIDReference><cAs>")
        out.extend(f"<cAReference>{r}</cAReference>" for r in p.ca_references)
        out.append("</cAs><attributes>")
        out.append(f"<commonName>{escape(p.common_name)}</commonName>")
        out.append(f"<policySchema>{p.schema}</policySchema>")
        out.append(
            "<certificateValidity>"
            f"<validityPeriodSeconds>{p.validity_seconds}</validityPeriodSeconds>"
            f"<renewalPeriodSeconds>{p.renewal_seconds}</renewalPeriodSeconds>"
            "</certificateValidity>"
        )
        out.append(
            f"<permission><enroll>{_bool(p.enroll)}</enroll>"
            f"<autoEnroll>{_bool(p.auto_enroll)}</autoEnroll></permission>"
        )
        out.append(
            "<privateKeyAttributes>"
            f"<minimalKeyLength>{p.minimal_key_length}</minimalKeyLength>"
            '<keySpec xsi:nil="true"/><keyUsageProperty xsi:nil="true"/>'
            '<permissions xsi:nil="true"/><algorithmOIDReference xsi:nil="true"/>'
            '<cryptoProviders xsi:nil="true"/></privateKeyAttributes>'
        )
        out.append(
            f"<revision><majorRevision>{p.major_revision}</majorRevision>"
            f"<minorRevision>{p.minor_revision}</minorRevision></revision>"
        )
        if p.superseded:
            out.append("<supersededPolicies>")
            out.extend(f"<commonName>{escape(n)}</commonName>" for n in p.superseded)
            out.append("</supersededPolicies>")
        else:
            out.append('<supersededPolicies xsi:nil="true"/>')
        out.append(f"<privateKeyFlags>{p.private_key_flags}</privateKeyFlags>")
        out.append(f"<subjectNameFlags>{p.subject_name_flags}</subjectNameFlags>")
        out.append(f"<enrollmentFlags>{p.enrollment_flags}</enrollmentFlags>")
        out.append(f"<generalFlags>{p.general_flags}</generalFlags>")
        out.append(
            '<hashAlgorithmOIDReference xsi:nil="true"/><rARequirements xsi:nil="true"/>'
            '<keyArchivalAttributes xsi:nil="true"/>'
        )
        if p.extensions:
            out.append("<extensions>")
            for ext in p.extensions:
                ext_ref = ref(ext.oid, OID_GROUP_EXTENSION, "")
                out.append(
                    f"<extension><oIDReference>{ext_ref}</oIDReference>"
                    f"<critical>{_bool(ext.critical)}</critical>"
                    f"<value>{base64.b64encode(ext.value).decode()}</value></extension>"
                )
            out.append("</extensions>")
        else:
            out.append('<extensions xsi:nil="true"/>')
        out.append("</attributes></policy>")
    out.append("</policies></response><cAs>")
    for ca in document.cas:
        out.append("<cA><uris>")
        for auth, uri, priority, renewal_only in ca.uris:
            out.append(
                f"<cAURI><clientAuthentication>{auth}</clientAuthentication>"
                f"<uri>{escape(uri)}</uri><priority>{priority}</priority>"
                f"<renewalOnly>{_bool(renewal_only)}</renewalOnly></cAURI>"
            )
        out.append(
            f"</uris><certificate>{base64.b64encode(ca.certificate).decode()}</certificate>"
            f"<enrollPermission>{_bool(ca.enroll_permission)}</enrollPermission>"
            f"<cAReferenceID>{ca.reference}</cAReferenceID></cA>"
        )
    out.append("</cAs><oIDs>")
    for (value, group), (number, name) in oids.items():
        default_name = f"<defaultName>{escape(name)}</defaultName>" if name else ""
        out.append(
            f"<oID><value>{escape(value)}</value><group>{group}</group>"
            f"<oIDReferenceID>{number}</oIDReferenceID>{default_name}</oID>"
        )
    out.append("</oIDs></GetPoliciesResponse>")
    return "".join(out)


def _x(element: Element, *path: str) -> Element | None:
    return element.find("/".join(q(XCEP, p) for p in path))


def _s(element: Element, *path: str) -> str | None:
    found = _x(element, *path)
    if found is None or found.get(q(XSI, "nil")) in {"true", "1"}:
        return None
    return (found.text or "").strip()


def _int(element: Element, *path: str, default: int | None = None) -> int:
    text = _s(element, *path)
    if text is None or text == "":
        if default is None:
            raise BadRequest(f"GetPoliciesResponse: {'/'.join(path)} is missing")
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"GetPoliciesResponse: {'/'.join(path)} is not an integer") from None
    if not 0 <= value <= _MAX_UINT32:
        raise BadRequest(f"GetPoliciesResponse: {'/'.join(path)} is out of range")
    return value


def _flag(element: Element, *path: str) -> bool:
    return (_s(element, *path) or "").lower() in {"true", "1"}


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"GetPoliciesResponse: {what} is not valid base64") from None


def parse_get_policies_response(envelope: Envelope) -> PolicyDocument:
    """Read a ``GetPoliciesResponse``; :class:`BadRequest` when it is malformed."""
    root = envelope.body
    if root.tag != q(XCEP, "GetPoliciesResponse"):
        raise BadRequest("the body is not an xcep:GetPoliciesResponse")
    oids: dict[int, str] = {}
    names: dict[int, str] = {}
    for oid in root.findall(f"{q(XCEP, 'oIDs')}/{q(XCEP, 'oID')}"):
        number = _int(oid, "oIDReferenceID")
        oids[number] = _s(oid, "value") or ""
        names[number] = _s(oid, "defaultName") or ""
    policies = []
    response = _x(root, "response")
    for policy in (
        [] if response is None else response.findall(f"{q(XCEP, 'policies')}/{q(XCEP, 'policy')}")
    ):
        attrs = _x(policy, "attributes")
        if attrs is None:
            raise BadRequest("GetPoliciesResponse: a policy has no attributes")
        template_ref = _int(policy, "policyOIDReference")
        extensions = []
        for ext in attrs.findall(f"{q(XCEP, 'extensions')}/{q(XCEP, 'extension')}"):
            ext_ref = _int(ext, "oIDReference")
            if ext_ref not in oids:
                raise BadRequest(f"GetPoliciesResponse: unknown oIDReference {ext_ref}")
            extensions.append(
                PolicyExtension(
                    oids[ext_ref], _flag(ext, "critical"), _b64(_s(ext, "value"), "value")
                )
            )
        superseded = tuple(
            (n.text or "").strip()
            for n in attrs.findall(f"{q(XCEP, 'supersededPolicies')}/{q(XCEP, 'commonName')}")
        )
        common_name = _s(attrs, "commonName") or ""
        policies.append(
            Policy(
                common_name=common_name,
                template_oid=oids.get(template_ref, ""),
                display_name=names.get(template_ref) or common_name,
                schema=_int(attrs, "policySchema", default=1),
                validity_seconds=_int(attrs, "certificateValidity", "validityPeriodSeconds"),
                renewal_seconds=_int(attrs, "certificateValidity", "renewalPeriodSeconds"),
                enroll=_flag(attrs, "permission", "enroll"),
                auto_enroll=_flag(attrs, "permission", "autoEnroll"),
                minimal_key_length=_int(
                    attrs, "privateKeyAttributes", "minimalKeyLength", default=0
                ),
                major_revision=_int(attrs, "revision", "majorRevision", default=1),
                minor_revision=_int(attrs, "revision", "minorRevision", default=0),
                superseded=superseded,
                private_key_flags=_int(attrs, "privateKeyFlags", default=0),
                subject_name_flags=_int(attrs, "subjectNameFlags", default=0),
                enrollment_flags=_int(attrs, "enrollmentFlags", default=0),
                general_flags=_int(attrs, "generalFlags", default=0),
                extensions=tuple(extensions),
                ca_references=tuple(
                    int((r.text or "0").strip())
                    for r in policy.findall(f"{q(XCEP, 'cAs')}/{q(XCEP, 'cAReference')}")
                    if (r.text or "").strip().isdigit()
                ),
            )
        )
    cas = []
    for ca in root.findall(f"{q(XCEP, 'cAs')}/{q(XCEP, 'cA')}"):
        uris = tuple(
            (
                _int(u, "clientAuthentication"),
                _s(u, "uri") or "",
                _int(u, "priority", default=1),
                _flag(u, "renewalOnly"),
            )
            for u in ca.findall(f"{q(XCEP, 'uris')}/{q(XCEP, 'cAURI')}")
        )
        cas.append(
            EnrollmentCA(
                reference=_int(ca, "cAReferenceID"),
                uris=uris,
                certificate=_b64(_s(ca, "certificate"), "certificate"),
                enroll_permission=_flag(ca, "enrollPermission"),
            )
        )
    next_update = _s(root, "response", "nextUpdateHours")
    return PolicyDocument(
        policy_id=_s(root, "response", "policyID") or "",
        friendly_name=_s(root, "response", "policyFriendlyName") or "",
        next_update_hours=int(next_update) if next_update and next_update.isdigit() else None,
        policies=tuple(policies),
        cas=tuple(cas),
    )
