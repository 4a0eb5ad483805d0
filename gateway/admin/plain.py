"""Templates, audit details and other records as JSON data: one spelling for the admin API and
the CLI (durations as the configuration writes them, OIDs dotted, sets sorted). Light on
imports: ``certgate templates show`` uses it without loading the API's views."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from gateway.durations import format_duration


def plain(value: Any) -> Any:
    """Any template or detail value as JSON data (not dataclasses.asdict: it deep-copies
    read-only mappings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        return format_duration(timedelta(seconds=seconds)) if seconds > 0 else "0s"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, x509.ObjectIdentifier):
        return value.dotted_string
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    return value
