"""The ``certgate`` command tree, built-in and plug-in: every command has help text, names an
action that exists, and says what it opens; choices typed into the light trees match the model's
enums; CLI output has one duration format, the configuration's."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import timedelta

import pytest

from gateway.cli import certs, requests
from gateway.cli.common import Opens, duration, jsonable, load_action, table
from gateway.cli.main import build_parser
from gateway.model import CertificateStatus, RequestState, RevocationReason
from gateway.policy import parse_duration


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(words, parser, help text as listed by its parent) of every (sub-)command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                yield (*path, name), child, helps.get(name)
                yield from _walk(child, (*path, name))


COMMANDS = sorted(_walk(build_parser()), key=lambda t: t[0])
LEAVES = [
    (words, parser)
    for words, parser, _ in COMMANDS
    if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)
]


def test_the_walk_sees_built_in_and_plug_in_commands() -> None:
    words = {w for w, _, _ in COMMANDS}
    assert {("audit", "list"), ("audit", "show"), ("requests", "list"), ("certs", "due")} <= words
    assert {("est", "user", "add"), ("acme", "eab", "list"), ("wstep", "user", "list")} <= words
    assert {("scep", "otp", "create"), ("scep", "ra", "show")} <= words


@pytest.mark.parametrize(("words", "parser", "help_"), COMMANDS, ids=lambda v: " ".join(v)
                         if isinstance(v, tuple) else "")  # fmt: skip
def test_every_command_and_group_has_help(
    words: tuple[str, ...], parser: argparse.ArgumentParser, help_: str | None
) -> None:
    assert help_ and help_.strip() and help_ != argparse.SUPPRESS, " ".join(words)


@pytest.mark.parametrize(("words", "parser"), LEAVES, ids=lambda v: " ".join(v)
                         if isinstance(v, tuple) else "")  # fmt: skip
def test_every_positional_argument_has_help(
    words: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    for action in parser._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"certgate {' '.join(words)}: {action.dest} has no help"


@pytest.mark.parametrize(("words", "parser"), LEAVES, ids=lambda v: " ".join(v)
                         if isinstance(v, tuple) else "")  # fmt: skip
def test_every_action_resolves_and_says_what_it_opens(
    words: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    if words == ("serve",):
        return  # main() runs the server itself
    defaults = parser._defaults
    assert "func" in defaults, " ".join(words)
    assert callable(load_action(defaults["func"]))
    assert isinstance(defaults.get("opens", Opens.GATEWAY), Opens)


def test_listings_open_only_the_store() -> None:
    opens = {w: p._defaults.get("opens", Opens.GATEWAY) for w, p in LEAVES}
    for words in (("requests", "list"), ("certs", "list"), ("audit", "list"), ("audit", "show")):
        assert opens[words] is Opens.STORE
    for words in (("requests", "approve"), ("enroll",), ("certs", "revoke"), ("ca", "show")):
        assert opens[words] is Opens.GATEWAY


def test_choices_in_the_light_trees_match_the_model() -> None:
    assert requests.REQUEST_STATES == tuple(s.value for s in RequestState)
    assert certs.CERTIFICATE_STATUSES == tuple(s.value for s in CertificateStatus)
    assert certs.REVOCATION_REASONS == tuple(
        r.name.lower().replace("_", "-") for r in RevocationReason
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=90), "90d"),
        (timedelta(days=365), "1y"),
        (timedelta(weeks=6), "6w"),
        (timedelta(hours=12), "12h"),
        (90, "90s"),
        (600, "10m"),
        (0, "0s"),
        (timedelta(seconds=1.5), "1s"),
    ],
)
def test_one_duration_format_the_configuration_reads(value: timedelta | int, text: str) -> None:
    assert duration(value) == text
    if text != "0s":
        assert parse_duration(text).total_seconds() == int(
            value.total_seconds() if isinstance(value, timedelta) else value
        )


def test_json_renders_durations_and_timestamps_one_way() -> None:
    from datetime import UTC, datetime

    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert jsonable({"validity": timedelta(days=90), "at": at}) == {
        "validity": "90d",
        "at": "2030-01-02T03:04:05+00:00",
    }


def test_an_empty_table_still_has_its_headers() -> None:
    assert table([], ["ID", "EVENT"]).splitlines() == ["ID  EVENT", "--  -----"]
