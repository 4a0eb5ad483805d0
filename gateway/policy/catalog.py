"""The set of templates a gateway serves, with the indexes policy needs.

Supersession follows ``msPKI-Supersede-Templates`` (MS-CRTD): if template S lists T,
certificates of T renew onto S and new enrollments for T are refused in favour of S.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gateway.errors import UnknownTemplate
from gateway.policy.template import CertificateTemplate


def catalog_problems(templates: Mapping[str, CertificateTemplate]) -> list[tuple[str, str, str]]:
    """Consistency problems of a template set as ``(template name, key path, reason)``:
    mapping keys equal names, OIDs are unique, ``supersedes`` names known templates and
    supersession has no cycles."""
    problems: list[tuple[str, str, str]] = []
    by_oid: dict[str, str] = {}
    for key, template in templates.items():
        if key != template.name:
            problems.append((key, "name", f"template {template.name!r} is registered as {key!r}"))
        other = by_oid.setdefault(template.oid, template.name)
        if other != template.name:
            problems.append(
                (template.name, "oid", f"OID {template.oid} is also template {other!r}'s")
            )
        for index, old in enumerate(template.supersedes):
            if old not in templates:
                problems.append(
                    (template.name, f"supersedes[{index}]", f"unknown template {old!r}")
                )
    for name in templates:
        if _reaches(templates, name, name):
            problems.append((name, "supersedes", "supersession forms a cycle"))
    return problems


def _reaches(templates: Mapping[str, CertificateTemplate], start: str, goal: str) -> bool:
    seen: set[str] = set()
    stack = list(templates[start].supersedes)
    while stack:
        name = stack.pop()
        if name == goal:
            return True
        if name in seen or name not in templates:
            continue
        seen.add(name)
        stack.extend(templates[name].supersedes)
    return False


@dataclass(frozen=True)
class TemplateCatalog:
    """An immutable, consistent template set: lookup by name and by OID, and successors."""

    templates: Mapping[str, CertificateTemplate]
    successors: Mapping[str, tuple[str, ...]]
    by_oid: Mapping[str, str]

    @classmethod
    def of(cls, templates: Mapping[str, CertificateTemplate]) -> TemplateCatalog:
        """Index ``templates``; raises ``ValueError`` listing any :func:`catalog_problems`."""
        problems = catalog_problems(templates)
        if problems:
            raise ValueError(
                "; ".join(f"{name}: {path}: {reason}" for name, path, reason in problems)
            )
        successors: dict[str, list[str]] = {name: [] for name in templates}
        for template in templates.values():
            for old in template.supersedes:
                successors[old].append(template.name)
        return cls(
            templates=MappingProxyType(dict(templates)),
            successors=MappingProxyType({k: tuple(sorted(v)) for k, v in successors.items()}),
            by_oid=MappingProxyType({t.oid: t.name for t in templates.values()}),
        )

    def get(self, name: str) -> CertificateTemplate:
        """The template called ``name``; raises ``UnknownTemplate``."""
        try:
            return self.templates[name]
        except KeyError:
            raise UnknownTemplate(name) from None

    def by_template_oid(self, oid: str) -> CertificateTemplate | None:
        """The template whose ``msPKI-Cert-Template-OID`` is ``oid``, if any."""
        name = self.by_oid.get(oid)
        return None if name is None else self.templates[name]

    def is_superseded(self, name: str) -> bool:
        """True if another template lists ``name`` in its ``supersedes``."""
        return bool(self.successors.get(name))

    def supersedes(self, newer: str, older: str) -> bool:
        """True if template ``newer`` replaces ``older``, directly or through a chain."""
        return newer in self.templates and _reaches(self.templates, newer, older)
