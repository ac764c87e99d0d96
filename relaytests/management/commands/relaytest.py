"""`python manage.py relaytest TARGET`: the `relaytest` command (relaytests/probe/cli.py) with the
portal's settings as its defaults, for operators of the portal."""

from __future__ import annotations

import argparse
import sys

from django.core.management.base import BaseCommand

from relaytests.engine_settings import portal_defaults
from relaytests.probe import cli


class Command(BaseCommand):
    help = cli.DESCRIPTION
    # Run from cron or a monitoring agent every few minutes: Django's system checks would load the
    # URLconf, the views and the API's schema tools first (0.4 s of every call) and prove nothing here.
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.error = cli.one_line_error
        return parser

    def add_arguments(self, parser):
        cli.add_arguments(parser, portal_defaults())

    def handle(self, *args, **options):
        sys.exit(cli.run(argparse.Namespace(**options), portal_defaults(), self.stdout))
