"""The test message the probe sends (DATA) after a relay vector's RCPT to its canary address was accepted.

Small and plainly labelled, because a server's admin may find it in a queue or a log: what it is,
which portal sent it, for which run, whom to contact, and the token that names the run, host and vector.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

SUBJECT = "[{portal_name}] Open relay test, run {run_id}"
# Headers stay on one line (RFC 5322's hard limit), rather than folded where a reader trips on it.
POLICY = SMTP.clone(max_line_length=998)
BODY = """\
This is an automated open relay test message. It is harmless and needs
no action. It tests whether a mail server relays mail from outside for
outside recipients; if you are reading it, a server it passed through
may be an open relay.

Sent by: {portal_name}
Portal:  {portal_url}
Run:     {run_id}
Vector:  {vector_id}
Token:   {token}
Contact: {contact}

Its only recipient is an address in the portal's own canary domain,
which accepts nothing else. Questions or objections: write to the
contact above.
"""


# Stand-ins the template is built with, replaced per vector: ASCII words the email package leaves as
# they are (no quoting, no encoding, no folding at 998 characters).
TOKEN_SLOT = "relaytest-slot-token"
ADDRESS_SLOT = f"{TOKEN_SLOT}@relaytest-slot-domain.invalid"
VECTOR_SLOT = "relaytest-slot-vector"
DATE_SLOT = "Date: Thu, 01 Jan 1970 00:00:00 +0000"  # the Date header parses what it is given


def test_message(
    token_address: str,
    run_id: str,
    vector_id: str,
    portal_name: str,
    portal_url: str,
    contact: str,
    *,
    sent_at: datetime | None = None,
) -> bytes:
    """The message for one vector, CRLF line ends, ready for DATA (the SMTP client dot-stuffs it).

    The same arguments (and `sent_at`) always give the same bytes: the Message-ID comes from the token.
    The email package builds one template per run and portal settings; each vector only fills it in.
    """
    template = _template(run_id, portal_name, portal_url, contact)
    filled = (
        template.replace(ADDRESS_SLOT, token_address)
        .replace(TOKEN_SLOT, token_address.rpartition("@")[0])
        .replace(VECTOR_SLOT, vector_id)
        .replace(DATE_SLOT, f"Date: {format_datetime(sent_at or datetime.now(UTC))}")
    )
    return filled.encode("utf-8")


@functools.lru_cache(maxsize=64)
def _template(run_id: str, portal_name: str, portal_url: str, contact: str) -> str:
    return compose(
        ADDRESS_SLOT, run_id, VECTOR_SLOT, portal_name, portal_url, contact, DATE_SLOT.removeprefix("Date: ")
    ).decode("utf-8")


def compose(
    token_address: str,
    run_id: str,
    vector_id: str,
    portal_name: str,
    portal_url: str,
    contact: str,
    date: str,
) -> bytes:
    """The message as the email package writes it (the template; and what a test compares with)."""
    words = {
        "token": token_address.rpartition("@")[0],
        "run_id": run_id,
        "vector_id": vector_id,
        **{
            name: _one_line(value)
            for name, value in (
                ("portal_name", portal_name),
                ("portal_url", portal_url),
                ("contact", contact),
            )
        },
    }
    message = EmailMessage(policy=POLICY)
    message["From"] = Address(display_name=words["portal_name"], addr_spec=token_address)
    message["To"] = token_address
    message["Date"] = date
    message["Message-ID"] = f"<{token_address}>"
    message["Subject"] = SUBJECT.format(**words)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation or auto replies
    message["X-Relaytest-Run"] = run_id
    message["X-Relaytest-Vector"] = vector_id
    message.set_content(BODY.format(**words))
    return message.as_bytes()


# A message factory, not a pytest test; mypy does not model attributes set on a function.
test_message.__test__ = False  # type: ignore[attr-defined]


def _one_line(text: str) -> str:
    """Settings end up in headers: no line breaks (header injection), no runs of blanks."""
    return " ".join(text.split())
