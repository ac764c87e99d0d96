import pytest

from relaytests.probe.fingerprint import announced_name, identify

BANNERS = [
    ("mx.dept.example.edu ESMTP Postfix (Debian/GNU)", "", "postfix", None),
    ("mail.example.edu ESMTP Sendmail 8.8.8/8.8.8; Mon, 1 Jan 1999 00:00:00", "", "sendmail", "8.8.8"),
    ("mx.example.edu ESMTP Exim 4.96 Fri, 27 Nov 2026 10:00:00 +0000", "", "exim", "4.96"),
    ("mx.example.edu ESMTP OpenSMTPD", "", "opensmtpd", None),
    ("ex.example.edu Microsoft ESMTP MAIL Service ready at Fri, 27 Nov 2026", "", "exchange", None),
    (
        "iis.example.edu Microsoft ESMTP MAIL Service, Version: 6.0.3790.3959 ready at",
        "",
        "iis",
        "6.0.3790.3959",
    ),
    ("notes.example.edu ESMTP Service (Lotus Domino Release 8.5.3) ready at", "", "domino", "8.5.3"),
    ("mx.example.edu ESMTP", "mx.example.edu\nPIPELINING\nX-EXPS GSSAPI NTLM\nXRDST", "exchange", None),
    (
        "mx.example.edu ESMTP",
        "mx.example.edu Hello x [1.2.3.4], pleased to meet you\nEXPN\nVERB",
        "sendmail",
        None,
    ),
    (
        "mx.example.edu ESMTP",
        "mx.example.edu Hello x [1.2.3.4], pleased to meet you\n8BITMIME",
        "opensmtpd",
        None,
    ),
    ("mx.example.edu ESMTP ready", "mx.example.edu\nSIZE", "unknown", None),
]


@pytest.mark.parametrize(("banner", "ehlo", "family", "version"), BANNERS)
def test_software_is_recognised_from_banner_then_ehlo(banner, ehlo, family, version):
    software = identify(banner, ehlo)
    assert (software.family, software.version) == (family, version)


def test_only_a_dotted_name_counts_as_the_announced_host():
    assert announced_name("mx.dept.example.edu ESMTP Postfix") == "mx.dept.example.edu"
    assert announced_name("ESMTP ready") is None  # nmap would call this server "ESMTP"
