"""`make run`: the whole portal on one machine, in one command that Ctrl-C stops.

Migrates, collects static files, creates the first administrator, then runs a Celery worker
(with embedded beat), gunicorn and, when canary delivery is on, the canary receiver as child
processes. Each child gets its own process group, so the terminal's Ctrl-C reaches only us and
we stop the children in order; a child that dies stops the rest, and the command fails.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal import env
from relaytests.probe.environment import probe_queue
from relaytests.probe.targets import TargetError, parse_listen_address

ADMIN_USERNAME = "admin"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_SECONDS = 0.5
WILDCARD_HOSTS = ("0.0.0.0", "::")


@dataclass
class Child:
    name: str
    process: subprocess.Popen

    def stop(self, grace: float) -> None:
        """SIGTERM (Celery: warm shutdown; gunicorn: graceful), then SIGKILL for the whole group."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group()
        self.process.wait()

    def _kill_group(self) -> None:
        """Pool processes, beat and gunicorn workers must not outlive their parent."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Command(BaseCommand):
    help = (
        "Start the whole portal: migrations, static files, first administrator, a Celery worker, "
        "the web server and the canary receiver."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--listen",
            default=env.string("PORTAL_LISTEN", "127.0.0.1:8000"),
            help="HOST:PORT for the web server (env PORTAL_LISTEN, default 127.0.0.1:8000).",
        )

    def handle(self, *args, listen: str, **options):
        # Checked before anything starts: a typo would otherwise surface as gunicorn failing to bind.
        try:
            parse_listen_address(listen)
        except TargetError as error:
            raise CommandError(f"--listen / PORTAL_LISTEN '{listen}' is not HOST:PORT: {error}") from None
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._create_first_admin()
        stopping = self._catch_stop_signals()
        environment = self._environment(listen)
        commands = self._commands(listen).items()
        children = [Child(name, self._start(command, environment)) for name, command in commands]
        self.stdout.write(self.style.SUCCESS(f"The portal is at http://{listen}/ (Ctrl-C stops it)."))
        dead = self._wait(children, stopping)
        self.stdout.write("Stopping the portal ...")
        for child in children:
            child.stop(env.number("PORTAL_STOP_GRACE", 10.0))
        if dead:
            raise CommandError(
                f"The {dead.name} stopped unexpectedly (exit code {dead.process.returncode}); "
                "the portal was stopped. Its output above says why."
            )
        self.stdout.write("Stopped.")

    def _create_first_admin(self) -> None:
        """On the first start only: an administrator with a generated password, shown this once."""
        users = get_user_model().objects
        if users.filter(username=ADMIN_USERNAME).exists() or users.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser(ADMIN_USERNAME, email="", password=password)
        self.stdout.write(
            self.style.WARNING(
                f"Created the administrator '{ADMIN_USERNAME}' with the password: {password}\n"
                "It is shown only this once: sign in and change it."
            )
        )

    @staticmethod
    def _commands(listen: str) -> dict[str, list[str]]:
        # One process, its runs on threads that share one event loop (relaytests/worker_loop.py).
        concurrency = str(env.integer("PORTAL_WORKER_CONCURRENCY", 16))
        commands = {
            "Celery worker": [sys.executable, "-m", "celery", "-A", "portal", "worker", "-B",
                              "-Q", f"celery,{probe_queue(settings.RELAYTEST_VANTAGE)}", "--pool", "threads", "--concurrency", concurrency,
                              "--loglevel", "INFO"],
            # Workers, threads and timeout: gunicorn.conf.py in the working directory.
            "web server": [sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", listen, "--access-logfile", "-"],
        }  # fmt: skip
        if settings.RELAYTEST_CANARY_ENABLED:
            # Test messages need somewhere to arrive: the receiver on RELAYTEST_CANARY_LISTEN.
            commands["canary receiver"] = [sys.executable, "manage.py", "canary"]
        return commands

    @staticmethod
    def _environment(listen: str) -> dict[str, str]:
        """The children's environment: SITE_URL, unless set, is where the web server listens (the
        permalink in test messages); a wildcard address names no host, so links follow each request."""
        environment = dict(os.environ)
        host, _port = parse_listen_address(listen)
        if not environment.get("SITE_URL") and host not in WILDCARD_HOSTS:
            environment["SITE_URL"] = f"http://{listen}"
        return environment

    @staticmethod
    def _start(command: list[str], environment: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=settings.BASE_DIR, env=environment, start_new_session=True)

    @staticmethod
    def _catch_stop_signals() -> list[int]:
        """Ctrl-C and SIGTERM only note the wish to stop; the main loop does the stopping."""
        received: list[int] = []
        for signum in STOP_SIGNALS:
            signal.signal(signum, lambda signum, frame: received.append(signum))
        return received

    @staticmethod
    def _wait(children: list[Child], stopping: list[int]) -> Child | None:
        """Until a stop signal (None) or until a child exits on its own (that child)."""
        while not stopping:
            for child in children:
                if child.process.poll() is not None:
                    return child
            time.sleep(POLL_SECONDS)
        return None
