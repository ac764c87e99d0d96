"""What a mail domain publishes about mail sent in its name: the `spf` and `dmarc` checks."""

from __future__ import annotations

import asyncio
import ipaddress
import re

from relaytests.probe.dnschecks.client import Answer, DnsClient, txt_text
from relaytests.probe.dnschecks.findings import combine, finding
from relaytests.probe.names import organisational_domain
from relaytests.probe.report import Check

# ---- SPF (RFC 7208) ------------------------------------------------------------------------

_SPF_VERSION = re.compile(r"v=spf1(\s|$)", re.IGNORECASE)
_DOMAIN_SPEC = r"[!-.0-~]+"  # visible characters but "/": macros such as %{d} are allowed
_DUAL_CIDR = r"(/\d{1,2})?(//\d{1,3})?"
# How each mechanism's argument is written (after the name); ip4/ip6 are also checked as networks.
SPF_MECHANISMS = {
    "all": re.compile(r""),
    "include": re.compile(rf":{_DOMAIN_SPEC}"),
    "exists": re.compile(rf":{_DOMAIN_SPEC}"),
    "a": re.compile(rf"(:{_DOMAIN_SPEC})?{_DUAL_CIDR}"),
    "mx": re.compile(rf"(:{_DOMAIN_SPEC})?{_DUAL_CIDR}"),
    "ptr": re.compile(rf"(:{_DOMAIN_SPEC})?"),
    "ip4": re.compile(r":(?P<network>[0-9.]+(/\d{1,2})?)"),
    "ip6": re.compile(r":(?P<network>[0-9a-f:.]+(/\d{1,3})?)", re.IGNORECASE),
}
SPF_NETWORK_VERSION = {"ip4": 4, "ip6": 6}
_SPF_TERM = re.compile(r"(?P<qualifier>[-+~?]?)(?P<mechanism>[a-z][a-z0-9]*)(?P<argument>.*)", re.IGNORECASE)
_SPF_MODIFIER = re.compile(r"(?P<name>[a-z][a-z0-9_.-]*)=(?P<value>.*)", re.IGNORECASE)
SPF_SINGLE_MODIFIERS = ("redirect", "exp")  # RFC 7208 section 6: at most once each

SPF_FINDINGS = {
    "lookup_failed": ("error", "Could not look up the SPF record of {domain}: {failure}."),
    "nxdomain": ("fail", "{domain} does not exist in DNS (NXDOMAIN), so it has no SPF record."),
    "missing": (
        "warn",
        "{domain} publishes no SPF record: receivers cannot tell its own mail from forgeries "
        'and many junk mail without SPF; publish one such as "v=spf1 mx -all".',
    ),
    "several": (
        "fail",
        "{domain} publishes {count} SPF records: RFC 7208 makes receivers treat that as an "
        "error, as if there were none; merge them into one.",
    ),
    "malformed": (
        "fail",
        "The SPF record of {domain} cannot be used: {problem}; RFC 7208 makes receivers "
        "treat it as an error, as if there were none.",
    ),
    "pass_all": (
        "warn",
        'The SPF record of {domain} ends in "+all", which lets every host on the Internet '
        'send mail as {domain}; end it in "-all" or "~all".',
    ),
    "ok": ("pass", "{domain} publishes a valid SPF record: {record}"),
}


async def spf_check(domain: str, client: DnsClient) -> Check:
    answer = await client.lookup(domain, "TXT")
    records = [text for text in map(txt_text, answer.records) if _SPF_VERSION.match(text)]
    data = {"domain": domain, "records": records}
    return combine(
        "spf",
        [finding(SPF_FINDINGS, key, domain=domain, **facts) for key, facts in _spf_findings(answer, records)],
        data,
    )


def _spf_findings(answer: Answer, records: list[str]) -> list[tuple[str, dict]]:
    if answer.failure:
        return [("lookup_failed", {"failure": answer.failure})]
    if answer.nxdomain:
        return [("nxdomain", {})]
    if not records:
        return [("missing", {})]
    if len(records) > 1:
        return [("several", {"count": len(records)})]
    terms = records[0].split()[1:]
    problem = next(filter(None, map(_spf_term_problem, terms)), None) or _spf_repeated_modifier(terms)
    if problem:
        return [("malformed", {"problem": problem})]
    if any(term.lower() in ("all", "+all") for term in terms):
        return [("pass_all", {})]
    return [("ok", {"record": records[0]})]


def _spf_term_problem(term: str) -> str | None:
    """What is wrong with one term of an SPF record, or None."""
    if _SPF_MODIFIER.fullmatch(term):
        return None
    match = _SPF_TERM.fullmatch(term)
    mechanism = match["mechanism"].lower() if match else None
    if match is None or mechanism not in SPF_MECHANISMS:
        return f"'{term}' is not an SPF mechanism"
    argument = SPF_MECHANISMS[mechanism].fullmatch(match["argument"])
    if not argument:
        return f"'{term}' is malformed"
    version = SPF_NETWORK_VERSION.get(mechanism)
    if version and not _is_network(argument["network"], version):
        return f"'{term}' is not a valid IPv{version} network"
    return None


def _spf_repeated_modifier(terms: list[str]) -> str | None:
    names = [m["name"].lower() for m in map(_SPF_MODIFIER.fullmatch, terms) if m]
    repeated = next((name for name in SPF_SINGLE_MODIFIERS if names.count(name) > 1), None)
    return f"the '{repeated}' modifier appears more than once" if repeated else None


def _is_network(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_network(text, strict=False).version == version
    except ValueError:
        return False


# ---- DMARC (RFC 7489) ----------------------------------------------------------------------

_DMARC_VERSION = re.compile(r"v\s*=\s*DMARC1\s*(;|$)")
_POLICY = r"none|quarantine|reject"
_URI_LIST = r"[a-z][a-z0-9+.-]*:[^,\s]+(\s*,\s*[a-z][a-z0-9+.-]*:[^,\s]+)*"
# The tags RFC 7489 section 6.3 defines, and how their values are written; other tags are ignored.
DMARC_TAGS = {
    "p": _POLICY,
    "sp": _POLICY,
    "adkim": "[rs]",
    "aspf": "[rs]",
    "pct": r"100|[1-9]?[0-9]",
    "fo": "[01ds](:[01ds])*",
    "rf": "[a-z0-9]+(:[a-z0-9]+)*",
    "ri": "[0-9]+",
    "rua": _URI_LIST,
    "ruf": _URI_LIST,
}

DMARC_FINDINGS = {
    "lookup_failed": ("error", "Could not look up the DMARC record of {domain}: {failure}."),
    "missing": (
        "warn",
        "{domain} publishes no DMARC record (at _dmarc.{domain}): receivers get no "
        "policy for mail that forges it; publish one such as "
        '"v=DMARC1; p=quarantine; rua=mailto:...".',
    ),
    "several": (
        "fail",
        "_dmarc.{owner} has {count} DMARC records: RFC 7489 makes receivers ignore them all; keep one.",
    ),
    "malformed": ("fail", "The DMARC record of {owner} cannot be used: {problem}."),
    "monitor_only": (
        "info",
        "The DMARC policy of {subject} is p=none: receivers only report mail that "
        "forges it and deliver it as usual; move to quarantine or reject once the "
        "reports show that all of its own mail passes.",
    ),
    "ok": ("pass", "The DMARC policy of {subject} is p={policy}."),
}


async def dmarc_check(domain: str, client: DnsClient) -> Check:
    """The domain's DMARC record, else its organisational domain's (RFC 7489, section 6.6.3): the
    registered domain under its public suffix, from the Public Suffix List (example.ac.uk, not ac.uk).
    """
    owners = _dmarc_owners(domain)
    answers = await asyncio.gather(*(client.lookup(f"_dmarc.{owner}", "TXT") for owner in owners))
    data = {"domain": domain}
    return combine(
        "dmarc",
        [
            finding(DMARC_FINDINGS, key, domain=domain, **facts)
            for key, facts in _dmarc_findings(domain, owners, answers, data)
        ],
        data,
    )


def _dmarc_owners(domain: str) -> list[str]:
    organisational = organisational_domain(domain)
    return [domain] if organisational in (None, domain) else [domain, organisational]


def _dmarc_findings(
    domain: str, owners: list[str], answers: list[Answer], data: dict
) -> list[tuple[str, dict]]:
    for owner, answer in zip(owners, answers, strict=True):
        if answer.failure:
            return [("lookup_failed", {"failure": answer.failure})]
        records = [text for text in map(txt_text, answer.records) if _DMARC_VERSION.match(text)]
        if records:
            data.update(owner=owner, records=records)
            return [_dmarc_record_finding(domain, owner, records)]
    return [("missing", {})]


def _dmarc_record_finding(domain: str, owner: str, records: list[str]) -> tuple[str, dict]:
    if len(records) > 1:
        return "several", {"owner": owner, "count": len(records)}
    tags, problem = _dmarc_tags(records[0])
    if problem:
        return "malformed", {"owner": owner, "problem": problem}
    subject = domain if owner == domain else f"{domain} (from the record of {owner})"
    policy = tags["p"].lower() if owner == domain else tags.get("sp", tags["p"]).lower()
    return ("monitor_only" if policy == "none" else "ok"), {"subject": subject, "policy": policy}


def _dmarc_tags(record: str) -> tuple[dict[str, str], str | None]:
    """The tags of a DMARC record, and what is wrong with it (None when it is usable)."""
    tags: dict[str, str] = {}
    for part in filter(None, (part.strip() for part in record.split(";")[1:])):
        name, equals, value = (piece.strip() for piece in part.partition("="))
        name = name.lower()
        if not equals:
            return tags, f"'{part}' is not a tag=value pair"
        if name in tags:
            return tags, f"the tag '{name}' appears more than once"
        if name in DMARC_TAGS and not re.fullmatch(DMARC_TAGS[name], value, re.IGNORECASE):
            return tags, f"'{name}={value}' is not a valid value for {name}"
        tags[name] = value
    if "p" not in tags:
        return tags, "it has no p= tag, the policy itself"
    return tags, None
