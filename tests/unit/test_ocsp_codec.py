"""The OCSP codec (gateway/pkix/ocsp.py) and the answering service without HTTP: requests as
OpenSSL and cryptography build them parse; anything else is MalformedOCSPRequest (and the
service's malformedRequest), never another exception; responses read back by cryptography."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clock import FixedClock
from gateway.errors import StoreUnavailable
from gateway.model import CertificateRecord, CertificateStatus, RevocationReason
from gateway.pkix.ocsp import (
    Good,
    MalformedOCSPRequest,
    ResponseStatus,
    Revoked,
    SingleResponse,
    Unknown,
    error_response,
    issuer_hashes,
    key_hash,
    parse_general,
    parse_request,
    parse_single,
    response_data,
    signed_response,
)
from gateway.ports import OCSPSigner
from gateway.service.ocsp import OcspService

NOW = datetime(2026, 12, 4, 3, 0, 0, tzinfo=UTC)


def _ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "codec CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


KEY, CA = _ca()
CA_DER = CA.public_bytes(Encoding.DER)


def _request(serial: int = 0x1234, algorithm: hashes.HashAlgorithm | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *_hashes(algorithm or hashes.SHA1()), serial, algorithm or hashes.SHA1()
    )
    return (
        builder.add_extension(x509.OCSPNonce(b"0123456789abcdef"), False)
        .build()
        .public_bytes(Encoding.DER)
    )


def _hashes(algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    return issuer_hashes(CA_DER).by_algorithm[algorithm.name]


def test_request_from_cryptography_parses_with_its_nonce() -> None:
    parsed = parse_request(_request())
    (cert_id,) = parsed.cert_ids
    assert cert_id.serial == 0x1234 and cert_id.hash_algorithm == "sha1"
    assert issuer_hashes(CA_DER).matches(cert_id)
    assert parsed.nonce is not None and parsed.nonce.endswith(b"0123456789abcdef")


@pytest.mark.parametrize("algorithm", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
def test_sha2_cert_ids_match_the_issuer(algorithm: hashes.HashAlgorithm) -> None:
    (cert_id,) = parse_request(_request(algorithm=algorithm)).cert_ids
    assert issuer_hashes(CA_DER).matches(cert_id)


def test_issuer_key_hash_is_over_the_key_bits_alone() -> None:
    # RFC 6960 §4.1.1: the BIT STRING's value without tag, length and unused-bits octet
    point = CA.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert issuer_hashes(CA_DER).by_algorithm["sha1"][1] == hashlib.sha1(point).digest()
    assert key_hash(CA_DER) == hashlib.sha1(point).digest()


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"garbage",
        b"\x30\x03\x02\x01\x00",
        b"\x30\x00",
        _request()[:-3],  # truncated
        _request() + b"\x00",  # trailing data
    ],
    ids=["empty", "garbage", "wrong-shape", "empty-sequence", "truncated", "trailing"],
)
def test_malformed_requests_raise_malformed(der: bytes) -> None:
    with pytest.raises(MalformedOCSPRequest):
        parse_request(der)


def test_unsupported_hash_algorithm_is_malformed() -> None:
    md5 = _request(algorithm=hashes.SHA1())
    # Swap the SHA-1 OID (1.3.14.3.2.26) for MD5's (1.2.840.113549.2.5): same shape otherwise.
    request = asn1_ocsp.OCSPRequest.load(md5)
    cert_id = request["tbs_request"]["request_list"][0]["req_cert"]
    cert_id["hash_algorithm"]["algorithm"] = "md5"
    cert_id["issuer_name_hash"] = b"\x00" * 16
    cert_id["issuer_key_hash"] = b"\x00" * 16
    with pytest.raises(MalformedOCSPRequest, match="hash algorithm"):
        parse_request(request.dump(force=True))


def test_oversized_nonce_is_malformed() -> None:
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(*_hashes(hashes.SHA1()), 5, hashes.SHA1())
        .add_extension(x509.OCSPNonce(b"n" * 129), False)
        .build()
        .public_bytes(Encoding.DER)
    )
    with pytest.raises(MalformedOCSPRequest, match="nonce"):
        parse_request(der)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_malformed(data: bytes) -> None:
    try:
        parse_request(data)
    except MalformedOCSPRequest:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(_request()) - 1), st.integers(0, 255))
def test_a_flipped_byte_raises_only_malformed(position: int, value: int) -> None:
    data = bytearray(_request())
    data[position] = value
    try:
        parse_request(bytes(data))
    except MalformedOCSPRequest:
        pass


def test_response_reads_back_in_cryptography_and_verifies() -> None:
    request = parse_request(_request())
    revoked_at = NOW - timedelta(hours=2)
    singles = [
        SingleResponse(request.cert_ids[0], Revoked(revoked_at, 1), NOW, NOW + timedelta(hours=1))
    ]
    tbs = response_data(key_hash(CA_DER), NOW, singles, request.nonce)
    algorithm = bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256

    def sign(data: bytes) -> bytes:
        return KEY.sign(data, ec.ECDSA(hashes.SHA256()))

    der = signed_response(tbs, algorithm, sign)
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == revoked_at
    assert response.revocation_reason is x509.ReasonFlags.key_compromise
    assert response.serial_number == 0x1234
    assert response.produced_at_utc == NOW
    assert response.next_update_utc == NOW + timedelta(hours=1)
    nonce = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert nonce == b"0123456789abcdef"
    CA.public_key().verify(
        response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA256())
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [(Good(), ocsp.OCSPCertStatus.GOOD), (Unknown(), ocsp.OCSPCertStatus.UNKNOWN)],
)
def test_good_and_unknown_encode(status: Good | Unknown, expected: ocsp.OCSPCertStatus) -> None:
    request = parse_request(_request())
    tbs = response_data(
        key_hash(CA_DER), NOW, [SingleResponse(request.cert_ids[0], status, NOW, None)], None
    )
    der = signed_response(tbs, bytes.fromhex("300a06082a8648ce3d040302"), lambda b: b"\x00")
    response = ocsp.load_der_ocsp_response(der)
    assert response.certificate_status is expected
    assert response.next_update_utc is None


@pytest.mark.parametrize(
    "status", [s for s in ResponseStatus if s is not ResponseStatus.SUCCESSFUL]
)
def test_error_responses_carry_only_the_status(status: ResponseStatus) -> None:
    response = ocsp.load_der_ocsp_response(error_response(status))
    assert response.response_status.value == int(status)


async def test_service_without_an_ocsp_capable_connector_answers_unauthorized() -> None:
    service = OcspService(store=None, connectors={}, clock=FixedClock(NOW),  # type: ignore[arg-type]
                          response_validity=timedelta(hours=1))  # fmt: skip
    assert not service.serves_any
    answer = await service.respond(_request())
    assert answer.status is ResponseStatus.UNAUTHORIZED
    assert (await service.respond(b"junk")).status is ResponseStatus.MALFORMED_REQUEST


# -- the fast path (cryptography) equals the general path (asn1crypto) -------------------------


def _asn1_request(
    serial: int, algorithm: str, null: bool, nonce: bytes | None, count: int = 1
) -> bytes:
    size = hashlib.new(algorithm).digest_size
    hash_algorithm = {"algorithm": algorithm}
    if null:
        hash_algorithm["parameters"] = None  # asn1crypto writes NULL for these digests
    cert_id = {
        "hash_algorithm": hash_algorithm,
        "issuer_name_hash": b"\x01" * size,
        "issuer_key_hash": b"\x02" * size,
        "serial_number": serial,
    }
    tbs: dict[str, object] = {"request_list": [{"req_cert": cert_id}] * count}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump()


@settings(max_examples=300, deadline=None)
@given(
    serial=st.integers(min_value=-(2**70), max_value=2**170),
    algorithm=st.sampled_from(["sha1", "sha256", "sha384", "sha512"]),
    null=st.booleans(),
    nonce=st.none() | st.binary(min_size=0, max_size=140),
    count=st.integers(1, 3),
)
def test_fast_path_equals_general_path(
    serial: int, algorithm: str, null: bool, nonce: bytes | None, count: int
) -> None:
    der = _asn1_request(serial, algorithm, null, nonce, count)
    fast = parse_single(der)
    try:
        general: object = parse_general(der)
    except MalformedOCSPRequest:
        general = None
    if fast is not None:
        assert fast == general
    assert parse_request(der) == general if general is not None else True


def test_fast_path_takes_the_common_request() -> None:
    assert parse_single(_request()) == parse_general(_request())
    assert parse_single(_asn1_request(5, "sha1", True, None, count=2)) is None


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(_request()) - 1), st.integers(0, 255))
def test_fast_path_on_flipped_bytes_agrees_or_defers(position: int, value: int) -> None:
    data = bytearray(_request())
    data[position] = value
    fast = parse_single(bytes(data))
    if fast is not None:
        assert fast == parse_general(bytes(data))


# -- the service over a fake inventory (no sockets) ------------------------------------------


class _Inventory:
    """Store.get_certificate only: what the OCSP service reads."""

    def __init__(self, records: dict[str, CertificateRecord], down: bool = False) -> None:
        self.records = records
        self.down = down

    async def get_certificate(self, serial: str) -> CertificateRecord | None:
        if self.down:
            raise StoreUnavailable("database down")
        return self.records.get(serial)


class _OcspCA:
    """An OCSPCapable connector whose CA key signs its responses itself."""

    async def ocsp_signer(self) -> OCSPSigner:
        algorithm = bytes.fromhex("300a06082a8648ce3d040302")  # ecdsa-with-SHA256
        return OCSPSigner(
            CA,
            CA,
            (),
            algorithm,
            lambda tbs: KEY.sign(tbs, ec.ECDSA(hashes.SHA256())),
            CA.not_valid_after_utc,
        )


def _record(serial: int, issuer: str, revoked: RevocationReason | None = None) -> CertificateRecord:
    return CertificateRecord(
        serial=format(serial, "x"),
        request_id=None,
        subject="CN=x",
        sans=(),
        template="tls-server",
        template_major=1,
        requester="alice",
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=1),
        status=CertificateStatus.REVOKED if revoked is not None else CertificateStatus.VALID,
        der=b"",
        spki_sha256="",
        issuer=issuer,
        revoked_at=NOW - timedelta(hours=1) if revoked is not None else None,
        revocation_reason=revoked,
    )


def _service(inventory: _Inventory) -> OcspService:
    return OcspService(
        inventory,  # type: ignore[arg-type]
        {"local": _OcspCA()},  # type: ignore[dict-item]
        FixedClock(NOW),
        timedelta(hours=1),
    )


async def test_service_answers_from_the_inventory() -> None:
    ours = CA.subject.rfc4514_string()
    inventory = _Inventory(
        {
            "1234": _record(0x1234, ours),
            "77": _record(0x77, ours, RevocationReason.UNSPECIFIED),
            "88": _record(0x88, "CN=another CA"),  # same serial space, another issuer
            "99": _record(0x99, ours, RevocationReason.SUPERSEDED),
        }
    )
    service = _service(inventory)
    expected = {
        0x1234: (ocsp.OCSPCertStatus.GOOD, None),
        0x77: (ocsp.OCSPCertStatus.REVOKED, None),  # unspecified: no reason code
        0x88: (ocsp.OCSPCertStatus.UNKNOWN, None),
        0x99: (ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.superseded),
        0x5555: (ocsp.OCSPCertStatus.UNKNOWN, None),
    }
    for serial, (status, reason) in expected.items():
        answer = await service.respond(_request(serial))
        response = ocsp.load_der_ocsp_response(answer.body)
        assert response.certificate_status is status, hex(serial)
        if status is ocsp.OCSPCertStatus.REVOKED:
            assert response.revocation_reason is reason
        assert answer.next_update == NOW + timedelta(hours=1) and answer.nonce


async def test_store_outage_is_try_later() -> None:
    answer = await _service(_Inventory({}, down=True)).respond(_request())
    assert answer.status is ResponseStatus.TRY_LATER
    assert ocsp.load_der_ocsp_response(answer.body).response_status.value == 3
