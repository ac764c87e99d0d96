"""Remediation guidance for one tested host: the section for its MTA, tailored to the run.

The texts live in content/*.toml, one file per MTA family plus generic.toml; this module picks
the section for the detected family, explains each vector that succeeded with the family's
reason for it, and fills the server's own names and the organisation's hub into the snippets.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from django.conf import settings

from relaytests.probe.names import guessed_mail_domain
from relaytests.probe.outdated import CHECK_ID as OUTDATED_CHECK_ID
from relaytests.probe.outdated import outdated_check
from relaytests.probe.report import Check, HostReport, Report, VectorResult
from relaytests.probe.vectors import by_id, catalogue
from relaytests.probe.verdict import REFUSALS
from relaytests.probe.vocabulary import Verdict

CONTENT_DIR = Path(__file__).with_name("content")
GENERIC = "generic"
DEPT_NET_HINT = "<your department's sending hosts>"
PLACEHOLDER = re.compile(r"\{(hostname|mail_domain|address|relay_hub|dept_net|org_name)\}")
# Kinds of vector that are the plain vector with one thing more or other (another recipient first, an
# SMTP extension, a mailbox at the server's literal): when the plain vector got through too, the server
# takes any recipient, and the open relay is all they need as a reason.
OPEN_KIND = "open"
WITHIN_OPEN = frozenset({"first-recipient", "extensions", "literal"})
HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z][A-Za-z0-9-]*")


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    snippet: str = ""


@dataclass(frozen=True)
class FailingVector:
    id: str
    explanation: str  # what the vector tried, from the catalogue
    why: str  # why it works on this MTA
    mail_from: str
    rcpt_to: str
    reply: str
    delivered: bool | None
    family: str = ""  # the trick it tries: a sender variant's base, else its own id
    variant: str = ""  # the sender variant's id ("" when the trick was sent with its own sender)


@dataclass(frozen=True)
class Trick:
    """One trick of a cause with every sender it got through with: the trick alone, its sender variants."""

    id: str
    vectors: list[FailingVector]

    @property
    def itself(self) -> FailingVector | None:
        """The trick with its own sender, when that got through."""
        return next((v for v in self.vectors if not v.variant), None)

    @property
    def variants(self) -> list[FailingVector]:
        return [v for v in self.vectors if v.variant]


@dataclass(frozen=True)
class Cause:
    """One weakness of the MTA and the vectors it explains: the admin reads the reason once."""

    kind: str
    why: str
    vectors: list[FailingVector]

    @property
    def relayed(self) -> bool:
        return any(v.delivered for v in self.vectors)

    @property
    def tricks(self) -> list[Trick]:
        """The vectors by trick, a trick's sender variants under it, so the list stays one line long."""
        groups: dict[str, list[FailingVector]] = {}
        for vector in self.vectors:
            groups.setdefault(vector.family or vector.id, []).append(vector)
        return [Trick(family, vectors) for family, vectors in groups.items()]


@dataclass(frozen=True)
class Guidance:
    family: str
    name: str
    generic: bool  # no known family: the generic text, with how to tell which MTA runs
    host_label: str
    verdict: Verdict
    recognised: str
    how_to_tell: str
    failing: list[FailingVector]
    steps: list[Step]
    hub: Step
    verify: Step
    relay_hub: str
    outdated: Check
    sources: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)  # inconclusive: what to do to get an answer

    @property
    def causes(self) -> list[Cause]:
        """The failing vectors grouped by the weakness that explains them, in the order first seen."""
        groups: dict[str, list[FailingVector]] = {}
        plain_got_through = any(_kind(vector.id) == OPEN_KIND for vector in self.failing)
        for vector in self.failing:
            kind = _kind(vector.id)
            if plain_got_through and kind in WITHIN_OPEN:
                kind = OPEN_KIND  # the open relay explains it: no second reason to read
            groups.setdefault(kind, []).append(vector)
        return [Cause(kind, vectors[0].why, vectors) for kind, vectors in groups.items()]

    @property
    def needs_fixing(self) -> bool:
        return bool(self.failing) or self.verdict.is_relay


def guidance_for(report: Report, host_index: int, *, server: Any = None) -> Guidance:
    """The guidance for host `host_index` of a report; `server` is its MailServer, if any."""
    host = report.hosts[host_index]
    family = host.software.family
    generic = family not in families()
    content = _load(GENERIC if generic else family)
    names = _names(report, host, server)
    fill = _filler(names)
    verdict = Verdict(host.verdict)
    return Guidance(
        family="unknown" if generic else family,
        name=content["name"],
        generic=generic,
        host_label=_host_label(host),
        verdict=verdict,
        recognised=fill(content["recognised"]),
        how_to_tell=fill(content["how_to_tell"]) if generic else "",
        failing=[_failing(v, content, fill) for v in succeeded_vectors(host)],
        steps=[_step(s, fill) for s in content["fix"]],
        hub=_step(content["hub"], fill),
        verify=_step(content["verify"], fill),
        relay_hub=names["relay_hub"],
        outdated=_outdated(host),
        sources=list(content["sources"]),
        next_steps=_next_steps(host, fill) if verdict == Verdict.INCONCLUSIVE else [],
    )


def guidance_for_report(report: Report, *, server: Any = None) -> list[Guidance]:
    """One Guidance per host of the report, in the report's order."""
    return [guidance_for(report, i, server=server) for i in range(len(report.hosts))]


def inside_advice(family: str) -> str:
    """What to change when the server relays for a trusted network's clients (the inside view), for
    the MTA `family`; the generic text where the family has none."""
    content = _load(family) if family in families() else {}
    return content.get("inside", _load(GENERIC)["inside"])["text"].replace("{dept_net}", DEPT_NET_HINT)


def succeeded_vectors(host: HostReport) -> list[VectorResult]:
    """The relay vectors the host accepted (controls are not relay attempts)."""
    controls = {v.id for v in catalogue() if v.evidence == "control"}
    return [
        v
        for v in host.vectors
        if v.outcome == "accepted" and v.evidence != "control" and v.id not in controls
    ]


@cache
def _load(name: str) -> dict[str, Any]:
    return tomllib.loads((CONTENT_DIR / f"{name}.toml").read_text())


@cache
def families() -> frozenset[str]:
    """The MTA families that have their own section."""
    return frozenset(p.stem for p in CONTENT_DIR.glob("*.toml")) - {"kinds", GENERIC}


@cache
def _kind_of() -> dict[str, str]:
    return {vector_id: kind for kind, ids in _load("kinds").items() for vector_id in ids}


def _family(vector_id: str) -> str:
    """The trick a vector tries: a sender variant ("percent-host-litfrom") tries its base's."""
    known = by_id().get(vector_id)
    return known.family if known else vector_id


def _kind(vector_id: str) -> str:
    """The weakness that explains a vector (kinds.toml); a sender variant shares its trick's."""
    return _kind_of().get(vector_id) or _kind_of().get(_family(vector_id)) or _family(vector_id)


def _why(vector_id: str, content: dict[str, Any]) -> str:
    """The family's reason for this kind of vector, else the generic reason, else the catalogue's."""
    kind = _kind(vector_id)
    for source in (content, _load(GENERIC)):
        text = source.get("why", {}).get(kind)
        if text:
            return text
    vector = by_id().get(vector_id)
    return vector.targets if vector else ""


def _failing(vector: VectorResult, content: dict[str, Any], fill) -> FailingVector:
    known = by_id().get(vector.id)
    return FailingVector(
        id=vector.id,
        explanation=known.explanation if known else "",
        why=fill(_why(vector.id, content)),
        mail_from=vector.mail_from,
        rcpt_to=vector.rcpt_to,
        reply=vector.reply,
        delivered=vector.delivered,
        family=_family(vector.id),
        variant=known.variant if known else "",
    )


def _next_steps(host: HostReport, fill) -> list[str]:
    """What to do about an inconclusive host: one text per reason the attempts got no answer."""
    texts = _load(GENERIC)[Verdict.INCONCLUSIVE]
    reasons = [v.reason for v in host.vectors if v.outcome != "accepted" and v.reason not in REFUSALS]
    if not host.vectors:
        reasons = ["no_session"]
    known = list(dict.fromkeys(r for r in reasons if r in texts))
    return [fill(texts[reason]) for reason in known] or [fill(texts["default"])]


def _step(data: dict[str, Any], fill) -> Step:
    return Step(title=data.get("title", ""), text=fill(data["text"]), snippet=fill(data.get("snippet", "")))


def _outdated(host: HostReport) -> Check:
    """The check as the run recorded it, else computed now from the recorded banner."""
    recorded = next((check for check in host.checks if check.id == OUTDATED_CHECK_ID), None)
    return recorded or outdated_check(host.software, host.banner)


def _names(report: Report, host: HostReport, server: Any) -> dict[str, str]:
    """The values filled into the texts: the server's own names first, then what the report saw."""
    hostname = (
        host.name
        or _server_target(server, "host")
        or greeting_name(host.banner)
        or report.target
        or host.address
    )
    mail_domain = (
        getattr(server, "mail_domain", "")
        or _server_target(server, "domain")
        or guessed_mail_domain(hostname)
    )
    return {
        "hostname": hostname,
        "mail_domain": mail_domain,
        "address": host.address,
        "relay_hub": settings.PORTAL_RELAY_HUB,
        "dept_net": DEPT_NET_HINT,
        "org_name": settings.PORTAL_ORG_NAME,
    }


def greeting_name(banner: str) -> str:
    """The host name a greeting gives ("220 mx.dept.example.edu ESMTP ..."), if it gives one."""
    words = banner.split()
    name = words[1].rstrip(".") if len(words) > 1 and words[0].startswith("220") else ""
    is_hostname = "." in name and HOSTNAME.fullmatch(name) and not name.replace(".", "").isdigit()
    return name.lower() if is_hostname else ""


def _server_target(server: Any, kind: str) -> str:
    """The registered target when the server was registered as that kind (host or mail domain)."""
    return getattr(server, "target", "") if getattr(server, "kind", "") == kind else ""


def _filler(names: dict[str, str]):
    return lambda text: PLACEHOLDER.sub(lambda m: names[m.group(1)], text)


def _host_label(host: HostReport) -> str:
    shown = f"[{host.address}]" if ":" in host.address else host.address
    name = f"{host.name} " if host.name else ""
    return f"{name}{shown}:{host.port}"
