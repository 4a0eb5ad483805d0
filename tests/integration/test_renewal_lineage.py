# ruff: noqa: F811  (pytest fixtures imported from tests.acme_fixtures)
"""Issue #12 item 1, "same audit for every protocol's renewal path": an ACME order with
``replaces`` (RFC 9773 §5) goes through the same service path as SCEP and EST renewals -- the
new request records the replaced certificate as prior, the replaced certificate is marked
superseded, and both facts are in the audit trail. (SCEP: tests/integration/test_scep_trust.py;
EST simplereenroll: tests/interop/test_est_curl.py.)"""

from __future__ import annotations

from cryptography import x509

from gateway.model import serial_hex
from gateway.server.app import components_of
from protocols.acme.messages import certificate_cert_id
from tests.acme_fixtures import client, make_client  # noqa: F401
from tests.acme_helpers import Client


async def test_acme_replacement_records_prior_supersedes_it_and_audits(client: Client) -> None:
    _, fin = await client.issue("lineage.example.com")
    old = x509.load_pem_x509_certificates((await client.post(fin.json["certificate"])).body)[0]
    order = await client.new_order("lineage.example.com", replaces=certificate_cert_id(old))
    assert order.status == 201, order.body
    done = await client.finalize(order.json)
    assert done.json["status"] == "valid", done.body
    new = x509.load_pem_x509_certificates((await client.post(done.json["certificate"])).body)[0]
    store = components_of(client.http.app).store
    old_serial, new_serial = serial_hex(old.serial_number), serial_hex(new.serial_number)
    assert (await store.get_certificate(old_serial)).superseded_by == new_serial
    record = await store.get_certificate(new_serial)
    request = await store.get_request(record.request_id)
    assert (request.kind.value, request.prior_serial) == ("re-enrollment", old_serial)
    events = {e.event: e for e in await store.audit_events(request.id)}
    assert events["request.received"].detail["kind"] == "re-enrollment"
    assert events["certificate.issued"].detail["supersedes"] == old_serial
