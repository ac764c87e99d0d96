"""The verdicts, worst first: the one place their order, names and meanings are written
(docs/architecture.md, Verdicts).

A verdict's value is what a report stores (relaytest/1, docs/report-schema.md) and never changes;
its words are how the pages, the summary and the relaytest command tell people, and its exit code
is the command's answer to a monitoring system. The model's choices, the templates, the CLI, the
comparisons and the guidance all read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Monitoring-plugin exit codes (docs/report-schema.md): OK, WARNING, CRITICAL, UNKNOWN.
EXIT_SECURE, EXIT_WARNINGS, EXIT_RELAY, EXIT_INCONCLUSIVE = 0, 1, 2, 3


class Verdict(StrEnum):
    """A host's or a run's verdict. Declared worst first: that order is their severity."""

    OPEN_RELAY = "open_relay"
    ACCEPTS_RELAY = "accepts_relay"
    INCONCLUSIVE = "inconclusive"
    SECURE = "secure"

    @property
    def label(self) -> str:
        """Its name on a page: "Open relay"."""
        return WORDS[self].label

    @property
    def summary(self) -> str:
        """The first sentence of a report's summary."""
        return WORDS[self].summary

    @property
    def meaning(self) -> str:
        """The sentence under its name on a run's page: what it means for the admin."""
        return WORDS[self].meaning

    @property
    def exit_code(self) -> int:
        """The relaytest command's exit code for it."""
        return WORDS[self].exit_code

    @property
    def severity(self) -> int:
        """Higher is worse (secure is 0): a run's verdict is the worst of its hosts'."""
        worst_first = list(Verdict)
        return len(worst_first) - 1 - worst_first.index(self)

    @property
    def is_relay(self) -> bool:
        """The server took mail for an outside recipient, proven by the canary or not."""
        return self.exit_code == EXIT_RELAY


@dataclass(frozen=True)
class Words:
    label: str
    summary: str
    meaning: str
    exit_code: int


WORDS = {
    Verdict.OPEN_RELAY: Words(
        "Open relay",
        "Open relay: test messages sent through the server to an outside address arrived.",
        "Relayed and delivered: a test message sent through this server came out the other side "
        "and reached the portal's canary. That is proof, not suspicion.",
        EXIT_RELAY,
    ),
    Verdict.ACCEPTS_RELAY: Words(
        "Accepts relay",
        "Accepts relaying: the server took mail for an outside recipient.",
        "Accepted but not delivered: the server took mail for an outside recipient, but no test "
        "message from it reached the canary (canary delivery off, or the server queued, discarded or bounced "
        "it later). Treat it as an open relay: a queued message may still arrive, and the verdict then turns "
        "to open relay, marked late.",
        EXIT_RELAY,
    ),
    Verdict.INCONCLUSIVE: Words(
        "Inconclusive",
        "Inconclusive: the test could not settle whether the server relays.",
        "The test could neither prove nor rule out relaying. What to do next: the first step "
        "below says how to get a clear answer.",
        EXIT_INCONCLUSIVE,
    ),
    Verdict.SECURE: Words(
        "Secure",
        "Not an open relay: every relay attempt was refused.",
        "Every relay attempt was refused, and no test message arrived. Nothing to fix.",
        EXIT_SECURE,
    ),
}
