"""EAP-pwd (RFC 5931), peer side, group 19 (NIST P-256), no password pre-processing.

cryptography offers no raw elliptic-curve point operations, so the few this method
needs (add, multiply, negate, decompress) are written here for P-256 in Jacobian
coordinates. The password element is found by hunting and pecking (§2.8.3.2),
always running at least :data:`MIN_HUNTING_ROUNDS` rounds as hostapd and
FreeRADIUS do, so the round count does not depend on the password.
Error messages name fields and sizes, never a password, key or scalar.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import struct

from aaa_mip6.eap import EapError, Type

from . import EapMethod, register

# --- P-256 (SEC 2 / FIPS 186-4) ------------------------------------------------------------

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ELEMENT_OCTETS = 32  # octets of p, of r and of each coordinate

Point = tuple[int, int] | None  # affine (x, y), or None for the point at infinity


def on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _jacobian_double(point):
    x, y, z = point
    if y == 0 or z == 0:
        return (1, 1, 0)
    yy = y * y % P
    s = 4 * x * yy % P
    zz = z * z % P
    m = 3 * (x - zz) * (x + zz) % P  # a = -3
    x3 = (m * m - 2 * s) % P
    y3 = (m * (s - x3) - 8 * yy * yy) % P
    return (x3, y3, 2 * y * z % P)


def _jacobian_add(p1, p2):
    if p1[2] == 0:
        return p2
    if p2[2] == 0:
        return p1
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    z1z1, z2z2 = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2z2 % P, x2 * z1z1 % P
    s1, s2 = y1 * z2 * z2z2 % P, y2 * z1 * z1z1 % P
    h, r = (u2 - u1) % P, (s2 - s1) % P
    if h == 0:
        return _jacobian_double(p1) if r == 0 else (1, 1, 0)
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - s1 * hhh) % P
    return (x3, y3, z1 * z2 * h % P)


def _to_jacobian(point: Point):
    return (1, 1, 0) if point is None else (point[0], point[1], 1)


def _to_affine(point) -> Point:
    x, y, z = point
    if z == 0:
        return None
    z_inv = pow(z, -1, P)
    zz_inv = z_inv * z_inv % P
    return (x * zz_inv % P, y * zz_inv * z_inv % P)


def add(p1: Point, p2: Point) -> Point:
    return _to_affine(_jacobian_add(_to_jacobian(p1), _to_jacobian(p2)))


def multiply(scalar: int, point: Point) -> Point:
    """scalar * point by a Montgomery ladder (the same operations for every bit)."""
    low, high = (1, 1, 0), _to_jacobian(point)
    for bit in bin(scalar % ORDER)[2:]:
        if bit == "1":
            low, high = _jacobian_add(low, high), _jacobian_double(high)
        else:
            low, high = _jacobian_double(low), _jacobian_add(low, high)
    return _to_affine(low)


def negate(point: Point) -> Point:
    return None if point is None else (point[0], (-point[1]) % P)


def point_with_x(x: int, odd: bool) -> Point:
    """The curve point with this x whose y has the given parity, or None if x is on no point."""
    rhs = (x * x * x + A * x + B) % P
    y = pow(rhs, (P + 1) // 4, P)  # p = 3 mod 4
    if y * y % P != rhs:
        return None
    return (x, y) if (y & 1) == odd else (x, P - y)


# --- RFC 5931 §2.4, §2.5, §2.8 ---------------------------------------------------------------

GROUP = 19
RANDOM_FUNCTION = 1  # HMAC-SHA256 based
PRF = 1  # HMAC-SHA256
PREP_NONE = 0
MIN_HUNTING_ROUNDS = 40
MAX_HUNTING_ROUNDS = 255  # the counter is one octet
HUNTING_LABEL = b"EAP-pwd Hunting And Pecking"
CIPHERSUITE = struct.pack("!HBB", GROUP, RANDOM_FUNCTION, PRF)
_ID_FIXED = struct.Struct("!HBB4sB")  # group, random function, PRF, token, prep


def random_function(*parts: bytes) -> bytes:
    """H(x) = HMAC-SHA256 keyed with 32 zero octets (§2.4)."""
    return hmac.new(bytes(32), b"".join(parts), hashlib.sha256).digest()


def kdf(key: bytes, label: bytes, length_bits: int) -> bytes:
    """The counter-mode KDF of §2.5 (length a multiple of 8 here)."""
    output, block, counter = b"", b"", 0
    while len(output) * 8 < length_bits:
        counter += 1
        block = hmac.new(key, block + struct.pack("!H", counter) + label
                         + struct.pack("!H", length_bits), hashlib.sha256).digest()
        output += block
    return output[:length_bits // 8]


def password_element(token: bytes, peer_id: bytes, server_id: bytes, password: bytes) -> Point:
    """Hunting and pecking (§2.8.3.2): PWE from the password and both identities."""
    found = None
    for counter in range(1, MAX_HUNTING_ROUNDS + 1):
        seed = random_function(token, peer_id, server_id, password, bytes([counter]))
        x = int.from_bytes(kdf(seed, HUNTING_LABEL, 256), "big")
        candidate = point_with_x(x, bool(seed[-1] & 1)) if x < P else None
        if found is None:
            found = candidate
        if found is not None and counter >= MIN_HUNTING_ROUNDS:
            return found
    raise EapError("EAP-pwd found no password element", reason="failed")


def _element(point: Point) -> bytes:
    return point[0].to_bytes(ELEMENT_OCTETS, "big") + point[1].to_bytes(ELEMENT_OCTETS, "big")


def _scalar(value: int) -> bytes:
    return value.to_bytes(ELEMENT_OCTETS, "big")


def _random_scalar() -> int:
    return 1 + secrets.randbelow(ORDER - 1)


class Exchange(enum.IntEnum):
    ID = 1
    COMMIT = 2
    CONFIRM = 3


LENGTH_BIT = 0x80
MORE_BIT = 0x40
EXCHANGE_MASK = 0x3F


@register
class EapPwd(EapMethod):
    name = "pwd"
    type = Type.PWD

    def __init__(self, credentials):
        super().__init__(credentials)
        self._expected = Exchange.ID
        self._fragments = b""
        self._pwe: Point = None
        self._token = b""
        self._private = self._scalar_p = self._scalar_s = self._k = 0
        self._element_p: Point = None
        self._element_s: Point = None

    def process(self, identifier: int, type_data: bytes) -> bytes:
        if not type_data:
            raise EapError("EAP-pwd request without its header octet")
        flags, body = type_data[0], type_data[1:]
        exchange = flags & EXCHANGE_MASK
        if self.done or exchange != self._expected:
            raise EapError(f"EAP-pwd exchange {exchange} out of order", reason="unexpected")
        if flags & LENGTH_BIT:
            if len(body) < 2 or self._fragments:
                raise EapError("EAP-pwd Total-Length field misplaced or short")
            body = body[2:]
        self._fragments += body
        if flags & MORE_BIT:
            return bytes([exchange])  # RFC 5931 §3.3: acknowledge the fragment
        payload, self._fragments = self._fragments, b""
        handler = {Exchange.ID: self._id, Exchange.COMMIT: self._commit,
                   Exchange.CONFIRM: self._confirm}[self._expected]
        return bytes([exchange]) + handler(payload)

    def _password(self) -> bytes:
        if self.credentials.password is None:
            raise EapError("EAP-pwd needs a password", reason="no-credentials")
        return self.credentials.password.encode("utf-8")

    def _id(self, payload: bytes) -> bytes:
        if len(payload) < _ID_FIXED.size:
            raise EapError(f"EAP-pwd ID request of {len(payload)} octets is too short")
        group, function, prf, token, prep = _ID_FIXED.unpack_from(payload)
        if (group, function, prf) != (GROUP, RANDOM_FUNCTION, PRF) or prep != PREP_NONE:
            raise EapError(f"EAP-pwd group {group}, function {function}, PRF {prf}, prep {prep}"
                           " not supported (only 19, 1, 1, 0)", reason="unsupported")
        server_id = payload[_ID_FIXED.size:]
        peer_id = self.credentials.identity.encode("utf-8")
        self._token = token
        self._pwe = password_element(token, peer_id, server_id, self._password())
        self._expected = Exchange.COMMIT
        return _ID_FIXED.pack(GROUP, RANDOM_FUNCTION, PRF, token, PREP_NONE) + peer_id

    def _commit(self, payload: bytes) -> bytes:
        if len(payload) != 3 * ELEMENT_OCTETS:
            raise EapError(f"EAP-pwd Commit request of {len(payload)} octets, expected 96")
        x = int.from_bytes(payload[:ELEMENT_OCTETS], "big")
        y = int.from_bytes(payload[ELEMENT_OCTETS:2 * ELEMENT_OCTETS], "big")
        scalar_s = int.from_bytes(payload[2 * ELEMENT_OCTETS:], "big")
        if not 1 < scalar_s < ORDER:
            raise EapError("EAP-pwd server scalar out of range")
        if not on_curve(x, y):
            raise EapError("EAP-pwd server element is not on the curve")
        self._private, mask = _random_scalar(), _random_scalar()
        self._scalar_p = (self._private + mask) % ORDER
        while self._scalar_p < 2:
            self._private, mask = _random_scalar(), _random_scalar()
            self._scalar_p = (self._private + mask) % ORDER
        self._element_p = negate(multiply(mask, self._pwe))
        self._scalar_s, self._element_s = scalar_s, (x, y)
        if scalar_s == self._scalar_p or self._element_s == self._element_p:
            raise EapError("EAP-pwd server commit reflects the peer's", reason="bad-auth")
        shared = multiply(self._private, add(multiply(scalar_s, self._pwe), self._element_s))
        if shared is None:
            raise EapError("EAP-pwd shared secret is the point at infinity", reason="bad-auth")
        self._k = shared[0]
        self._expected = Exchange.CONFIRM
        return _element(self._element_p) + _scalar(self._scalar_p)

    def _confirm(self, payload: bytes) -> bytes:
        if len(payload) != 32:
            raise EapError(f"EAP-pwd Confirm request of {len(payload)} octets, expected 32")
        k = _scalar(self._k)
        peer = _element(self._element_p) + _scalar(self._scalar_p)
        server = _element(self._element_s) + _scalar(self._scalar_s)
        confirm_s = random_function(k, server, peer, CIPHERSUITE)
        if not hmac.compare_digest(payload, confirm_s):
            raise EapError("EAP-pwd server confirm does not verify", reason="bad-auth")
        confirm_p = random_function(k, peer, server, CIPHERSUITE)
        master = random_function(k, confirm_p, confirm_s)
        method_id = random_function(CIPHERSUITE, _scalar(self._scalar_p), _scalar(self._scalar_s))
        keys = kdf(master, bytes([Type.PWD]) + method_id, 1024)
        self.msk = keys[:64]
        self.done = True
        return confirm_p
