"""SA provisioning policy (RFC 6618 §4.3, §5.6, §5.7): what the HAC hands a successful MN.

:class:`SaPolicy` is pure policy: which ciphersuites and scopes the HAC allows and how
long an SA lives. :class:`Provisioner` turns one authenticated MN into a stored SA and
its bootstrap data: fresh keys sized to the suite, an SPI and home addresses from the
SA store, an HA picked by the selection policy. :meth:`Provisioner.provision` blocks
on the store; the Twisted shell decides where it runs.

AAA-driven bootstrap (EAP flow): the bootstrap attributes of the AAA's Accept
(:class:`aaa_mip6.aaa.BootstrapAttributes`) take precedence over local policy, value by
value: a home address from the AAA is used as sent (no pool allocation); a home link
prefix from the AAA replaces ``hoa_prefix6`` (and home addresses are allocated from it
when the AAA sent none); an HA address from the AAA replaces the selection (with the
port of the configured HA of that address, else of the first configured HA); a DNS
server replaces ``dns6``; Session-Timeout caps the SA lifetime. Whatever the AAA does
not send comes from local policy.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from aaa_mip6.messages import Provision
from aaa_mip6.sa import SCOPE_ALL, SCOPE_SIGNALING, Bootstrap, HomeAgent, SecurityAssociation
from aaa_mip6.store.base import UNALLOCATED_SPI, Outbox, SARecord, SAStore
from aaa_mip6.suites import SUITES, CipherSuite, new_keys, suite_by_code

DEFAULT_LIFETIME = 86_400  # seconds: one day


@dataclass(frozen=True, slots=True)
class SaPolicy:
    """Which SAs the HAC may create.

    ``suites``: the allowed ciphersuites. The chosen suite is the first in the MN's
    list that is allowed: the MN's order of preference wins (RFC 6618 §5.6.5: the
    suite MUST be one the MN listed). ``scopes``: the allowed ``mip6-sas`` values;
    the MN's request is honoured when allowed, else ``default_scope`` is used.
    ``lifetime``: seconds from provisioning to the SA's validity end.
    """

    suites: frozenset[CipherSuite] = frozenset(SUITES.values())
    scopes: frozenset[int] = frozenset({SCOPE_SIGNALING, SCOPE_ALL})
    default_scope: int = SCOPE_ALL
    lifetime: int = DEFAULT_LIFETIME

    def __post_init__(self) -> None:
        if not self.suites:
            raise ValueError("at least one ciphersuite must be allowed")
        if not self.scopes or not self.scopes <= {SCOPE_SIGNALING, SCOPE_ALL}:
            raise ValueError("scopes must be a non-empty subset of {0, 1}")
        if self.default_scope not in self.scopes:
            raise ValueError("the default scope must be one of the allowed scopes")
        if self.lifetime < 1:
            raise ValueError("the SA lifetime must be at least one second")

    def choose_suite(self, offered: Sequence[bytes]) -> CipherSuite | None:
        """The first suite of the MN's list that policy allows, or None (answered with 501)."""
        for code in offered:
            suite = suite_by_code(code)
            if suite is not None and suite in self.suites:
                return suite
        return None

    def choose_scope(self, requested: int) -> int:
        """The MN's requested scope if allowed, else the policy's default."""
        return requested if requested in self.scopes else self.default_scope

    def validity_end(self, now: datetime, cap: int | None = None) -> datetime:
        """``now`` plus the lifetime (at most ``cap`` seconds, e.g. the AAA's Session-Timeout,
        and at least one), as whole seconds UTC (what rfc1123-date can carry)."""
        lifetime = self.lifetime if cap is None else max(1, min(cap, self.lifetime))
        end = now.astimezone(timezone.utc) + timedelta(seconds=lifetime)
        return end.replace(microsecond=0)


class HaSelection(enum.StrEnum):
    """How an MN is given one HA out of several."""

    ROUND_ROBIN = "round-robin"  # spread load: each bootstrap takes the next HA
    HASH = "hash"  # sticky: a hash of the mn-id picks the HA, the same one every time
    LEAST_LOADED = "least-loaded"  # the HA with the fewest active SAs (the store's count)


def choose_home_agent(selection: HaSelection, agents: Sequence[HomeAgent], mn_id: str,
                      turn: int, load: Mapping[HomeAgent, int] | None = None,
                      down: Collection[HomeAgent] = ()) -> HomeAgent:
    """The HA for one bootstrap: among ``agents`` not ``down`` (all of them, if every one
    is down: an MN is better served by an HA that may come back than by none), by
    ``selection``: the ``turn``-th (round-robin), the mn-id's hash (hash), or the fewest
    active SAs in ``load`` with ``turn`` breaking ties (least-loaded)."""
    candidates = [agent for agent in agents if agent not in down] or list(agents)
    if selection is HaSelection.HASH:
        digest = hashlib.sha256(mn_id.encode("utf-8")).digest()
        return candidates[int.from_bytes(digest[:8], "big") % len(candidates)]
    if selection is HaSelection.LEAST_LOADED:
        load = load or {}
        fewest = min(load.get(agent, 0) for agent in candidates)
        candidates = [agent for agent in candidates if load.get(agent, 0) == fewest]
    return candidates[turn % len(candidates)]


@dataclass(frozen=True, slots=True)
class BootstrapPolicy:
    """The Mobile IPv6 bootstrapping data of RFC 6618 §5.7 the HAC gives out.

    ``home_agents`` (at least one) with their ports; ``hoa_prefix6`` the IPv6 prefix
    home addresses come from (also sent as ``mip6-ip6-hnp``); ``hoa_pool4`` an
    optional IPv4 subnet for IPv4 home addresses (sent as ``mip6-ip4-hnp``);
    ``dns6``/``dns4`` optional DNS servers.
    """

    home_agents: tuple[HomeAgent, ...]
    hoa_prefix6: ipaddress.IPv6Network | None = None
    hoa_pool4: ipaddress.IPv4Network | None = None
    selection: HaSelection = HaSelection.ROUND_ROBIN
    dns6: ipaddress.IPv6Address | None = None
    dns4: ipaddress.IPv4Address | None = None

    def __post_init__(self) -> None:
        if not self.home_agents:
            raise ValueError("at least one home agent is needed")
        for agent in self.home_agents:
            if agent.address6 is None and agent.address4 is None:
                raise ValueError("a home agent needs an IPv6 or an IPv4 address")

    @property
    def excluded_addresses(self) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
        """The HAs' own addresses: never given to an MN as its home address."""
        return tuple(address for agent in self.home_agents
                     for address in (agent.address6, agent.address4) if address is not None)


class Provisioner:
    """Creates, stores and describes one MN's SA; safe to call from several threads."""

    def __init__(self, store: SAStore, sa_policy: SaPolicy, bootstrap_policy: BootstrapPolicy,
                 *, hac_instance: str,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 outbox: Callable[[HomeAgent], Outbox | None] | None = None):
        self.store = store
        # with SA delivery: what a new SA owes its HA (committed with it), by HA
        self.outbox = outbox
        self.sa_policy = sa_policy
        self.bootstrap_policy = bootstrap_policy
        self.hac_instance = hac_instance
        self._now = now
        self._turn = itertools.count()  # next() is atomic under the GIL
        # kept by the shell (hac.server): active SAs per HA from the store, plus the SAs
        # given since it was read; and the HAs no delivering HAC can reach (SA delivery)
        self.load: dict[HomeAgent, int] = {}
        self.down: frozenset[HomeAgent] = frozenset()

    def select_home_agent(self, mn_id: str) -> HomeAgent:
        """The HA for this bootstrap, by the configured selection policy."""
        agent = choose_home_agent(self.bootstrap_policy.selection,
                                  self.bootstrap_policy.home_agents, mn_id, next(self._turn),
                                  self.load, self.down)
        if self.bootstrap_policy.selection is HaSelection.LEAST_LOADED:
            self.load[agent] = self.load.get(agent, 0) + 1  # until the store is read again
        return agent

    def aaa_home_agent(self, attributes: Mapping) -> HomeAgent | None:
        """The HA the AAA assigned, with the port of the configured HA it names (else the
        first configured HA's port); None if the AAA assigned none."""
        address6 = attributes.get("home_agent_ip6")
        address4 = attributes.get("home_agent_ip4")
        if address6 is None and address4 is None:
            return None
        agents = self.bootstrap_policy.home_agents
        known = [agent for agent in agents if (address6 is not None
                                               and agent.address6 == address6)
                 or (address4 is not None and agent.address4 == address4)]
        return HomeAgent(address6, address4, (known or agents)[0].port)

    def provision(self, mn_id: str, suite: CipherSuite, requested_scope: int,
                  attributes: Mapping | None = None) -> Provision:
        """Store a fresh SA for ``mn_id`` and return what the HAC Done carries.

        ``attributes`` are the AAA's bootstrap values, which win over local policy (see
        the module docstring). Blocks on the store; raises
        :class:`aaa_mip6.store.StoreError` (the HAC answers 500) when the store fails or
        a pool is exhausted, :class:`aaa_mip6.store.StoreUnavailable` (503) when no
        writable database answered in time.
        """
        return self.provision_record(mn_id, suite, requested_scope, attributes)[1]

    def provision_record(self, mn_id: str, suite: CipherSuite, requested_scope: int,
                         attributes: Mapping | None = None) -> tuple[SARecord, Provision]:
        """:meth:`provision`, with the stored record too (what SA delivery pushes), so
        nobody has to read back from the store what was just written."""
        aaa = attributes or {}
        policy = self.bootstrap_policy
        excluded = policy.excluded_addresses
        prefix6 = aaa.get("home_link_prefix", policy.hoa_prefix6)
        home6 = aaa.get("home_address_ip6")
        home4 = aaa.get("home_address_ip4")
        if home6 is None and prefix6 is not None:
            home6 = self.store.home_address(mn_id, prefix6, exclude=excluded)
        if home4 is None and policy.hoa_pool4 is not None:
            home4 = self.store.home_address(mn_id, policy.hoa_pool4, exclude=excluded)
        agent = self.aaa_home_agent(aaa) or self.select_home_agent(mn_id)
        keys = new_keys(suite)
        template = SecurityAssociation(
            spi=UNALLOCATED_SPI, suite=suite.name,
            mn_to_ha_ikey=keys.mn_to_ha_ikey, ha_to_mn_ikey=keys.ha_to_mn_ikey,
            mn_to_ha_ekey=keys.mn_to_ha_ekey, ha_to_mn_ekey=keys.ha_to_mn_ekey,
            validity_end=self.sa_policy.validity_end(self._now(), aaa.get("session_timeout")),
            scope=self.sa_policy.choose_scope(requested_scope), mn_id=mn_id,
            home_address6=home6, home_address4=home4,
        )
        record = self.store.create(template, hac_instance=self.hac_instance, home_agent=agent,
                                   outbox=None if self.outbox is None else self.outbox(agent))
        bootstrap = Bootstrap(agent, home6, home4, prefix6, policy.hoa_pool4,
                              aaa.get("dns_ip6", policy.dns6), policy.dns4)
        return record, Provision.from_security_association(record.sa, bootstrap)

    def provision_records(self, requests: Sequence[tuple]) -> list:
        """:meth:`provision_record` for each ``(mn_id, suite, requested_scope,
        attributes)``, all committed together (the store's group commit: one fsync for
        the lot), in order: each item its result or the exception it raised, which undid
        only its own writes. Raises StoreError, with nothing stored, if the commit fails.
        A batch of one has nothing to share a commit with: it is provisioned as
        :meth:`provision_record` alone does it, without the transaction's statements."""
        if len(requests) == 1:
            try:
                return [self.provision_record(*requests[0])]
            except Exception as error:  # noqa: BLE001 -- handed to the request's caller
                return [error]
        outcomes: list = []
        with self.store.group_commit() as each:
            for request in requests:
                try:
                    with each():
                        outcomes.append(self.provision_record(*request))
                except Exception as error:  # noqa: BLE001 -- handed to that request's caller
                    outcomes.append(error)
        return outcomes
