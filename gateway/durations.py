"""The one duration grammar: ``<integer><unit>`` strings, with a minimum per use.

Templates (``validity``, ``renewal_period``), the gateway configuration (``[server]`` timeouts,
``[poller]``), the front-ends' and connectors' tables and the CLI's duration options
(``--ttl 30m``, ``--since 12h``) all spell a duration the way administrators say it: ``"90d"``,
``"6w"``, ``"1y"``. The units are ``s m h d w y``; a year is exactly 365 days, like the AD CS
template snap-in (MS-CRTD ``pKIExpirationPeriod`` is a FILETIME interval). No signs, spaces,
fractions, leading zeros or bare numbers (a bare ``60`` does not say its unit), and nothing
longer than :data:`MAX_DURATION`.

Each use names its minimum: by default a duration must be positive (:data:`POSITIVE`); a key
for which zero means "at once" (ACME ``caa_recheck_after = "0s"``) passes ``minimum=ZERO``.
"""

from __future__ import annotations

import re
from datetime import timedelta

from gateway.errors import BadRequest

#: Seconds per unit, largest first (``format_duration`` relies on this order).
UNITS: dict[str, int] = {
    "y": 365 * 86400,
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
}

#: Longest duration anything may name; keeps ``now + validity`` far from datetime's limits.
MAX_DURATION = timedelta(days=100 * 365)
#: The default minimum: one second (zero is refused).
POSITIVE = timedelta(seconds=1)
#: The minimum of durations for which ``"0s"`` means "at once".
ZERO = timedelta(0)

_DURATION = re.compile(r"(0|[1-9][0-9]{0,9})([smhdwy])")
_EXPECTED = "an integer followed by one of s, m, h, d, w, y (e.g. '30s', '90d', '1y')"


def parse_duration(text: str, minimum: timedelta = POSITIVE) -> timedelta:
    """Parse ``"<integer><unit>"`` into a ``timedelta`` of at least ``minimum``.

    Raises ``ValueError`` with a one-line human reason for anything else: a malformed
    string, zero when ``minimum`` is positive, a duration shorter than ``minimum`` or longer
    than :data:`MAX_DURATION`.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid duration {text!r}: expected {_EXPECTED}")
    seconds = int(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text!r} is longer than 100 years")
    if seconds < minimum.total_seconds():
        if seconds == 0:
            raise ValueError(
                f"duration {text!r} is zero: expected a positive integer followed by one of "
                f"s, m, h, d, w, y, at least {format_duration(minimum)}"
            )
        raise ValueError(
            f"duration {text!r} is too short: must be at least {format_duration(minimum)}"
        )
    return timedelta(seconds=seconds)


def duration_option(text: str, option: str, minimum: timedelta = POSITIVE) -> timedelta:
    """A CLI option's duration (``--ttl 30m``); raises :class:`BadRequest` naming the option."""
    try:
        return parse_duration(text, minimum)
    except ValueError as exc:
        raise BadRequest(f"{option}: {exc}") from None


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
