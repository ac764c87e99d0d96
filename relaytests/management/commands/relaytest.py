"""`python manage.py relaytest TARGET`: the relay test suite from a shell, with monitoring-plugin exit codes.

This is the operator's tool on their own machine: it does not apply the portal's scope rules.
Exit codes (docs/report-schema.md): 0 secure, 1 warnings only, 2 relay, 3 inconclusive or could not test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from relaytests.probe.dnschecks import parse_port
from relaytests.probe.receiver import CanaryReceiver, Delivery
from relaytests.probe.report import Report
from relaytests.probe.sanitise import safe_text
from relaytests.probe.suite import SuiteConfig, awaited_tokens, probe_target, settle_deliveries
from relaytests.probe.targets import TargetError, parse_listen_address
from relaytests.probe.vectors import catalogue
from relaytests.probe.vocabulary import EXIT_INCONCLUSIVE

VERDICT_COLUMN = 9
DEFAULT_CANARY_WAIT = 60.0
CANARY_POLL_SECONDS = 0.1


def port_number(text: str) -> int:
    try:
        return parse_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return seconds


class Command(BaseCommand):
    help = "Test a mail server for open relaying, as the portal does, and print the report."

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def one_line_error(message: str):
            # Monitoring plugins answer UNKNOWN (3) to bad arguments, not argparse's 2.
            sys.stderr.write(f"relaytest: {message}\n")
            sys.exit(EXIT_INCONCLUSIVE)

        parser.error = one_line_error
        return parser

    def add_arguments(self, parser):
        parser.add_argument("target", nargs="?", help="hostname, IPv4 or [IPv6] address, optionally :PORT")
        parser.add_argument("--domain", help="a mail domain: test its MX hosts")
        parser.add_argument("--port", type=port_number, default=25, help="SMTP port (default 25)")
        parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
        parser.add_argument(
            "--canary-domain",
            default=settings.RELAYTEST_CANARY_DOMAIN,
            help="the canary domain every relay vector addresses",
        )
        parser.add_argument(
            "--canary-listen",
            type=listen_address,
            help="HOST:PORT: run a canary receiver inside this command, for confirmed delivery",
        )
        parser.add_argument(
            "--canary-wait",
            type=positive_seconds,
            default=DEFAULT_CANARY_WAIT,
            help="seconds to wait for relayed test messages (default %(default)s)",
        )
        parser.add_argument("--vectors", help="comma-separated vector ids to run (default: all)")
        parser.add_argument("--list-vectors", action="store_true", help="list the vector catalogue and exit")
        parser.add_argument(
            "--helo", default=settings.RELAYTEST_PROBE_HELO, help="the name the probe greets with"
        )
        parser.add_argument(
            "--source-address",
            default=settings.RELAYTEST_SOURCE_ADDRESS,
            help="local address to connect from",
        )
        parser.add_argument(
            "--timeout",
            type=positive_seconds,
            default=settings.RELAYTEST_COMMAND_TIMEOUT,
            help="seconds to wait for each reply (default %(default)s)",
        )
        parser.add_argument(
            "--host-budget",
            type=positive_seconds,
            default=settings.RELAYTEST_HOST_BUDGET,
            help="seconds one host may take once it delays every reply (default %(default)s)",
        )
        parser.add_argument("--local-domain", help="the server's mail domain, when you know it")
        parser.add_argument(
            "--resolver",
            default=settings.RELAYTEST_RESOLVER,
            help="DNS resolver ADDRESS[:PORT] for every lookup (default: the system's)",
        )

    def handle(self, *args, **options):
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
        survive_any_encoding(sys.stdout, sys.stderr)
        if options["list_vectors"]:
            self._list_vectors()
            return
        if bool(options["target"]) == bool(options["domain"]):
            self.create_parser("manage.py", "relaytest").error("give a TARGET or --domain D (one of them)")
        report = asyncio.run(self._probe(options))
        if options["json"]:
            self.stdout.write(json.dumps(report.to_dict(), indent=2))
        else:
            self.stdout.write(render_text(report))
        for problem in untested(report):
            sys.stderr.write(f"relaytest: {safe_text(problem, None)}\n")
        sys.exit(report.exit_code())

    async def _probe(self, options) -> Report:
        config = self._config(options)
        if not options["canary_listen"]:
            return await self._run(options, config)
        arrived: dict[str, dict] = {}

        def remember(deliveries: list[Delivery]) -> None:
            for delivery in deliveries:
                arrived.setdefault(delivery.token, delivery.arrival())

        host, port = options["canary_listen"]
        receiver = CanaryReceiver(config.canary_domain, config.canary_secret, remember, host=host, port=port)
        try:
            await receiver.start()
        except OSError as exc:
            self.create_parser("manage.py", "relaytest").error(
                f"cannot listen on {host}:{port}: {exc.strerror}"
            )
        try:
            config.send_data = True
            report = await self._run(options, config)
            await wait_for_canaries(report, arrived, options["canary_wait"])
        finally:
            await receiver.stop()
        settle_deliveries(report, arrived)
        return report

    async def _run(self, options, config: SuiteConfig) -> Report:
        if options["domain"]:
            return await probe_target(options["domain"], config, port=options["port"], domain=True)
        return await probe_target(options["target"], config, port=options["port"])

    def _config(self, options) -> SuiteConfig:
        return SuiteConfig(
            canary_domain=options["canary_domain"],
            canary_secret=settings.RELAYTEST_CANARY_SECRET,
            probe_helo=options["helo"],
            source_address=options["source_address"],
            command_timeout=options["timeout"],
            connect_timeout=min(options["timeout"], 30.0),
            run_deadline=settings.RELAYTEST_RUN_DEADLINE,
            host_budget=options["host_budget"],
            vector_ids=options["vectors"].split(",") if options["vectors"] else None,
            local_domain=options["local_domain"] or options["domain"],
            internal_networks=tuple(settings.RELAYTEST_INTERNAL_NETWORKS),
            resolver=options["resolver"] or None,
            dnsbl_zones=tuple(settings.RELAYTEST_DNSBL_ZONES) or None,
            portal_name=f"relaytest command on {socket.getfqdn()}",
            contact=settings.DEFAULT_FROM_EMAIL,
        )

    def _list_vectors(self) -> None:
        width = max(len(v.id) for v in catalogue())
        for vector in catalogue():
            self.stdout.write(f"{vector.id:<{width}}  {vector.tier:<4}  {vector.explanation}")


def survive_any_encoding(*streams) -> None:
    """Write what a terminal's encoding cannot show (a server's U+FFFD on an ASCII pipe) as \\u escapes.

    The report's text is already free of control characters; this keeps a strict encoding
    (PYTHONIOENCODING=ascii:strict, a C locale) from turning a server's words into a traceback.
    """
    for stream in streams:
        if hasattr(stream, "reconfigure"):  # a real text stream, not a test's StringIO
            stream.reconfigure(errors="backslashreplace")


def listen_address(text: str) -> tuple[str, int]:
    try:
        return parse_listen_address(text)
    except TargetError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


async def wait_for_canaries(report: Report, arrived: dict, wait: float) -> None:
    """Until every test message a server took has arrived, or the wait is over."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait
    while awaited_tokens(report) - arrived.keys() and loop.time() < give_up:
        await asyncio.sleep(CANARY_POLL_SECONDS)


def untested(report: Report) -> list[str]:
    """One line for each thing that could not be tested at all: the errors an operator must see."""
    if not report.hosts:
        return [f"could not test {report.target}: {report.error}"]
    return [f"{h.address} port {h.port}: {h.reason}" for h in report.hosts if not h.vectors]


def render_text(report: Report) -> str:
    """The report for a terminal: verdict first, then per host what was tried and what came back."""
    lines = [f"{report.target}: {report.verdict.upper()}", report.summary, ""]
    for host in report.hosts:
        lines.append(f"== {host.address} port {host.port}: {host.verdict} ({host.reason})")
        if host.banner:
            lines.append(f"   banner: {host.banner}")
        lines.append(f"   software: {host.software.family} {host.software.version or ''}".rstrip())
        for v in host.vectors:
            lines.append(f"   {v.outcome:<{VERDICT_COLUMN}} {v.id:<24} RCPT TO:{v.rcpt_to}  -> {v.reply}")
        for check in host.checks:
            lines.append(f"   [{check.status}] {check.id}: {check.detail}")
        lines.append("")
    for check in report.checks:
        lines.append(f"[{check.status}] {check.id}: {check.detail}")
    lines += unexpected_lines(report)
    return "\n".join(safe_text(line, None) for line in lines)  # a report from elsewhere may be unclean


def unexpected_lines(report: Report) -> list[str]:
    """Canary arrivals that prove nothing, with where they came from: worth a look, never a verdict."""
    lines = []
    for arrival in report.unexpected_deliveries:
        host = f"{arrival['host']} port {arrival['port']}" if arrival["host"] else "no host of this run"
        lines.append(
            f"[unexpected delivery] {arrival['vector_id'] or arrival['token']} for {host}, "
            f"from {arrival['peer_address']} at {arrival['received_at']}{' (late)' if arrival['late'] else ''}: "
            f"no proof, {arrival['why']}"
        )
        lines += [f"   Received: {hop}" for hop in arrival["received_chain"]]
    return lines
