"""`make run` for real: `manage.py runportal` as a subprocess, on a free port, with its own var directory.

It runs on the embedded defaults (SQLite in the var directory, the filesystem broker), so the
environment of the test run (DATABASE_URL, CELERY_BROKER_URL) is taken away from it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import CommandError, call_command

from relaytests.management.commands.runportal import Command

SERVING_WITHIN = 120.0  # a bound for a broken start, not a speed claim
STOPPED_WITHIN = 60.0
SLOW_CLIENTS = 6
SLOW_REQUEST = (
    b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"x" * 120 + b"\r\n\r\n"
)
PAGE_WITHIN = 120.0  # a bound for a hung server, not a speed claim: the test asserts the slow ones still wait
PASSWORD_LINE = re.compile(r"Created the administrator 'admin' with the password: (\S+)")


class Portal:
    def __init__(self, var_dir: Path, port: int, canary_port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.canary = ("127.0.0.1", canary_port)
        self.log = var_dir / f"runportal-{time.monotonic_ns()}.log"
        environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
        environment.update(
            PORTAL_VAR_DIR=str(var_dir),
            PORTAL_LISTEN=f"127.0.0.1:{port}",
            RELAYTEST_CANARY_LISTEN=f"127.0.0.1:{canary_port}",
            PORTAL_STOP_GRACE="5",
            RELAYTEST_REAP_EVERY="1",  # beat sends the reaper soon, so the test sees it go round
        )
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "runportal"],
                cwd=settings.BASE_DIR,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read()

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + SERVING_WITHIN
        while True:
            try:
                self.get("/accounts/login/")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(f"the portal did not come up:\n{self.output()}")
                time.sleep(0.5)

    def wait_for_output(self, pattern: str) -> None:
        deadline = time.monotonic() + SERVING_WITHIN
        while not re.search(pattern, self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the portal never logged {pattern!r}:\n{self.output()}")
            time.sleep(0.5)

    def descendants(self) -> set[int]:
        """Every process under runportal: the worker, its pool and beat, gunicorn and its workers."""
        found, todo = set(), [self.process.pid]
        while todo:
            pid = todo.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except FileNotFoundError:
                continue
            found.update(map(int, children))
            todo.extend(map(int, children))
        return found

    def wait_exit(self) -> int:
        try:
            return self.process.wait(STOPPED_WITHIN)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the portal did not stop:\n{self.output()}")

    def kill(self) -> None:
        for pid in [self.process.pid, *self.descendants()]:
            _kill(pid)
        self.process.wait()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def alive(pids: set[int]) -> set[int]:
    """The pids still running (a zombie counts as gone: it runs nothing and holds no port)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    return unused_port()


@pytest.fixture
def canary_port() -> int:
    return unused_port()


def start(var_dir: Path, port: int, canary_port: int) -> Portal:
    portal = Portal(var_dir, port, canary_port)
    portal.wait_until_serving()
    return portal


def canary_greeting(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address, timeout=10) as connection:
        return connection.makefile("rb").readline()


def interrupt(portal: Portal) -> tuple[int, set[int]]:
    """Ctrl-C: SIGINT to runportal alone; returns its exit code and the processes it had started."""
    children = portal.descendants()
    portal.process.send_signal(signal.SIGINT)
    return portal.wait_exit(), children


# Each start of the portal costs some 10 s of CPU (migrations, static files, four Python processes):
# one test goes through the portal's life on two starts instead of a start per behaviour.
@pytest.mark.slow
def test_first_start_makes_the_admin_serves_beside_slow_clients_and_ctrl_c_or_a_dead_child_stops_all(
    tmp_path, free_port, canary_port
):
    first = start(tmp_path, free_port, canary_port)
    assert b"portal.css" in first.get("/accounts/login/")
    assert first.get("/static/portal.css").strip()  # static files served (whitenoise under gunicorn)
    # Embedded beat sent the reaper through the filesystem broker, and the worker ran it.
    first.wait_for_output(r"Task relaytests\.tasks\.reap_stale_runs\[[-0-9a-f]+\] succeeded")
    # The fourth child: the canary receiver, where relayed test messages arrive.
    first.wait_for_output(rf"canary receiver for \S+ listening on 127\.0\.0\.1:{canary_port}")
    assert b"canary receiver" in canary_greeting(first.canary)
    a_page_answers_while_slow_clients_hold_connections(first, free_port)
    exit_code, children = interrupt(first)

    assert exit_code == 0, first.output()
    assert len(children) >= 5  # worker + its beat + web server + its workers + canary receiver
    assert alive(children) == set()
    assert "canary receiver stopped" in first.output()
    with pytest.raises(ConnectionRefusedError):
        canary_greeting(first.canary)
    [password] = PASSWORD_LINE.findall(first.output())
    with sqlite3.connect(tmp_path / "portal.sqlite3") as db:
        [(encoded, is_superuser)] = db.execute(
            "select password, is_superuser from auth_user where username = 'admin'"
        ).fetchall()
    assert is_superuser and PBKDF2PasswordHasher().verify(password, encoded)  # Django's default hasher

    second = start(tmp_path, free_port, canary_port)
    assert "password" not in second.output()
    when_a_child_dies_the_rest_is_stopped_and_the_command_fails(second)


def when_a_child_dies_the_rest_is_stopped_and_the_command_fails(portal: Portal) -> None:
    children = portal.descendants()
    web_server = next(
        pid
        for pid in children
        if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
        and Path(f"/proc/{pid}/stat").read_text().split()[3] == str(portal.process.pid)
    )

    os.kill(web_server, signal.SIGKILL)

    assert portal.wait_exit() != 0
    assert "The web server stopped unexpectedly" in portal.output()
    assert alive(children) == set()


def test_the_canary_receiver_is_started_only_while_canary_delivery_is_on(settings):
    settings.RELAYTEST_CANARY_ENABLED = True
    assert Command._commands("127.0.0.1:8000")["canary receiver"][-2:] == ["manage.py", "canary"]

    settings.RELAYTEST_CANARY_ENABLED = False
    assert "canary receiver" not in Command._commands("127.0.0.1:8000")


def test_the_worker_works_on_many_runs_in_one_process(monkeypatch):
    monkeypatch.delenv("PORTAL_WORKER_CONCURRENCY", raising=False)
    worker = " ".join(Command._commands("127.0.0.1:8000")["Celery worker"])
    assert "--pool threads --concurrency 16" in worker  # threads sharing one event loop

    monkeypatch.setenv("PORTAL_WORKER_CONCURRENCY", "40")
    assert "--concurrency 40" in " ".join(Command._commands("127.0.0.1:8000")["Celery worker"])


@pytest.mark.parametrize(
    ("listen", "site_url", "children_get"),
    [
        ("127.0.0.1:8123", "", "http://127.0.0.1:8123"),
        ("[::1]:8123", "", "http://[::1]:8123"),
        ("0.0.0.0:8123", "", None),  # no host to name: links follow each request
        ("127.0.0.1:8123", "https://relaytest.example.edu", "https://relaytest.example.edu"),
    ],
)
def test_the_children_link_to_where_the_portal_listens_unless_site_url_says(
    monkeypatch, listen, site_url, children_get
):
    monkeypatch.setenv("SITE_URL", site_url)

    assert (Command._environment(listen).get("SITE_URL") or None) == children_get


@pytest.mark.parametrize("listen", ["8000", "127.0.0.1:http", ":8000", "[::1]"])
@pytest.mark.django_db
def test_a_malformed_listen_address_is_refused_before_anything_starts(monkeypatch, listen):
    started = []
    monkeypatch.setattr(Command, "_start", staticmethod(lambda *args: started.append(args)))
    monkeypatch.setattr("relaytests.management.commands.runportal.call_command", started.append)

    with pytest.raises(CommandError, match=r"is not HOST:PORT"):
        call_command("runportal", listen=listen)

    assert started == []


class SlowClient:
    """Sends a request's headers a byte a second, as a slowloris attack does."""

    def __init__(self, address: tuple[str, int], stop: threading.Event):
        self.connection = socket.create_connection(address)  # blocking: MSG_DONTWAIT below answers at once
        self.thread = threading.Thread(target=self._trickle, args=(stop,), daemon=True)
        self.thread.start()

    def _trickle(self, stop: threading.Event) -> None:
        for byte in SLOW_REQUEST:
            if stop.wait(1.0):
                return
            try:
                self.connection.send(bytes([byte]))
            except OSError:
                return

    def still_connected(self) -> bool:
        """True while the server has neither answered nor closed the connection."""
        try:
            self.connection.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        except BlockingIOError:
            return True  # nothing to read, and no end of the connection
        except OSError:
            pass
        return False  # an answer, an end or a reset


def a_page_answers_while_slow_clients_hold_connections(portal: Portal, port: int) -> None:
    stop = threading.Event()
    slow = [SlowClient(("127.0.0.1", port), stop) for _ in range(SLOW_CLIENTS)]
    try:
        time.sleep(3)  # each has sent its first bytes: a worker that waits for the rest is now held
        began = time.monotonic()
        with urllib.request.urlopen(portal.url + "/accounts/login/", timeout=PAGE_WITHIN) as response:
            page = response.read()
        print(f"the page took {time.monotonic() - began:.2f} s beside {SLOW_CLIENTS} slow clients")

        assert b"Sign in" in page
        assert all(client.still_connected() for client in slow)  # the page did not wait for them to go
    finally:
        stop.set()
        for client in slow:
            client.connection.close()
