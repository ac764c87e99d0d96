"""How the session reads a server's EHLO reply, and the TLS it offers."""

from __future__ import annotations

import ssl

from relaytests.probe.session import Reply, _parse_extensions, _unverified_tls_context


def test_ehlo_keywords_are_read_old_style_auth_included():
    reply = Reply(250, "mx.dept.example.edu hello\nPIPELINING\nAUTH=LOGIN PLAIN\nsize 10240000\nSTARTTLS")
    extensions = _parse_extensions(reply)
    # Servers that advertise AUTH only the old way ("AUTH=LOGIN") still offer AUTH: the AUTH vectors run.
    assert extensions["AUTH"] == "LOGIN PLAIN"
    assert extensions["SIZE"] == "10240000"
    assert {"PIPELINING", "STARTTLS"} <= extensions.keys()


def test_the_tls_context_offers_what_pythons_default_does_without_loading_the_ca_store():
    """STARTTLS and implicit TLS record the certificate and judge nothing by it: the system's CA store,
    20 ms of CPU to load for each connection, is not loaded."""
    context, default = _unverified_tls_context(), ssl.create_default_context()
    assert (context.minimum_version, context.maximum_version, context.options) == (
        default.minimum_version,
        default.maximum_version,
        default.options,
    )
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)
    assert context.cert_store_stats()["x509_ca"] == 0
