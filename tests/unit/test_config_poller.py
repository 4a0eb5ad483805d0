"""``[poller] interval`` and ``lease`` use the template duration grammar
(:func:`gateway.policy.parse_duration`) with minimums (issue #12 item 19): "0s" would make the
poller spin, and a zero lease would let every instance re-submit a request another instance is
still submitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError


def _load(tmp: Path, poller: str) -> Path:
    path = tmp / "certgate.toml"
    path.write_text(f"[poller]\n{poller}\n")
    return path


@pytest.mark.parametrize(
    ("line", "key", "reason"),
    [
        ('interval = "0s"', "poller.interval", "positive integer"),
        ('lease = "0s"', "poller.lease", "positive integer"),
        ('lease = "1s"', "poller.lease", "at least 2s"),
        ("interval = 0", "poller.interval", "expected a duration"),
        ("lease = 60", "poller.lease", "expected a duration"),
        ('interval = " 5s"', "poller.interval", "invalid duration"),
        ('interval = "5 s"', "poller.interval", "invalid duration"),
        ('interval = "-5s"', "poller.interval", "invalid duration"),
        ('interval = "1.5s"', "poller.interval", "invalid duration"),
        ('lease = "101y"', "poller.lease", "longer than 100 years"),
    ],
)
def test_bad_poller_durations_are_one_line_errors_naming_the_key(
    tmp_path: Path, line: str, key: str, reason: str
) -> None:
    path = _load(tmp_path, line)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.file, info.value.key_path) == (str(path), key)
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


def test_poller_durations_at_their_minimums_and_in_every_unit(tmp_path: Path) -> None:
    config = load_config(_load(tmp_path, 'interval = "1s"\nlease = "2s"'))
    assert (config.poller.interval, config.poller.lease) == (1, 2)
    config = load_config(_load(tmp_path, 'interval = "2m"\nlease = "1h"'))
    assert (config.poller.interval, config.poller.lease) == (120, 3600)


def test_poller_defaults(tmp_path: Path) -> None:
    config = load_config(_load(tmp_path, "enabled = true"))
    assert (config.poller.interval, config.poller.lease) == (5, 60)
