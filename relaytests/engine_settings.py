"""The engine's settings as the portal has them: one mapping from Django settings to the engine's
ProbeDefaults, for the worker's runs (tasks.suite_config) and `manage.py relaytest` alike.

It is read at each call, not at import, so that a changed setting (override_settings in a test, a
restarted worker) is what the next run sees.
"""

from __future__ import annotations

from django.conf import settings

from relaytests.probe.environment import ProbeDefaults


def portal_defaults() -> ProbeDefaults:
    return ProbeDefaults(
        canary_domain=settings.RELAYTEST_CANARY_DOMAIN,
        canary_secret=settings.RELAYTEST_CANARY_SECRET,
        probe_helo=settings.RELAYTEST_PROBE_HELO,
        source_address=settings.RELAYTEST_SOURCE_ADDRESS,
        command_timeout=settings.RELAYTEST_COMMAND_TIMEOUT,
        run_deadline=settings.RELAYTEST_RUN_DEADLINE,
        host_budget=settings.RELAYTEST_HOST_BUDGET,
        internal_networks=tuple(settings.RELAYTEST_INTERNAL_NETWORKS),
        vantage=settings.RELAYTEST_VANTAGE,
        resolver=settings.RELAYTEST_RESOLVER,
        dnsbl_zones=tuple(settings.RELAYTEST_DNSBL_ZONES),
        # Whom a relaying server's postmaster can ask about the test message.
        contact=settings.PORTAL_HELP_CONTACT or settings.DEFAULT_FROM_EMAIL,
    )
