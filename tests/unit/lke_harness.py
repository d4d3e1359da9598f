"""An AR core and an MN core on one simulated link, for the LKE rule tests."""

from functools import lru_cache
from ipaddress import IPv6Address, IPv6Network

from aaa_mip6.lke import crypto
from aaa_mip6.lke.actions import SendIcmp, SendMobility
from aaa_mip6.lke.ar import ArCore, ArPolicy
from aaa_mip6.lke.messages import KeyExchangeRequest
from aaa_mip6.lke.mn import MnCore, MnPolicy
from aaa_mip6.lke.nd import ALL_NODES, LinkLayerAddress, NeighborAdvertisement

AR_LL = IPv6Address("fe80::1")
AR_GLOBAL = IPv6Address("2001:db8:1::1")
PREFIX = IPv6Network("2001:db8:1::/64")
MN_LL = IPv6Address("fe80::5")
COA = IPv6Address("2001:db8:1::5")
NEW_COA = IPv6Address("2001:db8:2::5")
MN_LLA = bytes.fromhex("020000000005")
ATTACKER_LL = IPv6Address("fe80::bad")
ATTACKER_LLA = bytes.fromhex("020000000bad")
T0 = 1_000_000.0


@lru_cache(maxsize=None)
def ar_key():
    return crypto.generate_key(2048)


def make_ar(**settings) -> ArCore:
    return ArCore(ArPolicy(AR_LL, AR_GLOBAL, (PREFIX,), **settings), ar_key())


def make_mn(**settings) -> MnCore:
    settings.setdefault("link_layer_address", MN_LLA)
    return MnCore(MnPolicy(**settings))


def deliver(core, action, now, hop_limit=255):
    """Hand a send action of one core to the other core, as the link would."""
    receive = core.icmp_received if isinstance(action, SendIcmp) else core.mobility_received
    assert isinstance(action, (SendIcmp, SendMobility))
    return receive(action.data, action.source, action.destination, hop_limit, now)


def sends(actions):
    return [a for a in actions if isinstance(a, (SendIcmp, SendMobility))]


def learn(ar: ArCore, mn: MnCore, now=T0):
    (advertisement,) = ar.router_advertisement(now)
    assert deliver(mn, advertisement, now) == []


def key_exchange(ar: ArCore, mn: MnCore, now=T0, care_of=COA):
    """RA, KE Request, KE Ack and the first DAD probe: (ack actions, NA actions of the MN)."""
    learn(ar, mn, now)
    (request,) = mn.key_exchange(care_of, MN_LL, now)
    ack, probe = deliver(ar, request, now)
    ready = deliver(mn, ack, now)
    answer = deliver(mn, probe, now)
    return ready, probe, answer


def establish(ar: ArCore, mn: MnCore, now=T0, care_of=COA):
    """A valid LBSA on both sides; returns the time the AR's DAD ended."""
    ready, probe, (answer,) = key_exchange(ar, mn, now, care_of)
    assert deliver(ar, answer, now) == []
    assert deliver(ar, SendIcmp(care_of, ALL_NODES, kernel_na(care_of)), now) == []
    for _ in range(5):
        if ar.lbsas:
            break
        now = ar.timer()
        for action in ar.handle_timer(now):
            if isinstance(action, SendIcmp):  # the second probe
                for reply in deliver(mn, action, now):
                    deliver(ar, reply, now)
    assert ar.lbsas and mn.lbsas
    return now


def established(**settings):
    """A new AR (``settings`` for its policy) and MN sharing a valid LBSA:
    (ar, mn, the LBSA's Kbm, the time the AR's DAD ended)."""
    ar, mn = make_ar(**settings), make_mn()
    now = establish(ar, mn)
    return ar, mn, mn.lbsas[0].kbm, now


def kernel_na(target: IPv6Address, lla: bytes = MN_LLA) -> bytes:
    """The plain NA a node's kernel multicasts for an address it holds."""
    return NeighborAdvertisement(target, options=(LinkLayerAddress(2, lla),)).encode(
        target, ALL_NODES)


def ke_request(kbm: bytes, sequence: int, care_of=COA, source=MN_LL, lifetime=100) -> bytes:
    data = crypto.wrap_kbm(ar_key().public_key(), kbm, care_of)
    return KeyExchangeRequest(sequence, care_of, lifetime, data).encode(source, AR_LL)
