"""CA keys held in a PKCS#11 token (``key_store = "pkcs11"``), through python-pkcs11.

The key pairs are generated inside the token (CKA_SENSITIVE true, CKA_EXTRACTABLE false, so
the private value never leaves it) or found there by CKA_LABEL; nothing of the private key is
written to the data directory. Signing hashes in software and has the token sign the digest
with the plain mechanisms every token offers: CKM_RSA_PKCS over the DigestInfo (RSASSA-PKCS1-v1_5,
RFC 8017 §9.2) and CKM_ECDSA over the hash, whose raw ``r || s`` output (PKCS#11 v2.40 §2.3.1)
is re-encoded as the DER ``ECDSA-Sig-Value`` X.509 wants (RFC 5758 §3.2). Only a digest crosses
to the token, which matters for a network HSM and is all SoftHSM supports for ECDSA.

Sessions (:mod:`backends.local_ca.pkcs11_token`): one logged-in session per token and
process, shared by the token's signers and serialised by a lock (the issuer signs on the event
loop, the OCSP responder may sign from a thread pool). A signing call that fails with a token
error reopens the session (log in anew, find the key again) and retries once; when it still
fails the caller gets :class:`KeyStoreError` (the connector turns it into "CA unavailable,
retry later").
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from backends.local_ca.keystore import (
    CAPrivateKey,
    KeyStoreError,
    SignatureHash,
    signature_algorithm,
    signature_hash,
    signed_certificate,
    signed_crl,
)
from backends.local_ca.pkcs11_token import Token, TokenSettingError, release_token, token_for
from backends.local_ca.settings import KeyAlgorithm, Pkcs11Settings

log = logging.getLogger(__name__)

#: DigestInfo prefixes (RFC 8017 §9.2 note 1) for CKM_RSA_PKCS signing of a software hash.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_CURVES: dict[KeyAlgorithm, str] = {
    KeyAlgorithm.EC_P256: "secp256r1",
    KeyAlgorithm.EC_P384: "secp384r1",
}
_RSA_BITS = {KeyAlgorithm.RSA_3072: 3072, KeyAlgorithm.RSA_4096: 4096}


# -- the signer ------------------------------------------------------------------------------


class Pkcs11Signer:
    """A :class:`~backends.local_ca.keystore.CASigner` over a private key in a token."""

    def __init__(self, token: Token, label: str) -> None:
        self._token: Token | None = token
        self._label = label
        self._generation = token.generation
        self._key = _private_key(token, label)
        self._public = _public_key(token, label, self._key)
        self._hash: SignatureHash = signature_hash(self._public)
        self._algorithm = signature_algorithm(self._public, self._hash)

    @property
    def label(self) -> str:
        return self._label

    @property
    def signature_algorithm(self) -> bytes:
        return self._algorithm

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        return self._public

    def sign_tbs(self, tbs: bytes) -> bytes:
        """Hash ``tbs`` here, have the token sign the digest; DER for ECDSA."""
        digest = hashlib.new(self._hash.name, tbs).digest()
        if isinstance(self._public, rsa.RSAPublicKey):
            return self._sign(_DIGEST_INFO[self._hash.name] + digest, Mechanism.RSA_PKCS)
        raw = self._sign(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        return encode_dss_signature(r, s)

    def _sign(self, data: bytes, mechanism: Mechanism) -> bytes:
        token = self._token
        if token is None:
            raise KeyStoreError("the CA key has been closed")
        with token.lock:
            try:
                return bytes(self._current(token).sign(data, mechanism=mechanism))
            except pkcs11.PKCS11Error as first:
                log.warning(
                    "signing with %s in %s failed (%s): reopening the session",
                    self._label,
                    token.name,
                    type(first).__name__,
                )
            token.reopen()
            try:
                return bytes(self._current(token).sign(data, mechanism=mechanism))
            except pkcs11.PKCS11Error as exc:
                raise KeyStoreError(
                    f"{token.name} cannot sign with {self._label!r} ({type(exc).__name__})"
                ) from None

    def _current(self, token: Token) -> Any:
        """The key object of the token's current session (found again after a reopen)."""
        if self._generation != token.generation:
            self._key = _private_key(token, self._label)
            self._generation = token.generation
        return self._key

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return signed_certificate(builder, self._public, self.sign_tbs)

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        return signed_crl(builder, self._public, self.sign_tbs)

    def close(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            release_token(token)


def _private_key(token: Token, label: str) -> Any:
    try:
        return token.session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
    except pkcs11.NoSuchKey:
        raise TokenSettingError(
            "pkcs11_key_label", f"no private key labelled {label!r} in {token.name}"
        ) from None
    except pkcs11.MultipleObjectsReturned:
        raise TokenSettingError(
            "pkcs11_key_label", f"several private keys are labelled {label!r} in {token.name}"
        ) from None


def _has_private_key(token: Token, label: str) -> bool:
    found = token.session.get_objects(
        {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
    )
    return bool(list(found))  # exhausted: the search is finalised (C_FindObjectsFinal)


def _public_key(token: Token, label: str, private: Any) -> CertificateIssuerPublicKeyTypes:
    """The key pair's public key: from the public key object of the same label, or (RSA)
    from the private key object's modulus and exponent."""
    key_type = private.key_type
    try:
        public = token.session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
    except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
        public = None
    if key_type == KeyType.RSA:
        source = public if public is not None else private
        n = int.from_bytes(source[Attribute.MODULUS], "big")
        e = int.from_bytes(source[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    if key_type == KeyType.EC and public is not None:
        loaded = load_der_public_key(encode_ec_public_key(public))
        if isinstance(loaded, ec.EllipticCurvePublicKey):
            return loaded
    raise TokenSettingError(
        "pkcs11_key_label",
        f"{label!r} in {token.name} is not an RSA or EC key pair with a public key object",
    )


# -- the key store ---------------------------------------------------------------------------


class Pkcs11KeyStore:
    """CA keys in a token, addressed by CKA_LABEL (:meth:`token_label`)."""

    def __init__(self, settings: Pkcs11Settings) -> None:
        self._settings = settings

    def token_label(self, label: str) -> str:
        """The CKA_LABEL of the CA's key ``label``: the configured ones for ``root`` and
        ``issuing``, ``<pkcs11_key_label>-<label>`` for the other keys the CA keeps (the OCSP
        responder's)."""
        if label == "root":
            return self._settings.root_key_label
        if label == "issuing":
            return self._settings.key_label
        return f"{self._settings.key_label}-{label}"

    def location(self, label: str) -> str:
        """An RFC 7512 style PKCS#11 URI (never the PIN)."""
        s = self._settings
        where = f"token={s.token_label}" if s.token_label is not None else f"slot-id={s.slot}"
        return f"pkcs11:{where};object={self.token_label(label)};type=private"

    def generate(self, label: str, algorithm: KeyAlgorithm) -> Pkcs11Signer:
        """The key pair labelled for ``label``: generated in the token, non-extractable and
        sensitive, unless the token already holds one by that label (an operator's own key, or
        one a start that crashed before the CA directory was complete had generated)."""
        token_label = self.token_label(label)
        token = token_for(self._settings)
        try:
            with token.lock:
                if _has_private_key(token, token_label):
                    log.info("using the key %r already in %s", token_label, token.name)
                    return Pkcs11Signer(token, token_label)
                _generate_pair(token, token_label, algorithm)
                log.info("generated %s key %r in %s", algorithm.value, token_label, token.name)
                return Pkcs11Signer(token, token_label)
        except BaseException:
            release_token(token)
            raise

    def put(self, label: str, key: CAPrivateKey) -> Pkcs11Signer:
        raise KeyStoreError("a token-held CA key is put into the token with its own tools")

    def load(self, label: str) -> Pkcs11Signer:
        token = token_for(self._settings)
        try:
            with token.lock:
                return Pkcs11Signer(token, self.token_label(label))
        except BaseException:
            release_token(token)
            raise


def _generate_pair(token: Token, label: str, algorithm: KeyAlgorithm) -> None:
    key_id = os.urandom(16)  # CKA_ID pairs the public and the private object
    private_template = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }
    public_template = {
        Attribute.TOKEN: True,
        Attribute.VERIFY: True,
        Attribute.ENCRYPT: False,
        Attribute.WRAP: False,
    }
    capabilities = pkcs11.MechanismFlag.SIGN | pkcs11.MechanismFlag.VERIFY
    session = token.session
    try:
        if algorithm in _RSA_BITS:
            session.generate_keypair(
                KeyType.RSA,
                _RSA_BITS[algorithm],
                id=key_id,
                label=label,
                store=True,
                capabilities=capabilities,
                public_template=public_template,
                private_template=private_template,
            )
            return
        parameters = session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[algorithm])},
            local=True,
        )
        parameters.generate_keypair(
            id=key_id,
            label=label,
            store=True,
            capabilities=capabilities,
            public_template=public_template,
            private_template=private_template,
        )
    except pkcs11.PKCS11Error as exc:
        raise TokenSettingError(
            "key_algorithm",
            f"{token.name} cannot generate a {algorithm.value} key ({type(exc).__name__})",
        ) from None
