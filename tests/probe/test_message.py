"""The test message: plainly labelled, small, deterministic, and safe from header injection."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

from relaytests.probe.message import compose, test_message

TOKEN_ADDRESS = "r-abcdefghij-plain-0123456789@canary.test"
SENT_AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
ARGUMENTS = dict(
    token_address=TOKEN_ADDRESS,
    run_id="abcdefghij",
    vector_id="plain",
    portal_name="Example University Relay Test",
    portal_url="https://relaytest.example.edu",
    contact="mail-security@example.edu",
)


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_it_says_what_it_is_who_sent_it_and_whom_to_contact():
    message = parsed(test_message(**ARGUMENTS, sent_at=SENT_AT))

    assert message["From"] == f"Example University Relay Test <{TOKEN_ADDRESS}>"
    assert message["To"] == TOKEN_ADDRESS
    assert message["Date"] == "Fri, 27 Nov 2026 10:00:00 +0000"
    assert message["Message-ID"] == f"<{TOKEN_ADDRESS}>"
    assert message["Subject"] == "[Example University Relay Test] Open relay test, run abcdefghij"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert body.startswith("This is an automated open relay test message.")
    for line in (
        "Sent by: Example University Relay Test",
        "Portal:  https://relaytest.example.edu",
        "Run:     abcdefghij",
        "Vector:  plain",
        "Token:   r-abcdefghij-plain-0123456789",
        "Contact: mail-security@example.edu",
    ):
        assert line in body.splitlines()


def test_it_is_small_with_crlf_line_ends_and_short_lines():
    raw = test_message(**ARGUMENTS, sent_at=SENT_AT)

    header, _, body = raw.partition(b"\r\n\r\n")
    assert len(raw) < 2048
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in header.split(b"\r\n")) <= 998
    assert max(len(line) for line in body.split(b"\r\n")) <= 78


def test_the_same_arguments_give_the_same_bytes():
    assert test_message(**ARGUMENTS, sent_at=SENT_AT) == test_message(**ARGUMENTS, sent_at=SENT_AT)


def test_settings_cannot_inject_headers():
    hostile = {**ARGUMENTS, "portal_name": "Portal\r\nBcc: victim@elsewhere.example", "contact": "a\nb"}

    message = parsed(test_message(**hostile, sent_at=SENT_AT))

    assert message["Bcc"] is None
    assert message["From"].addresses[0].display_name == "Portal Bcc: victim@elsewhere.example"
    assert "Contact: a b" in message.get_content().splitlines()


def test_the_template_gives_what_the_email_package_builds():
    """One template per run: each vector's message equals the email package's, byte for byte."""
    date = "Fri, 27 Nov 2026 10:00:00 +0000"
    for changes in (
        {},
        {"vector_id": "quoted-at-iplit"},
        {"portal_name": "Université de Test"},
        {"token_address": "r-zyxwvutsrq-bang-9876543210@other.canary.example"},
    ):
        arguments = {**ARGUMENTS, **changes}
        built = compose(**arguments, date=date)
        assert test_message(**arguments, sent_at=SENT_AT) == built
        assert parsed(built)["X-Relaytest-Vector"] == arguments["vector_id"]
