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


async def test_a_plain_smtp_server_on_an_implicit_tls_port_is_inconclusive_with_the_reason(fake_smtp):
    plain = fake_smtp("closed")  # greets in clear text where the probe expects a TLS handshake
    report = await probe_target(
        "127.0.0.1", suite_config(implicit_tls_ports=(plain.port,)), ports=(plain.port,)
    )
    (host,) = report.hosts
    assert host.implicit_tls
    assert host.verdict == "inconclusive"
    assert "TLS handshake failed" in host.reason
    assert not host.vectors
    assert report.verdict == "inconclusive"


async def test_auth_offered_only_inside_implicit_tls_passes_the_auth_before_tls_check(fake_smtp):
    auth_inside_tls = b"250-fake.example.net\r\n250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n"
    server = fake_smtp("closed", implicit_tls=True, raw_replies=(("EHLO", auth_inside_tls),))
    report = await probe_target(
        "127.0.0.1", suite_config(implicit_tls_ports=(server.port,)), ports=(server.port,)
    )
    (host,) = report.hosts
    auth = next(c for c in host.checks if c.id == "auth-before-tls")
    assert auth.status == "pass"
    assert "encrypted from its first byte" in auth.detail
    assert host.verdict == "secure"
    # The same EHLO reply on a connection in clear text is the warning.
    plain = fake_smtp("closed", raw_replies=(("EHLO", auth_inside_tls),))
    (plain_host,) = (await probe_target("127.0.0.1", suite_config(), ports=(plain.port,))).hosts
    assert next(c for c in plain_host.checks if c.id == "auth-before-tls").status == "warn"
