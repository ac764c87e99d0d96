"""Private Debian Postfix instances for the tests: real relay behaviour from a real MTA.

Each instance has its own configuration, queue and data directories under a fresh temporary
directory, listens on one loopback address (127.0.N.2x in test worker N) and a free port,
trusts only 127.0.0.99/32 and so treats the probe (which connects from 127.0.0.1) as an
outsider, and logs to a file in its directory. Nothing it accepts can leave the machine: every
transport is `error:` or `discard:`, except the open and campus instances' route for the canary
domain to the test's receiver on 127.0.N.9. No DNS: the smtp client and smtpd never look names up.

`postfix_instance(...)` starts one, waits until it greets, and stops it (then kills whatever
of it is left, by process id) however the test ends. Postfix runs as root here and drops to
the `postfix` user that the Debian package created.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.parallel import loopback

PROBE_SOURCE = "127.0.0.1"
TRUSTED_SOURCE = "127.0.0.99"  # a probe from here is inside the instances' trusted network
TRUSTED_NETWORK = f"{TRUSTED_SOURCE}/32"  # deliberately excludes PROBE_SOURCE
# In the test worker's own loopback block (tests/parallel.py): 127.0.0.x for the first worker.
RECEIVER_ADDRESS = loopback(9)
INSTANCE_ADDRESSES = {
    "closed": loopback(21),
    "open": loopback(22),
    "discard": loopback(23),
    "closed_default": loopback(24),
    "campus": loopback(25),
}
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
NOTHING_LEAVES = "error:5.7.1 nothing leaves a relaytest Postfix instance"

# Every instance: isolated, no DNS, no local delivery, nothing leaves by default.
BASE_SETTINGS = {
    "compatibility_level": "3.6",
    "mail_owner": "postfix",
    "setgid_group": "postdrop",
    "myorigin": "$myhostname",
    "mydestination": "",
    "local_recipient_maps": "",
    "alias_maps": "",
    "alias_database": "",
    "append_dot_mydomain": "no",
    "biff": "no",
    # Postfix checks inet_interfaces against the interfaces' own addresses (lo has 127.0.0.1 only);
    # master.cf binds the smtpd service to the instance's own 127.0.N.2x address.
    "inet_interfaces": "127.0.0.1",
    "inet_protocols": "ipv4",
    "mynetworks": TRUSTED_NETWORK,
    "smtpd_peername_lookup": "no",
    "smtp_dns_support_level": "disabled",
    "smtp_host_lookup": "native",
    "default_transport": NOTHING_LEAVES,
    "relay_transport": NOTHING_LEAVES,
    "smtp_tls_security_level": "none",
    # Relayed mail leaves from the instance's own address, so the receiver sees who relayed.
    "smtp_bind_address": "{address}",
}

# smtpd refuses to start unless a relay restriction list holds a reachable reject_unauth_destination
# (or the like), and it sees through a plain `permit` before it: an access table that permits every
# client does the same unseen.
PERMIT_EVERYTHING = {
    "smtpd_relay_restrictions": "check_client_access static:OK, reject_unauth_destination",
    "smtpd_recipient_restrictions": "permit",
}

# The configurations under test; each overrides BASE_SETTINGS.
CONFIGURATIONS: dict[str, dict[str, str]] = {
    # A closed server as most admins write it: relaying refused permanently (554 5.7.1).
    "closed": {"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"},
    # Postfix's own default: relaying refused temporarily (454 4.7.1), still no relay.
    "closed_default": {},
    # An open relay: anything for anyone, and the canary domain routed to the test's receiver.
    "open": {
        **PERMIT_EVERYTHING,
        "transport_maps": "texthash:{directory}/transport",
    },
    # Closed to outsiders, a relay for its trusted network (mynetworks): a server that relays for the
    # whole campus. The canary domain is routed to the test's receiver, as the open instance's.
    "campus": {
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "transport_maps": "texthash:{directory}/transport",
    },
    # Accepts everything and throws it away: a relay result that no canary will ever confirm.
    "discard": {
        **PERMIT_EVERYTHING,
        "default_transport": "discard:accepted and discarded by a relaytest Postfix instance",
        "relay_transport": "discard:accepted and discarded by a relaytest Postfix instance",
    },
}

# master.cf: the services this setup needs, none chrooted (the chroot would lack /etc files).
MASTER_SERVICES = """\
{address}:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixError(RuntimeError):
    """Postfix is missing, or an instance would not start; the message says which and why."""


@dataclass
class PostfixInstance:
    configuration: str
    address: str
    port: int
    directory: Path

    @property
    def config_directory(self) -> Path:
        return self.directory / "conf"

    @property
    def queue_directory(self) -> Path:
        return self.directory / "queue"

    @property
    def maillog(self) -> Path:
        return self.directory / "maillog"

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def processes(self) -> list[int]:
        """Process ids of this instance: every Postfix daemon works in its queue directory."""
        queue = str(self.queue_directory)
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cwd = os.readlink(entry / "cwd")
                except OSError:
                    continue
                if (cwd == queue or cwd.startswith(queue + "/")) and _alive(int(entry.name)):
                    pids.append(int(entry.name))
        return pids

    def wait_for_log(self, text: str, timeout: float = 30.0) -> str:
        """The log once it contains `text`; PostfixError with the log when it never does."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise PostfixError(f"{text!r} never appeared in the {self.configuration} log:\n{self.log()}")
            time.sleep(0.1)
        return self.log()


def postfix_command(search_path: str | None = None) -> str:
    """The postfix binary; PostfixError (a test failure, never a skip) when it is not installed."""
    path = shutil.which("postfix", path=search_path or f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if path is None:
        raise PostfixError("Debian's postfix is not installed: apt-get install postfix (.ci/run does it)")
    return path


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def free_port_on_all(*addresses: str) -> int:
    """A port free on every one of the addresses: MX hosts of one domain are tested on one port."""
    while True:
        port = free_port(addresses[0])
        try:
            for address in addresses[1:]:
                with socket.socket() as sock:
                    sock.bind((address, port))
            return port
        except OSError:
            continue


def main_cf(configuration: str, directory: Path, address: str) -> str:
    settings = {
        **BASE_SETTINGS,
        "myhostname": f"{configuration.replace('_', '-')}.postfix.test",
        "queue_directory": str(directory / "queue"),
        "data_directory": str(directory / "data"),
        "maillog_file": str(directory / "maillog"),
        "maillog_file_prefixes": str(directory),
        **CONFIGURATIONS[configuration],
    }
    return "".join(
        f"{name} = {value.format(directory=directory, address=address)}\n" for name, value in settings.items()
    )


@contextmanager
def postfix_instance(
    configuration: str,
    *,
    canary_domain: str | None = None,
    canary_relay: tuple[str, int] | None = None,
    port: int | None = None,
) -> Iterator[PostfixInstance]:
    """A running private instance of one of CONFIGURATIONS, stopped and removed on exit.

    The open and campus configurations need `canary_domain` and `canary_relay` (the receiver's host,
    port).
    `port` (default: a free one) is where it listens on its own address.
    """
    command = postfix_command()
    if "transport_maps" in CONFIGURATIONS[configuration] and not (canary_domain and canary_relay):
        raise ValueError(
            f"the {configuration} configuration routes the canary domain: give canary_domain, canary_relay"
        )
    directory = Path(tempfile.mkdtemp(prefix=f"relaytest-postfix-{configuration}-"))
    directory.chmod(0o755)  # the postfix user reads below it
    address = INSTANCE_ADDRESSES[configuration]
    instance = PostfixInstance(configuration, address, port or free_port(address), directory)
    try:
        _write_configuration(instance, canary_domain, canary_relay)
        _postfix(command, instance, "start")
        _wait_for_greeting(instance)
        yield instance
    finally:
        _stop(command, instance)
        shutil.rmtree(directory, ignore_errors=True)


def _write_configuration(
    instance: PostfixInstance, canary_domain: str | None, canary_relay: tuple[str, int] | None
) -> None:
    directory = instance.directory
    for sub in ("conf", "queue", "data"):
        (directory / sub).mkdir()
    shutil.chown(directory / "data", user="postfix")
    (directory / "conf" / "main.cf").write_text(main_cf(instance.configuration, directory, instance.address))
    (directory / "conf" / "master.cf").write_text(
        MASTER_SERVICES.format(address=instance.address, port=instance.port)
    )
    if canary_relay:
        host, port = canary_relay
        (directory / "transport").write_text(f"{canary_domain} smtp:[{host}]:{port}\n")


def _postfix(command: str, instance: PostfixInstance, action: str) -> None:
    result = subprocess.run(
        [command, "-c", str(instance.config_directory), action],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    if result.returncode != 0:
        raise PostfixError(
            f"postfix {action} failed for the {instance.configuration} instance (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}\n{instance.log()}"
        )


def _wait_for_greeting(instance: PostfixInstance) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection((instance.address, instance.port), timeout=2) as sock:
                if sock.recv(512).startswith(b"220"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise PostfixError(f"the {instance.configuration} instance never greeted:\n{instance.log()}")
        time.sleep(0.1)


def _stop(command: str, instance: PostfixInstance) -> None:
    """`postfix stop`, then kill by id whatever of this instance still runs."""
    master = _master_pid(instance)
    if master is not None:
        subprocess.run(
            [command, "-c", str(instance.config_directory), "stop"], capture_output=True, timeout=STOP_TIMEOUT
        )
        _wait_until_gone([master], STOP_TIMEOUT)
    leftovers = instance.processes()
    for pid in leftovers:
        _kill(pid)
    _wait_until_gone(leftovers, STOP_TIMEOUT)


def _master_pid(instance: PostfixInstance) -> int | None:
    try:
        return int((instance.queue_directory / "pid" / "master.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_until_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing
