"""`relaytest TARGET`: the relay test suite from a shell, with monitoring-plugin exit codes.

This is the operator's tool on their own machine: it does not apply the portal's scope rules.
Exit codes (docs/report-schema.md): 0 secure, 1 warnings only, 2 relay, 3 inconclusive or could not test.
Its defaults are the portal's probe settings, read from the same environment variables
(environment.ProbeDefaults); `manage.py relaytest` is this command with the portal's settings.

It starts at once: the engine's modules are imported only once the arguments ask for them (the
catalogue for --list-vectors, the suite for a test, the receiver for --canary-listen).
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import socket
import sys
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from relaytests.probe.environment import LABEL, ProbeDefaults, SettingError
from relaytests.probe.vocabulary import EXIT_INCONCLUSIVE

if TYPE_CHECKING:
    from relaytests.probe.report import Report
    from relaytests.probe.suite import SuiteConfig

PROG = "relaytest"
DESCRIPTION = "Test a mail server for open relaying, as the portal does, and print the report."
VERDICT_COLUMN = 9
DEFAULT_CANARY_WAIT = 60.0
CANARY_POLL_SECONDS = 0.1
MAX_CONNECT_TIMEOUT = 30.0


class CommandFailed(Exception):
    """Nothing could be tested for a reason the operator must fix: one line on stderr, exit 3."""


def main(argv: list[str] | None = None) -> int:
    """The console script: defaults from the environment, arguments from argv, the exit code back."""
    try:
        defaults = ProbeDefaults.from_environment()
    except (SettingError, OSError) as error:  # a bad value, or an unreadable NAME_FILE
        return say_failure(str(error))
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.error = one_line_error  # type: ignore[method-assign]
    add_arguments(parser, defaults)
    try:
        options = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad argument (3, said in one line)
        return stop.code if isinstance(stop.code, int) else EXIT_INCONCLUSIVE
    return run(options, defaults, sys.stdout)


def one_line_error(message: str) -> NoReturn:
    """argparse's error: monitoring plugins answer UNKNOWN (3) to bad arguments, not argparse's 2."""
    say_failure(message)
    sys.exit(EXIT_INCONCLUSIVE)


def say_failure(message: str) -> int:
    sys.stderr.write(f"{PROG}: {message}\n")
    return EXIT_INCONCLUSIVE


def add_arguments(parser: argparse.ArgumentParser, defaults: ProbeDefaults) -> None:
    parser.add_argument("target", nargs="?", help="hostname, IPv4 or [IPv6] address, optionally :PORT")
    parser.add_argument("--domain", help="a mail domain: test its MX hosts")
    parser.add_argument(
        "--port",
        type=port_number,
        action="append",
        dest="ports",
        help="SMTP port, again for more (--port 25 --port 587 --port 465); each is tested as its own host; "
        "465 speaks TLS from the first byte (default 25)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument(
        "--canary-domain",
        default=defaults.canary_domain,
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
    parser.add_argument("--helo", default=defaults.probe_helo, help="the name the probe greets with")
    parser.add_argument(
        "--source-address", default=defaults.source_address, help="local address to connect from"
    )
    parser.add_argument(
        "--vantage-label",
        type=vantage_label,
        default=defaults.vantage,
        help="where this probe tests from, as the report says (default %(default)s; e.g. inside)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=defaults.command_timeout,
        help="seconds to wait for each reply (default %(default)s)",
    )
    parser.add_argument(
        "--host-budget",
        type=positive_seconds,
        default=defaults.host_budget,
        help="seconds one host may take once it delays every reply (default %(default)s)",
    )
    parser.add_argument("--local-domain", help="the server's mail domain, when you know it")
    parser.add_argument(
        "--resolver",
        default=defaults.resolver,
        help="DNS resolver ADDRESS[:PORT] for every lookup (default: the system's)",
    )


def run(options: argparse.Namespace, defaults: ProbeDefaults, stdout: TextIO) -> int:
    """Lists the catalogue or tests the target; prints the report and returns its exit code."""
    survive_any_encoding(sys.stdout, sys.stderr)
    if options.list_vectors:
        stdout.write(vector_list() + "\n")
        return 0
    if bool(options.target) == bool(options.domain):
        return say_failure("give a TARGET or --domain D (one of them)")
    import asyncio  # here, not for --list-vectors: importing it is half of that one's start-up

    try:
        report = asyncio.run(probe(options, suite_config(options, defaults)))
    except CommandFailed as failure:
        return say_failure(str(failure))
    stdout.write((json.dumps(report.to_dict(), indent=2) if options.json else render_text(report)) + "\n")
    for problem in untested(report):
        say_failure(problem)
    return report.exit_code()


def vector_list() -> str:
    from relaytests.probe.vectors import catalogue

    width = max(len(v.id) for v in catalogue())
    return "\n".join(
        f"{vector.id:<{width}}  {vector.tier:<4}  {vector.explanation}" for vector in catalogue()
    )


def suite_config(options: argparse.Namespace, defaults: ProbeDefaults) -> SuiteConfig:
    """The defaults, with what the command line sets."""
    return defaults.suite_config(
        canary_domain=options.canary_domain,
        # No secret set: one for this run only, which the command's own receiver checks.
        canary_secret=defaults.canary_secret or secrets.token_urlsafe(32),
        probe_helo=options.helo,
        source_address=options.source_address,
        vantage=options.vantage_label,
        command_timeout=options.timeout,
        connect_timeout=min(options.timeout, MAX_CONNECT_TIMEOUT),
        host_budget=options.host_budget,
        vector_ids=options.vectors.split(",") if options.vectors else None,
        local_domain=options.local_domain or options.domain,
        resolver=options.resolver or None,
        portal_name=f"relaytest command on {socket.getfqdn()}",
    )


async def probe(options: argparse.Namespace, config: SuiteConfig) -> Report:
    """The report on the target; with --canary-listen, the test messages that arrived settle it."""
    if not options.canary_listen:
        return await probe_the_target(options, config)
    import logging

    from relaytests.probe.receiver import CanaryReceiver, Delivery
    from relaytests.probe.suite import settle_deliveries

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter

    arrived: dict[str, dict] = {}

    def remember(deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            arrived.setdefault(delivery.token, delivery.arrival())

    host, port = options.canary_listen
    receiver = CanaryReceiver(config.canary_domain, config.canary_secret, remember, host=host, port=port)
    try:
        await receiver.start()
    except OSError as exc:
        raise CommandFailed(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    try:
        config.send_data = True
        report = await probe_the_target(options, config)
        await wait_for_canaries(report, arrived, options.canary_wait)
    finally:
        await receiver.stop()
    settle_deliveries(report, arrived)
    return report


async def probe_the_target(options: argparse.Namespace, config: SuiteConfig) -> Report:
    from relaytests.probe.suite import probe_target

    # No --port: the engine's own default. A port given twice is tested once.
    ports: dict[str, Any] = {"ports": tuple(dict.fromkeys(options.ports))} if options.ports else {}
    if options.domain:
        return await probe_target(options.domain, config, domain=True, **ports)
    return await probe_target(options.target, config, **ports)


async def wait_for_canaries(report: Report, arrived: dict, wait: float) -> None:
    """Until every test message a server took has arrived, or the wait is over."""
    import asyncio

    from relaytests.probe.suite import awaited_tokens

    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait
    while awaited_tokens(report) - arrived.keys() and loop.time() < give_up:
        await asyncio.sleep(CANARY_POLL_SECONDS)


def port_number(text: str) -> int:
    from relaytests.probe.dnschecks.client import parse_port

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


def vantage_label(text: str) -> str:
    if not LABEL.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a short lower-case name such as outside or inside")
    return text


def listen_address(text: str) -> tuple[str, int]:
    from relaytests.probe.targets import TargetError, parse_listen_address

    try:
        return parse_listen_address(text)
    except TargetError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def survive_any_encoding(*streams: TextIO) -> None:
    """Write what a terminal's encoding cannot show (a server's U+FFFD on an ASCII pipe) as \\u escapes.

    The report's text is already free of control characters; this keeps a strict encoding
    (PYTHONIOENCODING=ascii:strict, a C locale) from turning a server's words into a traceback.
    """
    for stream in streams:
        if isinstance(stream, io.TextIOWrapper):  # a real text stream, not a test's StringIO
            stream.reconfigure(errors="backslashreplace")


def untested(report: Report) -> list[str]:
    """One line for each thing that could not be tested at all: the errors an operator must see."""
    from relaytests.probe.sanitise import safe_text

    if not report.hosts:
        return [safe_text(f"could not test {report.target}: {report.error}", None)]
    return [safe_text(f"{h.address} port {h.port}: {h.reason}", None) for h in report.hosts if not h.vectors]


def render_text(report: Report) -> str:
    """The report for a terminal: verdict first, then per host what was tried and what came back."""
    from relaytests.probe.sanitise import safe_text

    source = f" ({report.probe.source_address})" if report.probe.source_address else ""
    lines = [
        f"{report.target}: {report.verdict.upper()}",
        report.summary,
        f"tested from: {report.probe.vantage}{source}",
        "",
    ]
    for host in report.hosts:
        tls = " (TLS on connect)" if host.implicit_tls else ""
        lines.append(f"== {host.address} port {host.port}{tls}: {host.verdict} ({host.reason})")
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


if __name__ == "__main__":
    sys.exit(main())
