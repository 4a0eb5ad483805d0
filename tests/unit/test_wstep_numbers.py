"""What counts as a CES request number on the wire: a plain ASCII decimal in 1..2**31-1, so
it fits the unsigned 32-bit integer cepces parses and the signed one AD CS uses."""

from __future__ import annotations

import pytest

from protocols.wstep.numbers import parse_number
from protocols.wstep.tables import MAX_REQUEST_NUMBER


@pytest.mark.parametrize(
    ("text", "number"), [("1", 1), ("61", 61), ("0065", 65), ("2147483647", MAX_REQUEST_NUMBER)]
)
def test_request_numbers_parse(text: str, number: int) -> None:
    assert parse_number(text) == number


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0",
        "-1",
        "+1",
        "2147483648",
        "4294967295",
        "12345678901",
        "1e3",
        "0x10",
        "1.0",
        " 1",
        "٣",
        "\uff11",  # fullwidth digit one
        "a" * 11,
    ],
)
def test_anything_else_is_no_request_number(text: str) -> None:
    assert parse_number(text) is None


def test_the_largest_number_fits_signed_and_unsigned_32_bit() -> None:
    assert MAX_REQUEST_NUMBER == 2**31 - 1 < 2**32 - 1
