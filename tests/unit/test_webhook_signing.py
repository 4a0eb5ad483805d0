"""Standard Webhooks signatures (gateway.webhooks.signing) and the retry delay."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.webhooks import retry_delay
from gateway.webhooks.signing import headers, signature, signing_key, verify

# The Standard Webhooks specification's published test vector (also Svix's): a whsec_ secret,
# message id, timestamp and body, and the signature every conforming library computes.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_standard_webhooks_vector_is_reproduced() -> None:
    got = signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert got == VECTOR_SIGNATURE


def test_headers_carry_the_id_the_timestamp_and_the_signature() -> None:
    sent = headers(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert sent == {
        "content-type": "application/json",
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }


def test_a_plain_secret_is_its_utf8_bytes_and_a_whsec_one_the_bytes_it_encodes() -> None:
    assert signing_key("plain secret") == b"plain secret"
    assert signing_key("whsec_QUJD") == b"ABC"
    assert signing_key("whsec_not base64!") == b"whsec_not base64!"


def test_verify_accepts_the_right_signature_among_several_and_refuses_changes() -> None:
    header = f"v1,bm9wZQ== {VECTOR_SIGNATURE}"
    assert verify(VECTOR_SECRET, VECTOR_ID, "1614265330", VECTOR_BODY, header)
    assert not verify(VECTOR_SECRET, VECTOR_ID, "1614265331", VECTOR_BODY, header)
    assert not verify(VECTOR_SECRET, "msg_other", "1614265330", VECTOR_BODY, header)
    assert not verify(VECTOR_SECRET, VECTOR_ID, "1614265330", VECTOR_BODY + b" ", header)
    assert not verify("whsec_QUJD", VECTOR_ID, "1614265330", VECTOR_BODY, header)
    assert not verify(VECTOR_SECRET, VECTOR_ID, "not a number", VECTOR_BODY, header)


@given(
    attempts=st.integers(min_value=1, max_value=64),
    jitter=st.floats(min_value=0, max_value=1),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e6),
)
def test_the_retry_delay_doubles_is_jittered_to_half_and_capped(
    attempts: int, jitter: float, retry_after: float | None
) -> None:
    base, cap = timedelta(seconds=2), timedelta(minutes=10)
    wait = retry_delay(attempts, base, cap, lambda: jitter, retry_after).total_seconds()
    full = min(600.0, 2.0 * 2 ** (attempts - 1))
    assert wait <= 600.0 + 1e-6
    assert wait >= full / 2 - 1e-6
    if retry_after is None:
        assert wait <= full + 1e-6
    else:
        assert wait >= min(retry_after, 600.0) - 1e-6
