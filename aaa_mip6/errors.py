"""The project's exception trees: bad input, and the SA store failing.

Every parser in aaa_mip6 raises a subclass of :class:`InvalidInput` and nothing
else, whatever bytes it is given. Each error carries a short machine-readable
``reason`` (used by the HA's drop counters and the HAC's status mapping) and a
human message. Messages name fields and sizes, never secret values.
:class:`StoreError` and its subclasses are what every SA store raises
(:mod:`aaa_mip6.store`); their ``reason`` feeds the HAC's status mapping too.
"""


class InvalidInput(ValueError):
    """Bad input from the wire or a file: the only error a parser may raise."""

    reason = "malformed"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class FramingError(InvalidInput):
    """An MN-HAC container (RFC 6618 §5.1) that breaks the framing rules."""


class HeaderError(InvalidInput):
    """A TV-header (RFC 6618 §5.2) whose name or value breaks its ABNF."""


class MessageError(InvalidInput):
    """A message whose set of headers is wrong: missing, repeated, unknown, misplaced."""


class AuthenticatorError(InvalidInput):
    """A message whose ``auth`` header does not verify."""

    reason = "bad-auth"


class AaaLimitError(InvalidInput):
    """An MN's EAP input that no AAA request can carry: a User-Name or a whole request over
    the AAA protocol's limit. Found before anything is sent; the HAC answers 400."""

    reason = "too-long"


class PacketError(InvalidInput):
    """An MN-HA packet (RFC 6618 §6) that cannot be accepted."""


class IntegrityError(PacketError):
    """ICV mismatch: the packet was not produced with this SA's integrity key."""

    reason = "bad-icv"


class ReplayError(PacketError):
    """The sequence number is a duplicate or left of the anti-replay window."""

    reason = "replay"


class MobilityError(InvalidInput):
    """A Mobility Header or IPv6 extension header (RFC 6275) that breaks its format."""


class StartupError(Exception):
    """A program could not start for a reason outside its configuration (exit status 1):
    a port another program holds. The configuration is fine; start it again once the
    port is free (systemd does: only exit status 2 stops its restarts)."""


class ConfigError(InvalidInput):
    """A configuration value or file that cannot be used; the message names the key."""


class StoreError(RuntimeError):
    """The SA store could not do what was asked; the message never holds key material."""

    reason = "store"


class StoreUnavailable(StoreError):
    """No writable database answered within the store's time bound: a lost connection,
    a primary that died and a standby not yet promoted. Asking again later may work, so
    the HAC answers 503 with ``retry-after``."""

    reason = "store-unavailable"


class SPIExhausted(StoreError):
    """No free SPI was found: nearly all 268435455 SPIs are held by valid SAs."""

    reason = "spi-exhausted"


class AddressPoolExhausted(StoreError):
    """Every usable address of a home prefix is already assigned to another MN."""

    reason = "pool-exhausted"


class LkeError(InvalidInput):
    """A Local Key Exchange message (draft-liu-mobileip-lke-01, docs/lke.md) that breaks
    its format: the LKE codecs raise it and its subclasses only."""


class LkeAuthenticationError(LkeError):
    """An LKE HMAC or Binding Authorization Data that does not verify under the LBSA's Kbm."""

    reason = "bad-hmac"


class LkeKeyExchangeError(LkeError):
    """Key Exchange Data that the AR's private key does not decrypt (RSA-OAEP), or a
    decrypted Kbm of the wrong size."""

    reason = "bad-key-exchange"


class LkePublicKeyError(LkeError):
    """An LKE Capability option whose public key is not an RSA SubjectPublicKeyInfo of an
    accepted size."""

    reason = "bad-public-key"
