"""ACME challenge values (RFC 8555 §8; RFC 8737 tls-alpn-01; RFC 8738 IP identifiers): what
a validation expects the client to have published. Pure functions of the token and the account
key's thumbprint."""

from __future__ import annotations

import hashlib
import ipaddress

from cryptography import x509

from protocols.acme.messages import b64e


def key_authorization(token: str, account_thumbprint: str) -> str:
    """RFC 8555 §8.1: ``token || '.' || base64url(Thumbprint(accountKey))``."""
    return f"{token}.{account_thumbprint}"


def dns01_value(key_auth: str) -> str:
    """RFC 8555 §8.4: the TXT record value, base64url(SHA-256(keyAuthorization))."""
    return b64e(hashlib.sha256(key_auth.encode()).digest())


#: RFC 8737 §6.1 id-pe-acmeIdentifier.
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def tls_alpn01_expected(key_auth: str) -> bytes:
    """RFC 8737 §3: extnValue = DER OCTET STRING(32) of SHA-256(keyAuthorization)."""
    return b"\x04\x20" + hashlib.sha256(key_auth.encode()).digest()


def reverse_dns_name(ip: str) -> str:
    """RFC 8738 §6: the SNI for a tls-alpn-01 IP challenge (in-addr.arpa / ip6.arpa)."""
    return ipaddress.ip_address(ip).reverse_pointer
