"""Test-wide safety net: no test may send a DNS query beyond loopback.

This machine's own resolver is not on loopback. Every lookup a test forgets to point at the test
DNS server (tests/dnsserver.py) goes to a closed loopback port instead and fails fast: in this
process because dnspython's "system configuration" is replaced, in subprocesses (the CLI, Celery
workers) because they inherit RELAYTEST_RESOLVER from the environment.
"""

import os

import dns.resolver

NOWHERE_ADDRESS, NOWHERE_PORT = "127.0.0.1", 9  # the discard port: nothing listens there in tests

os.environ.setdefault("RELAYTEST_RESOLVER", f"{NOWHERE_ADDRESS}:{NOWHERE_PORT}")


def _loopback_resolv_conf(resolver, *args, **kwargs):
    resolver.nameservers = [NOWHERE_ADDRESS]
    resolver.port = NOWHERE_PORT


dns.resolver.BaseResolver.read_resolv_conf = _loopback_resolv_conf
dns.resolver.default_resolver = None  # rebuilt on first use, with the loopback configuration
