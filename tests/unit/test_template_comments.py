"""The shipped templates document what their keys do (issue #12 item 19): the comment above a
key is the administrator's only manual, so it must agree with the rule that reads the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import load_templates

SHIPPED = Path(__file__).resolve().parents[2] / "conf" / "templates"

#: What ``issuance.early_renewal`` does (rule renewal-window, tested in test_policy_renewal.py),
#: as every shipped template says.
EARLY_RENEWAL = (
    "# true: a renewal signed with the prior certificate is issued even before that certificate",
    "# is due; false: it is refused (rule renewal-window) until the renewal window opens. [false]",
)

#: What ``key_policy.relax_key_hygiene`` may and may not relax (rule key-weak).
RELAX_KEY_HYGIENE = (
    "# Known-weak keys (RSA exponent below 65537 or even, Fermat-factorable, ROCA, shared or",
    "# small prime factors, Wiener) are refused on every template (rule key-weak, CA/B BR",
    "# 6.1.1.3) and no key relaxes that. true lifts only the non-security recommendation that an",
    "# RSA exponent be at most 2^256 - 1 (BR 6.1.6). [false]",
)


def _comment_above(path: Path, key: str) -> tuple[str, ...]:
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{key} = "))
    start = index
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1
    return tuple(lines[start:index])


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.toml")), ids=lambda p: p.stem)
def test_early_renewal_comment_says_what_the_key_does(path: Path) -> None:
    comment = _comment_above(path, "early_renewal")
    assert comment[-len(EARLY_RENEWAL) :] == EARLY_RENEWAL, comment


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.toml")), ids=lambda p: p.stem)
def test_relax_key_hygiene_is_documented_and_off(path: Path) -> None:
    assert _comment_above(path, "relax_key_hygiene") == RELAX_KEY_HYGIENE
    assert not load_templates(SHIPPED)[path.stem].key_policy.relax_key_hygiene
