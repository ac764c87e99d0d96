"""`python manage.py relaytest TARGET`: the `relaytest` command (relaytests/probe/cli.py) with the
portal's settings as its defaults, for operators of the portal."""

from __future__ import annotations

import argparse
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from relaytests.probe import cli
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
        resolver=settings.RELAYTEST_RESOLVER,
        dnsbl_zones=tuple(settings.RELAYTEST_DNSBL_ZONES),
        contact=settings.DEFAULT_FROM_EMAIL,
    )


class Command(BaseCommand):
    help = cli.DESCRIPTION

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.error = cli.one_line_error
        return parser

    def add_arguments(self, parser):
        cli.add_arguments(parser, portal_defaults())

    def handle(self, *args, **options):
        sys.exit(cli.run(argparse.Namespace(**options), portal_defaults(), self.stdout))
