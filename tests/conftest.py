"""Test-wide safety net: no test may send a DNS query beyond loopback.

This machine's own resolver is not on loopback. Every lookup that a test does not point at a
zone of its own goes to an empty test DNS server on loopback instead, which answers NXDOMAIN at
once: in this process because dnspython's "system configuration" is replaced, in subprocesses
(the CLI, Celery workers) because they inherit RELAYTEST_RESOLVER from the environment.
"""

import itertools
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


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        return next(
            (n for n, name in enumerate(LONGEST_FIRST) if item.get_closest_marker(name)), len(LONGEST_FIRST)
        )

    ranked = sorted(items, key=rank)  # stable: the order within each kind stays the order of the files
    # A module's long tests stay together: they share its costly fixtures (a browser, reports, Postfix).
    units = [
        list(unit)
        for key, unit in itertools.groupby(ranked, key=lambda item: (rank(item), item.path))
        for unit in ([unit] if key[0] < len(LONGEST_FIRST) else ([item] for item in unit))
    ]
    processes = getattr(config, "workerinput", {}).get("workercount", 1)
    items[:] = [item for share in _dealt(units, processes) for item in share]


def _dealt(units: list[list], processes: int) -> list[list]:
    """The units dealt in turn into one share per process, each as long as pytest-xdist's work stealing
    first hands that process (a contiguous slice of the list, then what it steals): so every process
    begins with long tests. Sorted but not dealt, the long tests were all one process's first slice,
    and the others took them over one by one when their short ones ran out, the last at the very end
    (a 7 s test began 134 s into a run of 150)."""
    sizes, remaining = [], sum(len(unit) for unit in units)
    for process in range(processes):
        sizes.append(remaining // (processes - process))
        remaining -= sizes[-1]
    shares: list[list] = [[] for _ in sizes]
    for unit in units:
        while unit:  # to the share with the fewest so far; a unit too long for it goes on in the next
            share = min(
                (n for n in range(processes) if len(shares[n]) < sizes[n]), key=lambda n: len(shares[n])
            )
            room = sizes[share] - len(shares[share])
            shares[share] += unit[:room]
            unit = unit[room:]
    return shares
