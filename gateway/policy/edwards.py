"""Small-order EdDSA public keys (RFC 8032 §5.1, §5.2), refused by rule ``key-weak``.

Ed25519 has cofactor 8 and Ed448 cofactor 4. The points of that small torsion subgroup are
valid key encodings that OpenSSL verifies signatures against, and for such a key a signature
that verifies on every message is trivial to make (for the neutral point: R = the neutral
point, S = 0). A certificate for one certifies a key anybody can sign with. cryptography loads
EdDSA public keys without looking at the point, so policy looks here.

Points P and -P share y, so a point has small order exactly when its y is the y of a torsion
point: on Ed448 (a = 1) those are 1, -1 (x = 0) and 0 (x = +-1); on Ed25519 (a = -1) also 0
(x = +-sqrt(-1)) and the +-c of the four points of order 8, derived below from the doubling
formula. The check is then a comparison, no square root per request. Encodings whose y is not
below p are refused as non-canonical (RFC 8032 §5.1.3 step 1); a y that is not on the curve
at all fails the CSR's signature check (rule csr-signature).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EdwardsCurve:
    """An Edwards curve a*x^2 + y^2 = 1 + d*x^2*y^2 over GF(p), its encoding size in octets
    and the y coordinates of its small-order points."""

    name: str
    p: int
    a: int
    d: int
    cofactor: int
    size: int
    torsion_y: frozenset[int]

    def y_of(self, data: bytes) -> int | str:
        """y from an encoding (little-endian, x's sign in the top bit), or why there is none."""
        if len(data) != self.size:
            return f"{self.name} public key has {len(data)} octets, not {self.size}"
        y = int.from_bytes(data, "little") & ((1 << (8 * self.size - 1)) - 1)
        if y >= self.p:
            return f"{self.name} public key is not canonically encoded (y is not below p)"
        return y

    def add(self, one: tuple[int, int], two: tuple[int, int]) -> tuple[int, int]:
        """Affine addition (complete on both curves: a is a square, d is not)."""
        (x1, y1), (x2, y2), p = one, two, self.p
        t = self.d * x1 * x2 * y1 * y2 % p
        x3 = (x1 * y2 + y1 * x2) * pow(1 + t, -1, p) % p
        y3 = (y1 * y2 - self.a * x1 * x2) * pow(1 - t, -1, p) % p
        return x3, y3

    def point(self, y: int) -> tuple[int, int] | None:
        """A point with this y (x even), or None if y is not on the curve."""
        x = sqrt_mod((y * y - 1) * pow(self.d * y * y - self.a, -1, self.p), self.p)
        return None if x is None else (min(x, self.p - x), y)


def sqrt_mod(w: int, p: int) -> int | None:
    """A square root of w mod p for p = 3 mod 4 or p = 5 mod 8 (RFC 8032 §5.1.3), or None."""
    w %= p
    if p % 4 == 3:
        x = pow(w, (p + 1) // 4, p)
    else:
        x = pow(w, (p + 3) // 8, p)
        if x * x % p != w:
            x = x * pow(2, (p - 1) // 4, p) % p
    return x if x * x % p == w else None


def _order_8_y(p: int, d: int) -> int:
    """y of the Ed25519 points of order 8: doubling gives y' = (y^2 + x^2) / (1 - d x^2 y^2),
    so y' = 0 (the order-4 points) needs x^2 = -y^2, and the curve equation then reads
    d y^4 + 2 y^2 - 1 = 0, i.e. y^2 = (-1 +- sqrt(1 + d)) / d."""
    root = sqrt_mod(1 + d, p)
    assert root is not None
    for y2 in ((-1 + root) * pow(d, -1, p) % p, (-1 - root) * pow(d, -1, p) % p):
        y = sqrt_mod(y2, p)
        if y is not None:
            return y
    raise AssertionError("Ed25519 has points of order 8")


_P25519 = 2**255 - 19
_D25519 = -121665 * pow(121666, -1, _P25519) % _P25519
_C25519 = _order_8_y(_P25519, _D25519)
_P448 = 2**448 - 2**224 - 1

ED25519 = EdwardsCurve(
    name="Ed25519",
    p=_P25519,
    a=-1,
    d=_D25519,
    cofactor=8,
    size=32,
    torsion_y=frozenset({1, _P25519 - 1, 0, _C25519, _P25519 - _C25519}),
)
ED448 = EdwardsCurve(
    name="Ed448",
    p=_P448,
    a=1,
    d=-39081 % _P448,
    cofactor=4,
    size=57,
    torsion_y=frozenset({1, _P448 - 1, 0}),
)


def eddsa_key_problem(curve: EdwardsCurve, public: bytes) -> str | None:
    """Why the raw EdDSA public key ``public`` on ``curve`` must not be certified, or None."""
    y = curve.y_of(public)
    if isinstance(y, str):
        return y
    if y in curve.torsion_y:
        return f"{curve.name} public key is a point of small order (anyone can sign for it)"
    return None
