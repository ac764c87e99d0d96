"""How the session reads a server's EHLO reply."""

from __future__ import annotations

from relaytests.probe.session import Reply, _parse_extensions


def test_ehlo_keywords_are_read_old_style_auth_included():
    reply = Reply(250, "mx.dept.example.edu hello\nPIPELINING\nAUTH=LOGIN PLAIN\nsize 10240000\nSTARTTLS")
    extensions = _parse_extensions(reply)
    # Servers that advertise AUTH only the old way ("AUTH=LOGIN") still offer AUTH: the AUTH vectors run.
    assert extensions["AUTH"] == "LOGIN PLAIN"
    assert extensions["SIZE"] == "10240000"
    assert {"PIPELINING", "STARTTLS"} <= extensions.keys()
