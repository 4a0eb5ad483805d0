"""The one certs-only CMS builder and reader (gateway.pkix.certsonly, issue #14 item 3): the
certificates in the order given (chain order), CRLs for SCEP GetCRL, a reader that keeps the
encoded order and turns garbage into CMSError; and nothing else in the product builds one."""

from __future__ import annotations

import pathlib
import re

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from gateway.pkix.certsonly import certs_only_der, read_certs_only
from gateway.pkix.cms_algorithms import CMSError

VECTORS = pathlib.Path(__file__).parent.parent / "vectors" / "ms"
ROOT = pathlib.Path(__file__).parent.parent.parent


def _chain() -> list[x509.Certificate]:
    leaf = x509.load_pem_x509_certificate((VECTORS / "leaf.pem").read_bytes())
    return [leaf, *x509.load_pem_x509_certificates((VECTORS / "chain.pem").read_bytes())]


def test_certificates_keep_the_order_given_leaf_first() -> None:
    chain = _chain()
    der = certs_only_der(chain)
    signed = asn1_cms.ContentInfo.load(der)["content"]
    encoded = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]
    assert encoded == chain  # not X.690 SET OF sort order (cryptography's serializer's)
    assert read_certs_only(der) == (tuple(chain), ())
    assert read_certs_only(certs_only_der(chain[::-1]))[0] == tuple(chain[::-1])


def test_degenerate_shape_as_rfc_5652_and_8894_say() -> None:
    signed = asn1_cms.ContentInfo.load(certs_only_der(_chain()[:1]))["content"]
    assert signed["version"].native == "v1" and len(signed["digest_algorithms"]) == 0
    assert signed["encap_content_info"]["content_type"].native == "data"
    assert signed["encap_content_info"]["content"].native is None
    assert len(signed["signer_infos"]) == 0 and signed["crls"].native is None


def test_one_certificate_is_what_cryptography_serializes() -> None:
    leaf = _chain()[0]
    assert certs_only_der([leaf]) == pkcs7.serialize_certificates(
        [leaf], serialization.Encoding.DER
    )


def test_crls_without_certificates_for_getcrl() -> None:
    crl = b"\x30\x03\x02\x01\x05"  # any DER the caller hands in is carried as is
    certs, crls = read_certs_only(certs_only_der([], crls=[crl]))
    assert certs == () and crls == (crl,)
    with pytest.raises(ValueError):
        certs_only_der([])


def test_reader_takes_der_sorted_input_and_refuses_garbage() -> None:
    chain = _chain()
    sorted_der = pkcs7.serialize_certificates(chain, serialization.Encoding.DER)
    assert set(read_certs_only(sorted_der)[0]) == set(chain)
    leaf_der = chain[0].public_bytes(serialization.Encoding.DER)
    for garbage in (b"", b"\x30\x00", b"not cms", leaf_der):
        with pytest.raises(CMSError):
            read_certs_only(garbage)


def test_no_other_certs_only_builder_or_reader_in_the_product() -> None:
    pattern = re.compile(
        r"serialize_certificates|load_(der|pem)_pkcs7_certificates"
        r"|def (certs_only|certs_only_der|read_certs_only)\("
    )
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in ("gateway", "protocols", "backends")
        for path in (ROOT / package).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and path.name != "certsonly.py"
    ]
    assert found == []
