"""Certificate templates and the pure policy engine (AD CS-style, MS-CRTD).

``load_templates(conf/templates)`` -> ``PolicyEngine(templates)`` -> ``engine.plan(request,
...)`` -> :class:`PolicyDecision` (an :class:`gateway.model.IssuancePlan` plus whether a
certificate manager must approve it) or :class:`gateway.errors.PolicyDenied` naming the rule.
Renewal timing (:mod:`gateway.policy.renewal`) is shared with ACME renewal information and the
CLI. Nothing here performs I/O except the template loader reading its files.
"""

from gateway.durations import format_duration, parse_duration
from gateway.policy.catalog import TemplateCatalog
from gateway.policy.engine import PolicyDecision, PolicyEngine
from gateway.policy.extensions import (
    TEMPLATE_EXTENSION_OID,
    TemplateExtension,
    decode_template_extension,
    encode_template_extension,
    read_template_extension,
)
from gateway.policy.loader import load_template, load_templates, parse_template
from gateway.policy.renewal import certificate_is_due, is_due, renewal_window
from gateway.policy.rules import RULE_CATEGORIES, RULE_NAMES, RULES, category_of
from gateway.policy.template import (
    CertificateTemplate,
    IssuancePolicy,
    KeyPolicy,
    KeyUsagePolicy,
    Permissions,
    RdnRule,
    SanPolicy,
    SubjectPolicy,
)
from gateway.policy.vocabulary import KeyAlgorithm, SanType, SubjectSource

__all__ = [
    "RULES",
    "RULE_CATEGORIES",
    "RULE_NAMES",
    "TEMPLATE_EXTENSION_OID",
    "CertificateTemplate",
    "IssuancePolicy",
    "KeyAlgorithm",
    "KeyPolicy",
    "KeyUsagePolicy",
    "Permissions",
    "PolicyDecision",
    "PolicyEngine",
    "RdnRule",
    "SanPolicy",
    "SanType",
    "SubjectPolicy",
    "SubjectSource",
    "TemplateCatalog",
    "TemplateExtension",
    "category_of",
    "certificate_is_due",
    "decode_template_extension",
    "encode_template_extension",
    "format_duration",
    "is_due",
    "load_template",
    "load_templates",
    "parse_duration",
    "parse_template",
    "read_template_extension",
    "renewal_window",
]
