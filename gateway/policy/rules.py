"""The named policy rules, in pipeline order.

Every denial names one of these rules (``PolicyDenied.rule``); the audit trail and the approval
queue use the name, so names are stable kebab-case. Each rule declares its
:class:`gateway.errors.RuleCategory`, which the denial carries and by which each protocol
renders it (:func:`category_of` finds it again for a recorded denial, which keeps the name).
Shaping (:mod:`gateway.policy.shape`) sits between the check and validate stages and never
denies.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.errors import RuleCategory
from gateway.policy.context import Facts, Rule, Shaped
from gateway.policy.rules_renewal import ENFORCE_RULES, RENEWAL_RULES
from gateway.policy.rules_request import AUTHORIZE_RULES, CHECK_RULES
from gateway.policy.rules_san import SAN_RULES
from gateway.policy.rules_subject import SUBJECT_RULES

#: Rules that judge the request itself (authorize, check stages).
REQUEST_RULES: tuple[Rule[Facts], ...] = AUTHORIZE_RULES + CHECK_RULES

#: Rules that judge the shaped certificate (validate, enforce stages).
PLAN_RULES: tuple[Rule[Shaped], ...] = SUBJECT_RULES + SAN_RULES + RENEWAL_RULES + ENFORCE_RULES

#: Every rule, in the order the engine applies them.
RULES: tuple[Rule[Any], ...] = (*REQUEST_RULES, *PLAN_RULES)

#: Every rule name, in pipeline order.
RULE_NAMES: tuple[str, ...] = tuple(rule.name for rule in RULES)

if len(set(RULE_NAMES)) != len(RULE_NAMES):  # pragma: no cover - a programming error
    raise AssertionError("policy rule names must be unique")

#: Every rule's category, by rule name.
RULE_CATEGORIES: Mapping[str, RuleCategory] = MappingProxyType(
    {rule.name: rule.category for rule in RULES}
)


def category_of(rule: str | None) -> RuleCategory | None:
    """The category of the policy rule called ``rule``; ``None`` for a name that is not a
    policy rule (``"ca"``, ``"manager"``, a front-end's own check such as
    ``"est-client-certificate"``) or no name at all."""
    return None if rule is None else RULE_CATEGORIES.get(rule)
