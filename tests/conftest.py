"""Test-wide safety net: no test may send a DNS query beyond loopback.

The machine's own resolver is not on loopback, so every lookup a test forgets to point at the
test DNS server (tests/dnsserver.py) goes to a closed loopback port instead and fails fast.
Subprocesses (the CLI, Celery workers) inherit RELAYTEST_RESOLVER from the environment.
"""

import os

import dns.asyncresolver
import dns.resolver

NOWHERE = "127.0.0.1:9"  # the discard port: nothing listens there in tests

os.environ.setdefault("RELAYTEST_RESOLVER", NOWHERE)


def _loopback_only_resolver(module):
    resolver = module.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = 9
    resolver.lifetime = 2.0
    module.default_resolver = resolver


_loopback_only_resolver(dns.resolver)
_loopback_only_resolver(dns.asyncresolver)
