"""newOrder's probe CSR written as DER (protocols.acme.probe) against the one the
cryptography builder signs: the same request info byte for byte, the same signature
algorithm, and the same policy preview."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.acme.finalize import _probe_key
from protocols.acme.probe import probe_csr

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_DNS = st.builds(
    lambda wild, labels: ("*." if wild else "") + ".".join(labels),
    st.booleans(),
    st.lists(_LABEL, min_size=2, max_size=4),
)
_IDENTIFIER = st.one_of(
    st.tuples(st.just("dns"), _DNS),
    st.tuples(st.just("ip"), st.ip_addresses().map(str)),
)


def _signed(key: object, identifiers: list[tuple[str, str]]) -> x509.CertificateSigningRequest:
    """The plain way: the builder, signed with the probe key."""
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(v)) if t == "ip" else x509.DNSName(v)
        for t, v in identifiers
    ]
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["ec", "rsa"]), st.lists(_IDENTIFIER, min_size=1, max_size=30))
def test_the_probe_is_what_the_builder_signs(kind: str, identifiers: list[tuple[str, str]]) -> None:
    key = _probe_key(kind)
    plain, fast = _signed(key, identifiers), probe_csr(key, identifiers)
    assert fast.tbs_certrequest_bytes == plain.tbs_certrequest_bytes
    assert fast.signature_algorithm_oid == plain.signature_algorithm_oid
    assert fast.signature_hash_algorithm is not None
    assert fast.signature_hash_algorithm.name == "sha256"
    assert list(fast.extensions) == list(plain.extensions) and fast.subject == plain.subject
