"""JSON Web Signature as ACME uses it (RFC 8555 §6.2): pure parsing and verification.

Only the Flattened JSON Serialization with one signature and a protected header is accepted;
keys are JWKs (RFC 7517) of type RSA, EC (P-256/384/521) or OKP (Ed25519). Thumbprints follow
RFC 7638. Nothing here does I/O; every malformed input raises :class:`Problem`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from protocols.acme.messages import Problem, b64d, b64e, canonical_json

#: Signature algorithms accepted on account-key JWS (RFC 8555 §6.2; RFC 7518 §3; RFC 8037).
ALGORITHMS: tuple[str, ...] = ("RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA")
#: MAC algorithms accepted on external account bindings only (RFC 8555 §7.3.4).
MAC_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
MIN_RSA_BITS = 2048
#: Deepest JSON nesting accepted in a JWS, its protected header or its payload. ACME's own
#: documents nest three levels at most (newOrder identifiers, a jwk in a header); a limit
#: keeps a hostile document from reaching code that walks it (RFC 8555 §6.7 ``malformed``).
MAX_JSON_DEPTH = 32

_CURVES: dict[str, tuple[ec.EllipticCurve, int, str]] = {
    "P-256": (ec.SECP256R1(), 32, "ES256"),
    "P-384": (ec.SECP384R1(), 48, "ES384"),
    "P-521": (ec.SECP521R1(), 66, "ES512"),
}
#: Curve name -> (coordinate size, JWS algorithm), for :func:`verify`.
_EC_SIZES = {curve.name: (size, alg) for curve, size, alg in _CURVES.values()}
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "RS256": hashes.SHA256(),
    "PS256": hashes.SHA256(),
    "ES256": hashes.SHA256(),
    "ES384": hashes.SHA384(),
    "ES512": hashes.SHA512(),
}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class JWS:
    """A parsed Flattened JWS (RFC 7515 §7.2.2). ``payload`` is the decoded payload bytes
    (``b""`` for POST-as-GET, RFC 8555 §6.3)."""

    protected: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.protected.get("alg", ""))

    @property
    def url(self) -> str:
        return str(self.protected.get("url", ""))

    @property
    def nonce(self) -> str | None:
        value = self.protected.get("nonce")
        return value if isinstance(value, str) else None

    @property
    def kid(self) -> str | None:
        value = self.protected.get("kid")
        return value if isinstance(value, str) else None

    @property
    def jwk(self) -> dict[str, Any] | None:
        value = self.protected.get("jwk")
        return value if isinstance(value, dict) else None

    def payload_json(self) -> dict[str, Any]:
        """The payload as a JSON object; ``malformed`` otherwise."""
        value = loads(self.payload, "payload is not JSON")
        if not isinstance(value, dict):
            raise Problem.malformed("payload must be a JSON object")
        return value


def loads(text: bytes | str, not_json: str) -> Any:
    """JSON from a client: ``malformed`` with ``not_json`` when it is not JSON, and
    ``malformed`` when it nests deeper than :data:`MAX_JSON_DEPTH` (the parser's own recursion
    limit included, which would otherwise escape as ``RecursionError``)."""
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
    except (ValueError, UnicodeDecodeError):
        raise Problem.malformed(not_json) from None
    else:
        if _few_brackets(text) or _within_depth(value):
            return value
    raise Problem.malformed(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")


def _few_brackets(text: bytes | str) -> bool:
    """At most :data:`MAX_JSON_DEPTH` opening brackets in the text: every level of nesting
    opens with one, so :func:`_within_depth` could only agree. Why: walking a parsed JWS
    costs a third of what parsing it does, and a request parses three (body, header,
    payload); counting is a scan in C."""
    if isinstance(text, bytes):
        return text.count(b"{") + text.count(b"[") <= MAX_JSON_DEPTH
    return text.count("{") + text.count("[") <= MAX_JSON_DEPTH


def _within_depth(value: Any) -> bool:
    """Iteratively (a recursive walk would hit the recursion limit itself)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def parse_jws(body: bytes | str | dict[str, Any]) -> JWS:
    """Parse a Flattened JSON Serialization JWS (RFC 8555 §6.2): exactly ``protected``,
    ``payload`` and ``signature``; no unprotected header, no ``signatures`` array, no
    ``b64: false`` (RFC 7797), no detached payload."""
    if isinstance(body, dict):
        obj: Any = body
    else:
        obj = loads(body, "request body is not JSON")
    if not isinstance(obj, dict):
        raise Problem.malformed("JWS must be a JSON object (flattened serialization)")
    if "signatures" in obj:
        raise Problem.malformed("JWS must have exactly one signature (flattened serialization)")
    if "header" in obj:
        raise Problem.malformed("JWS unprotected header is not allowed")
    extra = set(obj) - {"protected", "payload", "signature"}
    if extra:
        raise Problem.malformed(f"unexpected JWS members: {sorted(extra)}")
    protected_b64, payload_b64, sig_b64 = (
        obj.get(k) for k in ("protected", "payload", "signature")
    )
    if not all(isinstance(v, str) for v in (protected_b64, payload_b64, sig_b64)):
        raise Problem.malformed("JWS protected, payload and signature must be strings")
    assert isinstance(protected_b64, str) and isinstance(payload_b64, str)
    assert isinstance(sig_b64, str)
    try:
        protected_json = b64d(protected_b64)
    except ValueError:
        raise Problem.malformed("JWS protected header is not base64url JSON") from None
    protected = loads(protected_json, "JWS protected header is not base64url JSON")
    if not isinstance(protected, dict):
        raise Problem.malformed("JWS protected header must be a JSON object")
    if protected.get("b64", True) is not True or "crit" in protected:
        raise Problem.malformed("JWS 'b64'/'crit' header parameters are not supported")
    try:
        payload = b64d(payload_b64)
        signature = b64d(sig_b64)
    except ValueError:
        raise Problem.malformed("JWS payload or signature is not base64url") from None
    if not isinstance(protected.get("alg"), str):
        raise Problem.malformed("JWS protected header has no 'alg'")
    signing_input = f"{protected_b64}.{payload_b64}".encode("ascii")
    return JWS(protected, payload, signing_input, signature)


def check_account_header(jws: JWS, *, want_jwk: bool) -> None:
    """RFC 8555 §6.2: ``alg`` an asymmetric algorithm we support, ``nonce`` and ``url``
    present, exactly one of ``jwk``/``kid`` (``jwk`` for newAccount/revoke-by-key)."""
    if jws.alg in ("none", *MAC_ALGORITHMS) or jws.alg not in ALGORITHMS:
        raise Problem.bad_signature_algorithm(jws.alg, ALGORITHMS)
    if not isinstance(jws.protected.get("url"), str):
        raise Problem.malformed("JWS protected header has no 'url'")
    has_jwk, has_kid = "jwk" in jws.protected, "kid" in jws.protected
    if has_jwk == has_kid:
        raise Problem.malformed("JWS protected header must have exactly one of 'jwk' and 'kid'")
    if want_jwk and not has_jwk:
        raise Problem.malformed("this request must be signed with a 'jwk' header")
    if not want_jwk and has_jwk and jws.jwk is None:
        raise Problem.malformed("JWS 'jwk' must be a JSON object")


def load_jwk(jwk: Any) -> PublicKey:
    """A public key from a JWK (RFC 7517/7518 §6, RFC 8037); ``badPublicKey`` for weak or
    invalid keys, ``malformed`` for unusable JSON. Private members are refused."""
    if not isinstance(jwk, dict):
        raise Problem.malformed("jwk must be a JSON object")
    if any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise Problem.bad_public_key("jwk contains private key material")
    get = jwk.get
    members = (get("kty"), get("crv"), get("n"), get("e"), get("x"), get("y"))
    if all(value is None or type(value) is str for value in members):
        return _cached_key(members)
    return _build_key(jwk)


#: The only JWK members :func:`_build_key` reads (in :func:`load_jwk`'s tuple order): they
#: decide the key or the refusal.
_KEY_MEMBERS = ("kty", "crv", "n", "e", "x", "y")


@lru_cache(maxsize=4096)
def _cached_key(members: tuple[str | None, ...]) -> PublicKey:
    """:func:`_build_key`, kept per JWK. Why: every request of an account is verified with
    the same stored JWK, and building the key validates it again (the EC point on its curve
    costs ~9 µs for P-256, a fifth of the signature check). Key objects are immutable, and a
    refused JWK raises, which is never cached."""
    return _build_key({k: v for k, v in zip(_KEY_MEMBERS, members, strict=True) if v is not None})


def _build_key(jwk: dict[str, Any]) -> PublicKey:
    """The key a checked JWK describes (see :func:`load_jwk`)."""
    kty = jwk.get("kty")
    try:
        if kty == "RSA":
            n = int.from_bytes(b64d(_member(jwk, "n")), "big")
            e = int.from_bytes(b64d(_member(jwk, "e")), "big")
            if n.bit_length() < MIN_RSA_BITS:
                raise Problem.bad_public_key(f"RSA keys must have at least {MIN_RSA_BITS} bits")
            if e < 3 or e % 2 == 0:
                raise Problem.bad_public_key("RSA public exponent is invalid")
            return rsa.RSAPublicNumbers(e, n).public_key()
        if kty == "EC":
            crv = _member(jwk, "crv")
            if crv not in _CURVES:
                raise Problem.bad_public_key(f"unsupported EC curve {crv!r}")
            curve, size, _ = _CURVES[crv]
            x, y = b64d(_member(jwk, "x")), b64d(_member(jwk, "y"))
            if len(x) != size or len(y) != size:
                raise Problem.bad_public_key("EC coordinates have the wrong length")
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
            )
            return numbers.public_key()  # ValueError if the point is not on the curve
        if kty == "OKP":
            if _member(jwk, "crv") != "Ed25519":
                raise Problem.bad_public_key("only Ed25519 OKP keys are supported")
            return ed25519.Ed25519PublicKey.from_public_bytes(b64d(_member(jwk, "x")))
    except ValueError:
        raise Problem.bad_public_key("jwk is not a valid public key") from None
    raise Problem.bad_public_key(f"unsupported key type {kty!r}")


def _member(jwk: dict[str, Any], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise Problem.malformed(f"jwk member {name!r} is missing")
    return value


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: base64url SHA-256 of the required members in lexicographic order."""
    kty = jwk.get("kty")
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    names = required.get(str(kty))
    if names is None:
        raise Problem.bad_public_key(f"unsupported key type {kty!r}")
    subset = {name: jwk.get(name) for name in names}
    return b64e(hashlib.sha256(canonical_json(subset)).digest())


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """Only the RFC 7638 required members (what we store and compare)."""
    names = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y"), "OKP": ("kty", "crv", "x")}
    return {k: jwk[k] for k in names.get(str(jwk.get("kty")), ()) if k in jwk}


def verify(jws: JWS, key: PublicKey) -> None:
    """Check the signature of ``jws`` with ``key`` for its ``alg`` (RFC 7518 §3); the
    algorithm must fit the key type. ``malformed``/``badSignatureAlgorithm`` otherwise."""
    alg = jws.alg
    try:
        if isinstance(key, rsa.RSAPublicKey) and alg == "RS256":
            key.verify(jws.signature, jws.signing_input, padding.PKCS1v15(), hashes.SHA256())
            return
        if isinstance(key, rsa.RSAPublicKey) and alg == "PS256":
            # RFC 7518 §3.5 says the salt is as long as the hash, but josepy (certbot's
            # ``acme``) signs with the longest salt; PSS is sound with any salt length
            # (RFC 8017 §9.1), so the verifier recovers it instead of refusing such clients.
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            key.verify(jws.signature, jws.signing_input, pss, hashes.SHA256())
            return
        if isinstance(key, ec.EllipticCurvePublicKey) and alg.startswith("ES"):
            size, expected = _EC_SIZES.get(key.curve.name, (0, ""))
            if expected != alg:
                raise Problem.bad_signature_algorithm(alg, ALGORITHMS, "does not match the key")
            if len(jws.signature) != 2 * size:
                raise Problem.malformed("JWS signature has the wrong length")
            r = int.from_bytes(jws.signature[:size], "big")
            s = int.from_bytes(jws.signature[size:], "big")
            key.verify(encode_dss_signature(r, s), jws.signing_input, ec.ECDSA(_HASHES[alg]))
            return
        if isinstance(key, ed25519.Ed25519PublicKey) and alg == "EdDSA":
            key.verify(jws.signature, jws.signing_input)
            return
    except InvalidSignature:
        raise Problem.malformed("JWS signature is invalid") from None
    raise Problem.bad_signature_algorithm(alg, ALGORITHMS, "does not match the key type")


def verify_mac(jws: JWS, secret: bytes) -> None:
    """External account binding MAC (RFC 8555 §7.3.4, RFC 7518 §3.2)."""
    digest = MAC_ALGORITHMS.get(jws.alg)
    if digest is None:
        raise Problem.malformed("externalAccountBinding must use HS256, HS384 or HS512")
    expected = hmac.new(secret, jws.signing_input, digest).digest()
    if not hmac.compare_digest(expected, jws.signature):
        raise Problem.unauthorized("externalAccountBinding signature is invalid")
