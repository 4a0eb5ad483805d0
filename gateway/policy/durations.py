"""Template durations: ``validity`` and ``renewal_period`` as ``<integer><unit>`` strings.

AD CS stores ``pKIExpirationPeriod`` and ``pKIOverlapPeriod`` as FILETIME intervals
(MS-CRTD); certgate templates spell them the way administrators say them:
``"90d"``, ``"6w"``, ``"1y"``. A year is exactly 365 days, like the AD CS template snap-in.
"""

from __future__ import annotations

import re
from datetime import timedelta

#: Seconds per unit, largest first (``format_duration`` relies on this order).
UNITS: dict[str, int] = {
    "y": 365 * 86400,
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
}

#: Longest duration a template may name; keeps ``now + validity`` far from datetime's limits.
MAX_DURATION = timedelta(days=100 * 365)

_DURATION = re.compile(r"([1-9][0-9]{0,9})([smhdwy])")


def parse_duration(text: str, minimum: timedelta | None = None) -> timedelta:
    """Parse ``"<positive integer><unit>"`` (unit ``s m h d w y``; ``y`` = 365 days).

    The one duration grammar of templates and of the gateway configuration's own durations
    (``[poller]``). Raises ``ValueError`` with a human reason for anything else, including
    zero, signs, spaces, fractions, durations longer than :data:`MAX_DURATION` and, when
    ``minimum`` is given, durations shorter than it.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: expected a positive integer followed by one of "
            "s, m, h, d, w, y (e.g. '90d', '6w', '1y')"
        )
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text!r} is longer than 100 years")
    if minimum is not None and seconds < minimum.total_seconds():
        raise ValueError(
            f"duration {text!r} is too short: must be at least {format_duration(minimum)}"
        )
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest ``<integer><unit>`` spelling of ``value`` (inverse of :func:`parse_duration`).

    ``value`` must be a positive whole number of seconds.
    """
    if value <= timedelta(0) or value.microseconds:
        raise ValueError(f"cannot format {value!r}: not a positive whole number of seconds")
    seconds = int(value.total_seconds())
    for unit, size in UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: 's' divides every whole number of seconds")
