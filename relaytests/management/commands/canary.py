"""`python manage.py canary`: the canary domain's SMTP receiver, recording every relayed test message.

It listens on RELAYTEST_CANARY_LISTEN (HOST:PORT) for RELAYTEST_CANARY_DOMAIN, whose MX must name
this host, and accepts only valid tokens of RELAYTEST_CANARY_SECRET: it never relays. Each message
is stored at once, all its tokens or none (relaytests.deliveries), in the database thread, so the
receiver keeps serving.
SIGINT or SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connections

from relaytests.deliveries import record_message
from relaytests.probe.receiver import CanaryReceiver, Delivery
from relaytests.probe.targets import TargetError, parse_listen_address

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def record_in_long_running_process(deliveries: list[Delivery]) -> None:
    # A receiver runs for weeks: a connection the database closed meanwhile must not fail a delivery.
    close_old_connections()
    record_message(deliveries)


class Command(BaseCommand):
    help = "Run the canary receiver: record relayed test messages for RELAYTEST_CANARY_DOMAIN."
    requires_system_checks: list[str] = []  # it serves SMTP, not pages: the URLconf's checks prove nothing

    def add_arguments(self, parser):
        parser.add_argument("--listen", help="HOST:PORT to listen on (default: RELAYTEST_CANARY_LISTEN)")

    def handle(self, *args, **options):
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
        host, port = listen_address(options["listen"] or settings.RELAYTEST_CANARY_LISTEN)
        asyncio.run(self.serve(host, port))

    async def serve(self, host: str, port: int) -> None:
        receiver = CanaryReceiver(
            settings.RELAYTEST_CANARY_DOMAIN,
            settings.RELAYTEST_CANARY_SECRET,
            sync_to_async(record_in_long_running_process),
            host=host,
            port=port,
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stopping.set)
        try:
            await receiver.start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise CommandError(f"cannot listen on {host}:{port}: {reason}") from None
        domain = receiver.handler.domain
        self.stdout.write(f"canary receiver for {domain} listening on {host}:{receiver.port}")
        try:
            await stopping.wait()
        finally:
            await receiver.stop()
            await sync_to_async(connections.close_all)()
        self.stdout.write("canary receiver stopped")


def listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT, or [IPv6]:PORT; CommandError in one line when it is neither."""
    try:
        return parse_listen_address(text)
    except TargetError as exc:
        raise CommandError(f"RELAYTEST_CANARY_LISTEN / --listen {text!r}: {exc}") from None
