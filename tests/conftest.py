"""Test-wide safety net: no test may send a DNS query beyond loopback.

This machine's own resolver is not on loopback. Every lookup that a test does not point at a
zone of its own goes to an empty test DNS server on loopback instead, which answers NXDOMAIN at
once: in this process because dnspython's "system configuration" is replaced, in subprocesses
(the CLI, Celery workers) because they inherit RELAYTEST_RESOLVER from the environment.
"""

import os

import dns.resolver

from tests.dnsserver import ZoneServer

EMPTY_DNS = ZoneServer("").__enter__()  # lives as long as the test session; a daemon thread
_address, _port = EMPTY_DNS.address.rsplit(":", 1)

os.environ.setdefault("RELAYTEST_RESOLVER", EMPTY_DNS.address)


def _loopback_resolv_conf(resolver, *args, **kwargs):
    resolver.nameservers = [_address]
    resolver.port = int(_port)


dns.resolver.BaseResolver.read_resolv_conf = _loopback_resolv_conf
dns.resolver.default_resolver = None  # rebuilt on first use, with the loopback configuration


# The kinds of test that take longest, longest first: when the suite runs in parallel they start
# first, so that none of them is left running alone at the end while the other processes idle.
LONGEST_FIRST = ("browser", "slow", "postfix", "broker")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        return next(
            (n for n, name in enumerate(LONGEST_FIRST) if item.get_closest_marker(name)), len(LONGEST_FIRST)
        )

    items.sort(key=rank)  # stable: the order within each kind stays the order of the files
