"""The `relaytest` command as an operator runs it: the installed console script, a subprocess
against fake servers; and `python manage.py relaytest`, the same command with the portal's settings
(run in the test process, as manage.py runs it).

The report JSON must keep the "relaytest/1" contract of docs/report-schema.md (every listed key at every level,
with its type), and the exit codes must be the monitoring-plugin ones: 0 secure, 1 warnings
only, 2 relay, 3 inconclusive or could not test.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import execute_from_command_line

from relaytests.probe.vectors import catalogue
from tests.dnsserver import ZoneServer
from tests.relaytest_command import CONSOLE_SCRIPT, command_line, environment

PROJECT = Path(__file__).resolve().parents[2]
NULLABLE_STR, NUMBER = (str, type(None)), (int, float)

# docs/report-schema.md: the keys that must exist, with the type of each value.
REPORT = {
    "schema": str,
    "target": str,
    "started_at": str,
    "finished_at": str,
    "duration_s": NUMBER,
    "verdict": str,
    "summary": str,
    "probe": dict,
    "hosts": list,
}
PROBE = {
    "source_address": NULLABLE_STR,
    "helo": str,
    "inside_internal_networks": bool,
    "canary_domain": str,
    "vantage": str,
}
HOST = {
    "address": str,
    "port": int,
    "verdict": str,
    "reason": str,
    "banner": str,
    "software": dict,
    "vectors": list,
    "checks": list,
    "transcript": list,
}
SOFTWARE = {"family": str, "version": NULLABLE_STR}
VECTOR = {
    "id": str,
    "helo": str,
    "mail_from": str,
    "rcpt_to": str,
    "outcome": str,
    "reason": str,
    "code": (int, type(None)),
    "reply": str,
    "delivered": (bool, type(None)),
}
CHECK = {"id": str, "status": str, "detail": str}
TRANSCRIPT_LINE = {"dir": str, "line": str, "t": NUMBER}
VERDICTS = {"open_relay", "accepts_relay", "inconclusive", "secure"}
# The fake server's address has a reverse name that points back to it, as a tidy server's does.
FORWARD_CONFIRMED_PTR = "1.0.0.127.in-addr.arpa. PTR mx.dept.example.edu.\nmx.dept.example.edu. A 127.0.0.1"


# What differs between two runs on the same server: times, the run id and the MACs of its tokens.
VARYING_KEYS = {"started_at", "finished_at", "duration_s", "t"}


def run_command(command: list[str], *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*command, *args],
        cwd=PROJECT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def relaytest(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The console script, as an operator runs it."""
    return run_command(command_line(), *args, **env)


def manage_py_relaytest(*args: str) -> subprocess.CompletedProcess:
    """`python manage.py relaytest` as manage.py runs it (execute_from_command_line), in this process:
    a process of its own would prove only that Python starts again (a second of CPU a run)."""
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            execute_from_command_line(["manage.py", "relaytest", *args])
        except SystemExit as exit:
            code = exit.code
    return subprocess.CompletedProcess(
        ["manage.py", "relaytest", *args], code, stdout.getvalue(), stderr.getvalue()
    )


def relaytest_json(port: int, *args: str, command=relaytest) -> tuple[dict, int]:
    result = command(
        "127.0.0.1",
        "--port",
        str(port),
        "--json",
        "--canary-domain",
        "canary.example.net",
        "--local-domain",
        "dept.example.edu",
        "--helo",
        "probe.example.net",
        "--timeout",
        "10",
        *args,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout), result.returncode


def assert_keys(data: dict, spec: dict, where: str) -> None:
    for key, kind in spec.items():
        assert key in data, f"{where}: no {key!r}"
        value = data[key]
        assert isinstance(value, kind) and not (kind is int and isinstance(value, bool)), (
            f"{where}.{key} = {value!r} is not {kind}"
        )


def assert_report_contract(report: dict) -> None:
    assert_keys(report, REPORT, "report")
    assert report["schema"] == "relaytest/1"
    assert report["verdict"] in VERDICTS
    assert_keys(report["probe"], PROBE, "probe")
    assert report["hosts"], "a report against a listening server has a host"
    for host in report["hosts"]:
        assert_keys(host, HOST, "host")
        assert host["verdict"] in VERDICTS
        assert_keys(host["software"], SOFTWARE, "software")
        for vector in host["vectors"]:
            assert_keys(vector, VECTOR, f"vector {vector.get('id')}")
            assert vector["outcome"] in {"accepted", "rejected", "deferred", "failed"}
        for check in host["checks"]:
            assert_keys(check, CHECK, f"check {check.get('id')}")
            assert check["status"] in {"pass", "info", "warn", "fail", "error"}
        for line in host["transcript"]:
            assert_keys(line, TRANSCRIPT_LINE, "transcript")
            assert line["dir"] in {"C", "S"}, f"transcript dir {line['dir']!r} ({line['line']!r})"


def free_port() -> int:
    """A port nothing listens on: the OS picks a free one, and we close it again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_json_report_keeps_the_contract(fake_smtp):
    server = fake_smtp("closed")
    report, _ = relaytest_json(server.port)
    assert_report_contract(report)
    assert report["target"] == "127.0.0.1"
    assert report["hosts"][0]["port"] == server.port
    assert report["probe"]["canary_domain"] == "canary.example.net"
    assert report["probe"]["helo"] == "probe.example.net"
    assert report["probe"]["vantage"] == "outside"


def test_a_report_made_from_inside_says_so_in_json_and_in_text(fake_smtp):
    server = fake_smtp("closed")
    report, _ = relaytest_json(server.port, "--vantage-label", "inside")
    text = relaytest("127.0.0.1", "--port", str(server.port), "--vantage-label", "inside", "--timeout", "10")

    assert report["probe"]["vantage"] == "inside"
    assert "tested from: inside (127.0.0.1)" in text.stdout.splitlines()


def test_a_vantage_label_that_is_no_short_name_is_refused():
    result = relaytest("127.0.0.1", "--vantage-label", "Campus LAN")

    assert result.returncode == 3  # a usage error is UNKNOWN to a monitoring system, as every other
    assert "'Campus LAN' is not a short lower-case name such as outside or inside" in result.stderr


def test_secure_without_findings_exits_0(fake_smtp):
    server = fake_smtp("closed", starttls=True)  # STARTTLS with a CA-issued certificate for its name
    with ZoneServer(FORWARD_CONFIRMED_PTR) as dns:
        report, code = relaytest_json(server.port, "--resolver", dns.address)
    assert report["verdict"] == "secure"
    assert [c["id"] for h in report["hosts"] for c in h["checks"] if c["status"] in ("warn", "fail")] == []
    assert code == 0


def test_secure_with_warnings_exits_1(fake_smtp):
    report, code = relaytest_json(fake_smtp("postfix-default").port)  # relay refused only with 454
    assert report["verdict"] == "secure"
    assert "relay-refused-temporarily" in [c["id"] for c in report["hosts"][0]["checks"]]
    assert code == 1


def test_relay_exits_2(fake_smtp):
    report, code = relaytest_json(fake_smtp("open").port)
    assert report["verdict"] == "accepts_relay"
    assert code == 2


def test_inconclusive_exits_3(fake_smtp):
    report, code = relaytest_json(fake_smtp("421-at-connect").port)
    assert report["verdict"] == "inconclusive"
    assert "421 4.3.2" in report["hosts"][0]["reason"]
    assert code == 3


def test_list_vectors_names_every_catalogue_entry():
    result = relaytest("--list-vectors")
    assert result.returncode == 0
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert listed == [v.id for v in catalogue()]


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["no-such-host.invalid"], "no-such-host.invalid"),
        (["127.0.0.1", "--port", "70000"], "port 70000 is out of range (1-65535)"),
        (["127.0.0.1", "--port", "smtp"], "port 'smtp' is not a number from 1 to 65535"),  # as in HOST:PORT
    ],
)
def test_bad_input_is_one_clear_line_and_exit_3(args, mentions):
    result = relaytest(*args)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert mentions in result.stderr


def test_nothing_listening_is_one_clear_line_and_exit_3():
    port = free_port()
    result = relaytest("127.0.0.1", "--port", str(port), "--timeout", "5")
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(port) in result.stderr


MAIL_DOMAIN_ZONE = (
    """
dept.example.edu. MX 10 mx.dept.example.edu.
dept.example.edu. TXT "v=spf1 mx -all"
_dmarc.dept.example.edu. TXT "v=DMARC1; p=reject"
"""
    + FORWARD_CONFIRMED_PTR
)


def test_a_mail_domain_is_tested_with_its_dns_as_the_internet_sees_it(fake_smtp):
    server = fake_smtp("closed")
    with ZoneServer(MAIL_DOMAIN_ZONE) as dns:
        result = relaytest(
            "--domain",
            "dept.example.edu",
            "--port",
            str(server.port),
            "--json",
            "--resolver",
            dns.address,
            "--canary-domain",
            "canary.example.net",
            "--timeout",
            "10",
        )
    report = json.loads(result.stdout)
    assert [(h["address"], h["name"]) for h in report["hosts"]] == [("127.0.0.1", "mx.dept.example.edu")]
    target_checks = {c["id"]: c["status"] for c in report["checks"]}
    assert target_checks == {"mx": "pass", "spf": "pass", "dmarc": "pass"}
    host_checks = {c["id"]: c for c in report["hosts"][0]["checks"]}
    assert host_checks["ptr"]["status"] == "pass"
    assert host_checks["dnsbl"]["status"] == "info"  # 127.0.0.1 is not public: no blocklist is asked
    assert report["verdict"] == "secure"


def test_without_dns_the_checks_say_so_instead_of_passing(fake_smtp):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # takes queries, never answers
    with silent:
        result = relaytest(
            "--domain",
            "dept.example.edu",
            "--json",
            "--timeout",
            "5",
            "--resolver",
            "{}:{}".format(*silent.getsockname()),
        )
    report = json.loads(result.stdout)
    assert result.returncode == 3
    assert report["hosts"] == []
    (mx,) = report["checks"]
    assert mx["status"] == "error"
    assert "DNS unavailable" in mx["detail"]


# ---- the console script and manage.py relaytest: one command ----


def comparable(report: dict) -> str:
    """The report without what differs from run to run: its times, its run id, its tokens' MACs."""

    def without_times(value):
        if isinstance(value, dict):
            return {key: without_times(item) for key, item in value.items() if key not in VARYING_KEYS}
        if isinstance(value, list):
            return [without_times(item) for item in value]
        return value

    text = json.dumps(without_times(report), indent=1).replace(report["run_id"], "RUN")
    return re.sub(r"(-RUN-[0-9a-z-]+?)-[0-9a-f]{10}\b", r"\1-MAC", text)


def test_the_console_script_is_installed_and_runs():
    assert CONSOLE_SCRIPT, f"no relaytest script beside {sys.executable}"
    for command in ([CONSOLE_SCRIPT], [sys.executable, "-m", "relaytests.probe.cli"]):
        result = run_command(command, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: relaytest ")


@pytest.mark.parametrize("behaviour", ["postfix-default", "open"])
def test_both_commands_give_the_same_report_and_exit_code(fake_smtp, behaviour):
    server = fake_smtp(behaviour)
    console, console_code = relaytest_json(server.port)
    portal, portal_code = relaytest_json(server.port, command=manage_py_relaytest)
    assert comparable(console) == comparable(portal)
    assert "-RUN-" in comparable(console)  # the run id was found, so the tokens are compared too
    assert console_code == portal_code == (1 if behaviour == "postfix-default" else 2)


@pytest.mark.parametrize(
    "args",
    [
        ["127.0.0.1", "--port", "smtp"],
        ["no-such-host.invalid", "--timeout", "5"],
        ["--timeout", "-1", "127.0.0.1"],
        [],
    ],
)
def test_both_commands_fail_with_the_same_line_and_exit_3(args):
    console, portal = relaytest(*args), manage_py_relaytest(*args)
    assert (console.returncode, console.stderr) == (portal.returncode, portal.stderr)
    assert console.returncode == 3
    assert len(console.stderr.strip().splitlines()) == 1, console.stderr
    assert console.stderr.startswith("relaytest: ")


def test_the_defaults_come_from_the_portals_environment_variables(fake_smtp):
    server = fake_smtp("closed")
    result = relaytest(
        "127.0.0.1",
        "--port",
        str(server.port),
        "--json",
        RELAYTEST_PROBE_HELO="probe.env.example",
        RELAYTEST_CANARY_DOMAIN="canary.env.example",
        RELAYTEST_COMMAND_TIMEOUT="10",
    )
    report = json.loads(result.stdout)
    assert (report["probe"]["helo"], report["probe"]["canary_domain"]) == (
        "probe.env.example",
        "canary.env.example",
    )


def test_a_bad_environment_variable_is_one_line_and_exit_3():
    result = relaytest("--list-vectors", RELAYTEST_COMMAND_TIMEOUT="soon")
    assert (result.returncode, result.stderr) == (
        3,
        "relaytest: RELAYTEST_COMMAND_TIMEOUT must be a number, not 'soon'\n",
    )


def test_without_a_canary_secret_a_run_signs_with_its_own_and_its_receiver_checks_it(fake_smtp):
    receiver_port = free_port()
    forger = fake_smtp(
        "closed", forge_to=("127.0.0.1", receiver_port)
    )  # sends the token it refuses to the canary
    no_secret = {
        name: value for name, value in environment().items() if not name.startswith("RELAYTEST_CANARY_SECRET")
    }
    result = subprocess.run(
        command_line(
            *("127.0.0.1", "--port", str(forger.port), "--json", "--vectors", "plain"),
            *("--canary-listen", f"127.0.0.1:{receiver_port}", "--canary-wait", "5"),
        ),
        cwd=PROJECT,
        env=no_secret,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    report = json.loads(result.stdout)
    [plain] = report["hosts"][0]["vectors"]
    [arrival] = report["unexpected_deliveries"]  # the receiver took the token: its MAC is this run's
    assert (arrival["token"], arrival["vector_id"]) == (plain["token"], "plain")
