"""Property tests: every MS-WSTEP/MS-XCEP parser turns arbitrary input into a value or
BadRequest, never another exception (so the front-end never answers 500)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codecs.ms.cms import open_signed_request
from gateway.codecs.ms.wstrust import (
    build_envelope,
    parse_envelope,
    parse_reply,
    parse_request,
)
from gateway.codecs.ms.xcep import parse_get_policies_response
from gateway.errors import BadRequest
from tests.wstep_helpers import VECTORS

XMLISH = st.one_of(
    st.binary(max_size=400),
    st.text(alphabet="<>/=\"' abcsxmln:&;#!-[]", max_size=300).map(str.encode),
)


def _envelope_with(body: str) -> bytes:
    return build_envelope("urn:x", body)


@given(XMLISH)
@settings(max_examples=300, deadline=None)
def test_parse_reply_raises_only_bad_request(data: bytes) -> None:
    try:
        parse_reply(data)
    except BadRequest:
        pass


@given(XMLISH)
@settings(max_examples=300, deadline=None)
def test_parse_request_raises_only_bad_request(data: bytes) -> None:
    try:
        parse_request(parse_envelope(data))
    except BadRequest:
        pass


@given(st.text(alphabet="<>/=\"' abcTokenRequestIDxmlns:&;", max_size=200))
@settings(max_examples=200, deadline=None)
def test_request_bodies_inside_valid_envelopes_raise_only_bad_request(body: str) -> None:
    try:
        parse_request(parse_envelope(_envelope_with(body)))
    except BadRequest:
        pass


@given(st.integers(min_value=0, max_value=3000), st.binary(min_size=1, max_size=8))
@settings(max_examples=200, deadline=None)
def test_mutated_policy_responses_raise_only_bad_request(offset: int, junk: bytes) -> None:
    data = bytearray((VECTORS / "get_policies_response.xml").read_bytes())
    at = offset % len(data)
    data[at : at + len(junk)] = junk
    try:
        parse_get_policies_response(parse_envelope(bytes(data)))
    except BadRequest:
        pass


@given(st.binary(max_size=600))
@settings(max_examples=300, deadline=None)
def test_open_signed_request_raises_only_bad_request(data: bytes) -> None:
    try:
        open_signed_request(data)
    except BadRequest:
        pass
