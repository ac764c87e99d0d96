"""One run seen from each of its vantages: the run's own view (whose verdict stands for the server)
and the view of each part (`TestRun.part_of`), and the finding when a server relays for the clients
of a vantage, typically the campus network, that it refuses from the run's own.

Computed from the stored runs whenever they are read: a part that settles late (a canary delivery,
the reaper) changes what is shown without a second record to keep in step.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import models

from relaytests import guidance
from relaytests.models import VERDICT_STATUSES, TestRun
from relaytests.probe.report import HostReport
from relaytests.probe.vocabulary import Verdict

NO_VERDICT = "This view has no verdict: {reason}"
RELAY_VERDICTS = [verdict.value for verdict in Verdict if verdict.is_relay]
# A run's verdict as a number, higher worse (the engine's severity), for picking the worst in a query.
RUN_SEVERITY = models.Case(
    *(models.When(verdict=v.value, then=models.Value(v.severity)) for v in Verdict),
    default=models.Value(-1),
    output_field=models.IntegerField(),
)


@dataclass(frozen=True)
class View:
    """What one vantage saw: the run itself or one of its parts."""

    run: TestRun

    @property
    def vantage(self) -> str:
        return self.run.vantage

    @property
    def is_own(self) -> bool:
        """The run's own view, whose verdict is the run's."""
        return self.run.part_of_id is None

    @property
    def settled(self) -> bool:
        return self.run.status in VERDICT_STATUSES and bool(self.run.verdict)

    @property
    def verdict(self) -> Verdict:
        """Its verdict; inconclusive while it has none (still running, failed, never taken)."""
        return Verdict(self.run.verdict) if self.settled else Verdict.INCONCLUSIVE

    @property
    def reason(self) -> str:
        """Why a view that ended has no verdict ("" when it has one, or is still on its way)."""
        if self.settled or self.run.is_live:
            return ""
        return NO_VERDICT.format(reason=self.run.status_reason or self.run.get_status_display())

    @property
    def hosts(self) -> list[HostReport]:
        return self.run.parsed_report.hosts if self.settled else []

    @property
    def source_address(self) -> str | None:
        return self.run.parsed_report.probe.source_address if self.settled else None


@dataclass(frozen=True)
class InsideRelay:
    """The finding: from `view` the server relays, from the run's own vantage it does not (as much)."""

    view: View
    own: View
    networks: list[str]  # the internal networks the view's probe was in, else its address
    hosts: list[tuple[HostReport, Verdict]]  # the hosts worse from there, with their own view's verdict
    advice: str  # what to change, for the MTA the view found

    @property
    def title(self) -> str:
        return f"Relays for clients inside {', '.join(self.networks)}"


def views_of(run: TestRun) -> list[View]:
    """The run's own view, then its parts' in the order of RELAYTEST_VANTAGES."""
    return [View(run), *(View(part) for part in run.parts())]


def inside_relays(views: list[View]) -> list[InsideRelay]:
    """Each further view that relays where the run's own does not, with the hosts it saw relay."""
    own = views[0]
    if not own.settled:
        return []
    own_verdicts = {(h.address, h.port): Verdict(h.verdict) for h in own.hosts}
    findings = []
    for view in views[1:]:
        worse = [
            (host, own_verdicts[key])
            for host in view.hosts
            if (key := (host.address, host.port)) in own_verdicts
            and _relays_more(Verdict(host.verdict), own_verdicts[key])
        ]
        if worse:
            findings.append(
                InsideRelay(view, own, _networks(view.source_address), worse, _advice(worse[0][0]))
            )
    return findings


def _relays_more(seen: Verdict, own: Verdict) -> bool:
    return seen.is_relay and seen.severity > own.severity


def _networks(source: str | None) -> list[str]:
    """The internal networks (RELAYTEST_INTERNAL_NETWORKS) the probe ran from, else its own address."""
    if source is None:
        return ["the network it was tested from"]
    address = ipaddress.ip_address(source)
    inside = [net for net in settings.RELAYTEST_INTERNAL_NETWORKS if address in ipaddress.ip_network(net)]
    return inside or [source]


def _advice(host: HostReport) -> str:
    return guidance.inside_advice(host.software.family)


def with_other_views(runs: Sequence[TestRun]) -> Sequence[TestRun]:
    """Give each run its parts as `other_views` (without their reports), in one query for all of them."""
    by_run: dict[int, list[TestRun]] = defaultdict(list)
    parts = TestRun.with_parts.filter(part_of__in=[run.pk for run in runs]).defer("report", "addresses")
    for part in parts.order_by("pk"):
        by_run[part.part_of_id].append(part)
    for run in runs:
        run.other_views = by_run[run.pk]
    return runs


def relays_only_from() -> models.Expression:
    """For a server: the vantage of the worst part of its latest run that relays, when that run's own
    verdict does not (the dashboards' "relays from inside"); else null."""
    relaying = TestRun.with_parts.filter(
        part_of=models.OuterRef("latest_run"), status__in=VERDICT_STATUSES, verdict__in=RELAY_VERDICTS
    ).order_by(RUN_SEVERITY.desc())
    return models.Case(
        models.When(latest_verdict__in=RELAY_VERDICTS, then=models.Value(None)),
        default=models.Subquery(relaying.values("vantage")[:1]),
        output_field=models.CharField(),
    )


def with_verdicts_from_vantages(runs: models.QuerySet[TestRun]) -> tuple[models.QuerySet[TestRun], list[str]]:
    """The runs, each with the verdict of its part from every further vantage as
    `verdict_from_<vantage>`, and those names (a history export's columns)."""
    names = []
    for vantage in settings.RELAYTEST_VANTAGES[1:]:
        name = f"verdict_from_{vantage.replace('-', '_')}"
        part = TestRun.with_parts.filter(part_of=models.OuterRef("pk"), vantage=vantage)
        runs = runs.annotate(**{name: models.Subquery(part.values("verdict")[:1])})
        names.append(name)
    return runs, names
