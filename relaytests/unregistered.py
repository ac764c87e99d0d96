"""Discovery on the portal's side: the mail servers in scope that nobody registered.

`discover` asks the engine (`probe.discovery`) for the MX hosts of the scope domains, of every
registered mail domain and of RELAYTEST_DISCOVERY_DOMAINS, and, when RELAYTEST_DISCOVERY_SWEEP is on,
for every listener of the scope networks on RELAYTEST_DISCOVERY_PORTS; each is kept as a FoundServer
(address and port). A found server is registered when a registered server tests that address and port,
so registering it by hand counts as well. Central IT assigns an unregistered one to a department, which
registers it through the registration form (scope check included) and tests it, or marks it known with
a note.
"""

from __future__ import annotations

import ipaddress
import logging
from itertools import chain

from asgiref.sync import async_to_sync
from django.conf import settings
from django.utils import timezone

from relaytests.forms import RegisterServerForm
from relaytests.models import Department, FoundServer, MailServer, hosts_of
from relaytests.probe import discovery

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds for a connection, a greeting and a DNS answer


def domains() -> list[str]:
    """The mail domains whose MX hosts are looked up: the scope's, the registered ones, and more."""
    registered = MailServer.objects.exclude(mail_domain="").values_list("mail_domain", flat=True)
    return list(
        dict.fromkeys([*settings.RELAYTEST_SCOPE_DOMAINS, *registered, *settings.RELAYTEST_DISCOVERY_DOMAINS])
    )


def too_large() -> list[str]:
    """The scope networks with more addresses than the sweep takes (RELAYTEST_DISCOVERY_MAX_ADDRESSES)."""
    limit = settings.RELAYTEST_DISCOVERY_MAX_ADDRESSES
    return [n for n in settings.RELAYTEST_SCOPE_NETWORKS if ipaddress.ip_network(n).num_addresses > limit]


def swept_networks() -> list[str]:
    """The scope networks the sweep connects to: none unless it is on, and none too large."""
    if not settings.RELAYTEST_DISCOVERY_SWEEP:
        return []
    skipped = too_large()
    for network in skipped:
        log.warning(
            "discovery: %s has more addresses than RELAYTEST_DISCOVERY_MAX_ADDRESSES; not swept", network
        )
    return [network for network in settings.RELAYTEST_SCOPE_NETWORKS if network not in skipped]


def discover() -> int:
    """Look for the mail servers in scope and keep what was found; how many were found."""
    mx_hosts = async_to_sync(discovery.mail_hosts)(domains(), settings.RELAYTEST_RESOLVER, TIMEOUT)
    swept = (
        (address, "") for address in discovery.network_hosts(swept_networks()) if address not in mx_hosts
    )
    listeners = async_to_sync(discovery.sweep)(
        chain(mx_hosts.items(), swept),
        settings.RELAYTEST_DISCOVERY_PORTS,
        rate=settings.RELAYTEST_DISCOVERY_RATE,
        timeout=TIMEOUT,
        source_address=settings.RELAYTEST_SOURCE_ADDRESS,
        resolver=settings.RELAYTEST_RESOLVER,
    )
    now = timezone.now()
    for listener in listeners:
        FoundServer.objects.update_or_create(
            address=listener.address,
            port=listener.port,
            defaults={
                "source": FoundServer.Source.MX if listener.name else FoundServer.Source.SWEEP,
                "name": listener.name,
                "ptr": listener.ptr,
                "greeting": listener.greeting,
                "last_seen": now,
            },
        )
    return len(listeners)


def registered_hosts() -> set[tuple[str, int]]:
    """Every (address, port) a registered server is tested on."""
    servers = MailServer.objects.values_list("addresses", "port", "more_ports")
    return set().union(*(hosts_of(addresses, port, more) for addresses, port, more in servers))


def coverage() -> dict:
    """The found servers nobody registered (not marked known), those marked known, and how many of all
    found are registered."""
    registered = registered_hosts()
    found = list(FoundServer.objects.all())
    unregistered = [f for f in found if (f.address, f.port) not in registered]
    return {
        "unregistered": [f for f in unregistered if not f.ignored],
        "known": [f for f in unregistered if f.ignored],
        "registered": len(found) - len(unregistered),
        "found": len(found),
    }


def assign(found: FoundServer, department: Department, user) -> tuple[MailServer | None, list[str]]:
    """Register the found server in the department as a member would (the registration form: syntax,
    duplicates, scope); the server, or None and the form's reasons why not."""
    form = RegisterServerForm(
        {"department": department.pk, "what": "server", "target": found.target_text, "mail_domain": ""},
        departments=Department.objects.filter(pk=department.pk),
    )
    if not form.is_valid():
        return None, [error for errors in form.errors.values() for error in errors]
    return form.save(user), []


def ignore(found: FoundServer, note: str) -> None:
    found.ignored, found.note = True, note.strip()
    found.save(update_fields=["ignored", "note"])
