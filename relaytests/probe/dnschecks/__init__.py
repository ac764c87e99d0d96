"""DNS facts about a mail server and its domain: MX, reverse DNS, blocklists, SPF and DMARC.

Every lookup is asynchronous (dnspython), bounded by a timeout and never raises: a resolver
that is down or silent ("DNS unavailable: ...") or that answers SERVFAIL turns into a check
with status `error` and the reason, never into a `pass`.

Check ids: `mx`, `spf`, `dmarc` (per mail domain) and `ptr`, `dnsbl` (per address). There is
one `dnsbl` check per blocklist zone; its data names the zone, so every blocklist finding
shares one id for the report and the dashboards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from relaytests.probe.dnschecks.blocklists import (
    DEFAULT_DNSBL_ZONES,
    KNOWN_BLOCKLISTS,
    Blocklist,
    blocklist,
    dnsbl_check,
)
from relaytests.probe.dnschecks.client import (
    DnsClient,
    is_ip_address,
    parse_port,
    parse_resolver,
    split_host_port,
)
from relaytests.probe.dnschecks.mx import find_mail_hosts, mx_check
from relaytests.probe.dnschecks.policy import dmarc_check, spf_check
from relaytests.probe.dnschecks.ptr import ptr_check
from relaytests.probe.report import Check

# What other modules use; the rest stays inside the package.
__all__ = [
    "DEFAULT_DNSBL_ZONES",
    "KNOWN_BLOCKLISTS",
    "Blocklist",
    "DnsClient",
    "blocklist",
    "domain_checks",
    "find_mail_hosts",
    "host_checks",
    "mx_check",
    "parse_port",
    "parse_resolver",
    "split_host_port",
]


# ---- What the suite calls ------------------------------------------------------------------


async def host_checks(
    address: str,
    banner_names: list[str],
    *,
    resolver: str | None = None,
    dnsbl_zones: Iterable[str | Blocklist] = DEFAULT_DNSBL_ZONES,
    timeout: float = 5.0,
) -> list[Check]:
    """Reverse DNS and one `dnsbl` check per blocklist zone for one address, all at once.

    `dnsbl_zones` holds zone names ("zone" or "zone=removal URL", as in RELAYTEST_DNSBL_ZONES)
    or Blocklist entries. `banner_names` are the names the server gave in its greeting and EHLO.
    """
    if not is_ip_address(address):
        detail = f"Could not check reverse DNS or blocklists: '{address}' is not an IP address."
        return [Check("ptr", "error", detail, {"address": address})]
    client = DnsClient(resolver, timeout)
    checks = await asyncio.gather(
        ptr_check(address, banner_names, client),
        *(dnsbl_check(address, zone, client) for zone in dnsbl_zones),
    )
    return list(checks)


async def domain_checks(domain: str, *, resolver: str | None = None, timeout: float = 5.0) -> list[Check]:
    """MX, SPF and DMARC of a mail domain, all at once."""
    client = DnsClient(resolver, timeout)
    mail, *policy = await asyncio.gather(
        find_mail_hosts(domain, client), spf_check(domain, client), dmarc_check(domain, client)
    )
    return [mx_check(mail), *policy]
