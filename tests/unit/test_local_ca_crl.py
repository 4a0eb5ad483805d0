"""``LocalCA.crl`` turns the inventory's revocations into a CRL signed by the issuing CA."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from backends.local_ca import LocalCA
from backends.local_ca.issuer import new_serial
from gateway.errors import ConnectorError
from gateway.model import CertificateRecord, CertificateStatus, RevocationReason, serial_hex
from gateway.ports import ConnectorContext, CRLCapable

REVOKED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class _MemoryJournal:
    async def get(self, request_id: str) -> bytes | None:
        return None

    async def put(self, request_id: str, certificate_der: bytes) -> bytes:
        return certificate_der


@pytest.fixture
async def ca(tmp_path: Path) -> AsyncIterator[LocalCA]:
    connector = LocalCA(
        ConnectorContext("local", {"crl_validity": "2d"}, tmp_path, _MemoryJournal())
    )
    await connector.start()
    yield connector
    await connector.close()


async def _issuer_name(ca: LocalCA) -> str:
    return (await ca.ca_chain())[0].subject.rfc4514_string()


def _record(
    serial: int,
    issuer: str,
    reason: RevocationReason | None = RevocationReason.KEY_COMPROMISE,
    status: CertificateStatus = CertificateStatus.REVOKED,
) -> CertificateRecord:
    return CertificateRecord(
        serial=serial_hex(serial),
        request_id=None,
        subject="CN=host.example.test",
        sans=("dns:host.example.test",),
        template="tls-server",
        template_major=1,
        requester="tester",
        not_before=REVOKED_AT - timedelta(days=10),
        not_after=REVOKED_AT + timedelta(days=80),
        status=status,
        der=b"",
        spki_sha256="00" * 32,
        issuer=issuer,
        revoked_at=REVOKED_AT if status is CertificateStatus.REVOKED else None,
        revocation_reason=reason if status is CertificateStatus.REVOKED else None,
    )


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


async def test_the_local_ca_is_crl_capable(ca: LocalCA) -> None:
    assert isinstance(ca, CRLCapable)


async def test_crl_lists_every_revoked_serial_with_its_reason(ca: LocalCA) -> None:
    issuer = await _issuer_name(ca)
    records = {
        new_serial(): RevocationReason.KEY_COMPROMISE,
        new_serial(): RevocationReason.SUPERSEDED,
        new_serial(): RevocationReason.CESSATION_OF_OPERATION,
    }
    crl = x509.load_der_x509_crl(
        await ca.crl([_record(s, issuer, reason) for s, reason in records.items()])
    )
    listed = {entry.serial_number: _reason(entry) for entry in crl}
    assert listed == {s: reason.x509_flag for s, reason in records.items()}
    assert all(entry.revocation_date_utc == REVOKED_AT for entry in crl)


async def test_unspecified_reason_is_omitted_from_the_entry(ca: LocalCA) -> None:
    issuer = await _issuer_name(ca)
    records = [_record(1001, issuer, RevocationReason.UNSPECIFIED), _record(1002, issuer, None)]
    crl = x509.load_der_x509_crl(await ca.crl(records))
    assert [_reason(entry) for entry in crl] == [None, None]


async def test_valid_certificates_and_other_issuers_are_not_listed(ca: LocalCA) -> None:
    issuer = await _issuer_name(ca)
    records = [
        _record(2001, issuer),
        _record(2002, issuer, status=CertificateStatus.VALID),
        _record(2003, "CN=Some Other CA"),
    ]
    crl = x509.load_der_x509_crl(await ca.crl(records))
    assert [entry.serial_number for entry in crl] == [2001]


async def test_crl_is_signed_by_the_issuing_ca_and_identifies_it(ca: LocalCA) -> None:
    issuing = (await ca.ca_chain())[0]
    crl = x509.load_der_x509_crl(await ca.crl([]))
    assert crl.is_signature_valid(issuing.public_key())  # type: ignore[arg-type]
    assert crl.issuer == issuing.subject
    issuer_ski = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == issuer_ski.digest
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA256)


async def test_next_update_is_last_update_plus_the_crl_validity(ca: LocalCA) -> None:
    crl = x509.load_der_x509_crl(await ca.crl([]))
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=2)
    assert abs(crl.last_update_utc - datetime.now(UTC)) < timedelta(minutes=1)


async def test_crl_numbers_strictly_increase(ca: LocalCA) -> None:
    numbers = []
    for _ in range(3):
        crl = x509.load_der_x509_crl(await ca.crl([]))
        numbers.append(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    assert numbers == sorted(set(numbers))


async def test_a_revoked_record_without_a_revocation_time_is_a_connector_error(
    ca: LocalCA,
) -> None:
    issuer = await _issuer_name(ca)
    broken = _record(3001, issuer)
    broken = CertificateRecord(**{**broken.__dict__, "revoked_at": None})
    with pytest.raises(ConnectorError, match=serial_hex(3001)):
        await ca.crl([broken])


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
async def test_openssl_reads_the_crl_and_lists_the_revoked_serials(
    ca: LocalCA, tmp_path: Path
) -> None:
    issuer = await _issuer_name(ca)
    serials = [new_serial(), new_serial()]
    (tmp_path / "crl.der").write_bytes(
        await ca.crl(
            [
                _record(serials[0], issuer, RevocationReason.KEY_COMPROMISE),
                _record(serials[1], issuer, RevocationReason.AFFILIATION_CHANGED),
            ]
        )
    )
    result = subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", tmp_path / "crl.der", "-noout", "-text",
         "-CAfile", tmp_path / "ca" / "issuing.pem"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    assert "verify OK" in text
    for serial in serials:
        assert format(serial, "X") in text.replace(":", "")
    assert "Key Compromise" in text
    assert "Affiliation Changed" in text
    assert "X509v3 CRL Number" in text
