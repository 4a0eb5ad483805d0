"""``LocalCA.submit`` signs exactly the plan, plus issuer-bound extensions, once per request."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from backends.local_ca import LocalCA
from backends.local_ca.issuer import new_serial
from gateway.errors import CAUnavailable, ConnectorError, ErrorCode
from gateway.model import Denied, IssuancePlan, Issued, RevocationReason
from gateway.ports import ConnectorContext

CRL_URL = "http://pki.example.test/issuing.crl"
AIA_URL = "http://pki.example.test/issuing.crt"
DNS_NAME = "host.example.test"


class _MemoryJournal:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    async def get(self, request_id: str) -> bytes | None:
        return self.entries.get(request_id)

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return self.entries.setdefault(request_id, certificate_der)


class _RacingJournal(_MemoryJournal):
    """Another instance journals ``winner`` between our get and our put."""

    def __init__(self, winner: bytes) -> None:
        super().__init__()
        self.winner = winner

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return self.winner


class _BrokenJournal(_MemoryJournal):
    async def get(self, request_id: str) -> bytes | None:
        raise OSError("database is locked")

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        raise OSError("database is locked")


_LEAF_KEY = ec.generate_private_key(ec.SECP256R1())


def _extensions() -> tuple[x509.Extension[Any], ...]:
    values: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.SubjectAlternativeName([x509.DNSName(DNS_NAME)]), False),
    ]
    return tuple(x509.Extension(v.oid, critical, v) for v, critical in values)


def _plan(request_id: str = "req-1", **changes: Any) -> IssuancePlan:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DNS_NAME)])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .sign(_LEAF_KEY, hashes.SHA256())
    )
    now = datetime.now(UTC).replace(microsecond=0)
    plan = IssuancePlan(
        request_id=request_id,
        template="tls-server",
        template_oid="1.3.6.1.4.1.311.21.8.1.1",
        template_major=1,
        template_minor=0,
        connector="local",
        subject=subject,
        public_key=_LEAF_KEY.public_key(),
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=30),
        extensions=_extensions(),
        csr=csr,
    )
    return replace(plan, **changes)


async def _started(
    data_dir: Path, settings: dict[str, Any] | None = None, journal: Any = None
) -> LocalCA:
    ca = LocalCA(ConnectorContext("local", settings or {}, data_dir, journal or _MemoryJournal()))
    await ca.start()
    return ca


@pytest.fixture
async def ca(tmp_path: Path) -> AsyncIterator[LocalCA]:
    connector = await _started(tmp_path, {"crl_urls": [CRL_URL], "aia_urls": [AIA_URL]})
    yield connector
    await connector.close()


async def _issue(ca: LocalCA, plan: IssuancePlan | None = None) -> x509.Certificate:
    outcome = await ca.submit(plan or _plan())
    assert isinstance(outcome, Issued)
    return outcome.certificate


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(kind)


# -- what is signed ---------------------------------------------------------------------------


async def test_issued_certificate_carries_exactly_the_planned_subject_key_and_validity(
    ca: LocalCA,
) -> None:
    plan = _plan()
    cert = await _issue(ca, plan)
    assert cert.subject == plan.subject
    assert cert.public_key() == plan.public_key
    assert cert.not_valid_before_utc == plan.not_before
    assert cert.not_valid_after_utc == plan.not_after


async def test_issued_certificate_carries_every_planned_extension(ca: LocalCA) -> None:
    cert = await _issue(ca)
    for planned in _extensions():
        assert cert.extensions.get_extension_for_oid(planned.oid) == planned


async def test_subject_and_authority_key_identifiers_are_added(ca: LocalCA) -> None:
    cert = await _issue(ca)
    issuing = (await ca.ca_chain())[0]
    ski = _ext(cert, x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(_LEAF_KEY.public_key())
    issuer_ski = _ext(issuing, x509.SubjectKeyIdentifier).value.digest
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == issuer_ski


async def test_configured_crl_and_aia_urls_are_added(ca: LocalCA) -> None:
    cert = await _issue(ca)
    (point,) = _ext(cert, x509.CRLDistributionPoints).value
    assert point.full_name == [x509.UniformResourceIdentifier(CRL_URL)]
    (access,) = _ext(cert, x509.AuthorityInformationAccess).value
    assert access.access_method == AuthorityInformationAccessOID.CA_ISSUERS
    assert access.access_location == x509.UniformResourceIdentifier(AIA_URL)


async def test_without_urls_no_crl_or_aia_extension_is_added(tmp_path: Path) -> None:
    cert = await _issue(await _started(tmp_path))
    for kind in (x509.CRLDistributionPoints, x509.AuthorityInformationAccess):
        with pytest.raises(x509.ExtensionNotFound):
            _ext(cert, kind)


async def test_a_planned_authority_key_identifier_is_replaced_by_the_issuers(
    ca: LocalCA,
) -> None:
    wrong = x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None)
    plan = _plan(extensions=(*_extensions(), x509.Extension(wrong.oid, False, wrong)))
    cert = await _issue(ca, plan)
    assert _ext(cert, x509.AuthorityKeyIdentifier).value != wrong


async def test_p256_issuing_ca_signs_with_ecdsa_sha256(ca: LocalCA) -> None:
    cert = await _issue(ca)
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


# -- verification -----------------------------------------------------------------------------


async def test_issued_certificate_verifies_against_the_ca_chain(ca: LocalCA) -> None:
    cert = await _issue(ca)
    issuing, root = await ca.ca_chain()
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(DNS_NAME))
    path = verifier.verify(cert, [issuing])
    assert path == [cert, issuing, root]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
async def test_openssl_verifies_the_issued_certificate(ca: LocalCA, tmp_path: Path) -> None:
    cert = await _issue(ca)
    (tmp_path / "leaf.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    ca_dir = tmp_path / "ca"
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", ca_dir / "root.pem", "-untrusted",
         ca_dir / "issuing.pem", tmp_path / "leaf.pem"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK")


# -- serials and validity ---------------------------------------------------------------------


def test_serials_are_positive_128_bit_and_distinct() -> None:
    serials = [new_serial() for _ in range(2000)]
    assert all(s.bit_length() == 128 for s in serials)
    assert len(set(serials)) == len(serials)


async def test_issued_serials_are_random(ca: LocalCA) -> None:
    serials = [(await _issue(ca, _plan(f"req-{i}"))).serial_number for i in range(20)]
    assert len(set(serials)) == 20
    assert all(0 < s < 2**159 and s.bit_length() == 128 for s in serials)
    # 127 random bits: the low 64 bits of twenty serials are never all alike.
    assert len({s & (2**64 - 1) for s in serials}) == 20


async def test_validity_beyond_the_issuer_is_clipped_to_its_not_after(tmp_path: Path) -> None:
    ca = await _started(tmp_path, {"issuing_validity": "2d"})
    issuing = (await ca.ca_chain())[0]
    cert = await _issue(ca)
    assert cert.not_valid_after_utc == issuing.not_valid_after_utc


async def test_validity_before_the_issuer_is_clipped_to_its_not_before(ca: LocalCA) -> None:
    issuing = (await ca.ca_chain())[0]
    cert = await _issue(ca, _plan(not_before=issuing.not_valid_before_utc - timedelta(days=9)))
    assert cert.not_valid_before_utc == issuing.not_valid_before_utc


async def test_a_plan_entirely_after_the_issuer_expires_is_denied_by_the_ca(
    tmp_path: Path,
) -> None:
    ca = await _started(tmp_path, {"issuing_validity": "1d"})
    start = datetime.now(UTC) + timedelta(days=5)
    outcome = await ca.submit(_plan(not_before=start, not_after=start + timedelta(days=1)))
    assert isinstance(outcome, Denied)
    assert outcome.code == ErrorCode.CA_DENIED.value and outcome.rule == "ca"


# -- idempotency and the journal --------------------------------------------------------------


async def test_submitting_the_same_request_twice_returns_the_same_certificate(
    tmp_path: Path,
) -> None:
    journal = _MemoryJournal()
    ca = await _started(tmp_path, journal=journal)
    first = await _issue(ca, _plan("req-7"))
    again = await _issue(ca, _plan("req-7"))
    assert again == first
    assert list(journal.entries) == ["req-7"]


async def test_a_journaled_request_gets_the_journaled_certificate(
    tmp_path: Path,
) -> None:
    journal = _MemoryJournal()
    earlier = await _issue(await _started(tmp_path / "a"), _plan("req-1"))
    journal.entries["req-1"] = earlier.public_bytes(serialization.Encoding.DER)
    ca = await _started(tmp_path / "b", journal=journal)
    assert await _issue(ca, _plan("req-1")) == earlier


async def test_when_another_instance_journaled_first_its_certificate_is_returned(
    tmp_path: Path,
) -> None:
    winner = await _issue(await _started(tmp_path / "a"), _plan("req-1"))
    journal = _RacingJournal(winner.public_bytes(serialization.Encoding.DER))
    ca = await _started(tmp_path / "b", journal=journal)
    assert await _issue(ca, _plan("req-1")) == winner


async def test_sign_in_memory_journals_nothing(tmp_path: Path) -> None:
    journal = _MemoryJournal()
    ca = await _started(tmp_path, journal=journal)
    assert ca.atomic_issuance is True
    result = ca.sign(_plan("req-9"))
    assert isinstance(result, Issued)
    result.certificate.verify_directly_issued_by(result.chain[0])
    assert journal.entries == {}


async def test_a_failing_journal_makes_the_ca_unavailable(tmp_path: Path) -> None:
    ca = await _started(tmp_path, journal=_BrokenJournal())
    with pytest.raises(CAUnavailable, match="journal"):
        await ca.submit(_plan())


async def test_a_plan_the_ca_cannot_encode_is_a_connector_error(ca: LocalCA) -> None:
    duplicate = _extensions()[0]
    with pytest.raises(ConnectorError, match="req-1"):
        await ca.submit(_plan(extensions=(*_extensions(), duplicate)))


async def test_submit_before_start_reports_the_ca_unavailable(tmp_path: Path) -> None:
    ca = LocalCA(ConnectorContext("local", {}, tmp_path, _MemoryJournal()))
    with pytest.raises(CAUnavailable):
        await ca.submit(_plan())


# -- the rest of the connector ----------------------------------------------------------------


async def test_poll_is_a_connector_error_because_nothing_is_ever_pending(ca: LocalCA) -> None:
    with pytest.raises(ConnectorError, match="no pending requests"):
        await ca.poll("anything")


async def test_revoke_accepts_a_valid_serial_and_reason(ca: LocalCA) -> None:
    await ca.revoke(new_serial(), RevocationReason.KEY_COMPROMISE, datetime.now(UTC))


@pytest.mark.parametrize(
    ("serial", "reason", "when"),
    [
        (0, RevocationReason.SUPERSEDED, datetime.now(UTC)),
        (-5, RevocationReason.SUPERSEDED, datetime.now(UTC)),
        (2**159, RevocationReason.SUPERSEDED, datetime.now(UTC)),
        (True, RevocationReason.SUPERSEDED, datetime.now(UTC)),
        ("1f", RevocationReason.SUPERSEDED, datetime.now(UTC)),
        (12345, 7, datetime.now(UTC)),
        (12345, RevocationReason.REMOVE_FROM_CRL, datetime.now(UTC)),
        (12345, RevocationReason.SUPERSEDED, datetime(2024, 1, 1)),
    ],
)
async def test_revoke_refuses_invalid_arguments(
    ca: LocalCA, serial: Any, reason: Any, when: Any
) -> None:
    with pytest.raises(ConnectorError):
        await ca.revoke(serial, reason, when)


async def test_ca_chain_is_issuing_ca_then_root(ca: LocalCA) -> None:
    issuing, root = await ca.ca_chain()
    assert issuing.subject.rfc4514_string() == "CN=certgate Issuing CA"
    assert root.subject.rfc4514_string() == "CN=certgate Root CA"


def test_subject_key_identifier_matches_cryptography_for_every_key_type() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    from backends.local_ca.der import key_identifier
    from gateway.pkix.csr import spki_der

    keys = [
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        ec.generate_private_key(ec.SECP384R1()).public_key(),
        rsa.generate_private_key(65537, 2048).public_key(),
        ed25519.Ed25519PrivateKey.generate().public_key(),
    ]
    for key in keys:
        expected = x509.SubjectKeyIdentifier.from_public_key(key).digest
        assert key_identifier(spki_der(key)) == expected
