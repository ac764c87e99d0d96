"""Several ports in one run, and implicit TLS (RFC 8314) on a submission port."""

from __future__ import annotations

from relaytests.probe.suite import probe_target
from tests.probe.conftest import suite_config
from tests.probe.test_cli import relaytest_json


async def test_implicit_tls_port_is_tested_inside_tls_and_its_certificate_recorded(fake_smtp):
    server = fake_smtp("open", implicit_tls=True)
    report = await probe_target(
        "127.0.0.1", suite_config(implicit_tls_ports=(server.port,)), ports=(server.port,)
    )
    (host,) = report.hosts
    assert host.implicit_tls
    assert host.verdict == "accepts_relay"
    assert all(v.tls for v in host.vectors)
    tls = next(c for c in host.checks if c.id == "implicit-tls")
    assert tls.data["protocol"].startswith("TLS")
    assert "TLS on connect" in tls.detail


async def test_each_port_is_its_own_host_and_only_the_open_one_is_a_relay(fake_smtp):
    closed, open_ = fake_smtp("closed"), fake_smtp("open")
    report = await probe_target("127.0.0.1", suite_config(), ports=(closed.port, open_.port))
    verdicts = {h.port: h.verdict for h in report.hosts}
    assert verdicts == {closed.port: "secure", open_.port: "accepts_relay"}


def test_the_cli_takes_port_more_than_once(fake_smtp):
    closed, open_ = fake_smtp("closed"), fake_smtp("open")
    report, code = relaytest_json(closed.port, "--port", str(open_.port))
    assert {h["port"]: h["verdict"] for h in report["hosts"]} == {
        closed.port: "secure",
        open_.port: "accepts_relay",
    }
    assert code == 2
