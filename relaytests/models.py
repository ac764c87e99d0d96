"""Departments, their mail servers, and the test runs of those servers.

A run's report is the engine's ``Report.to_dict()``, stored unchanged (relaytest/1 schema).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

from relaytests.probe.report import DEFAULT_VANTAGE, Report
from relaytests.probe.vocabulary import Verdict as EngineVerdict


def retest_every_field(inherits: str) -> models.DurationField:
    """Central IT's override of how often the schedule re-tests (`relaytests.schedule`)."""
    return models.DurationField(
        null=True,
        blank=True,
        validators=[MinValueValidator(timedelta(0))],
        help_text=f"How often the schedule re-tests, e.g. 7 00:00:00 for a week; 0 turns it off; "
        f"blank: {inherits}.",
    )


class Department(models.Model):
    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    contact_email = models.EmailField(blank=True)
    retest_every = retest_every_field("the portal's RELAYTEST_RETEST_EVERY")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="departments", blank=True
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="memberships")
    # The member's own choice: the department's contact address and central IT get every alert regardless.
    alerts = models.BooleanField(default=True, help_text="Mail this member the department's alerts.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "department"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.department}"


# The engine's verdicts as the database's choices, worst first, with their labels.
Verdict = models.TextChoices(
    "Verdict", [(verdict.name, (verdict.value, verdict.label)) for verdict in EngineVerdict]
)


# How urgent a server is on central IT's overview, from its state columns: its verdict's severity, and a
# blocklisted server as urgent as an open relay; an untested one as an inconclusive one.
SEVERITY = models.Case(
    models.When(blocklisted=True, then=models.Value(EngineVerdict.OPEN_RELAY.severity)),
    *(models.When(latest_verdict=v.value, then=models.Value(v.severity)) for v in EngineVerdict),
    default=models.Value(EngineVerdict.INCONCLUSIVE.severity),
    output_field=models.IntegerField(),
)


class MailServer(models.Model):
    class Kind(models.TextChoices):
        HOST = "host", "Hostname"
        IP = "ip", "IP address"
        DOMAIN = "domain", "Mail domain (its MX hosts)"

    department = models.ForeignKey(Department, on_delete=models.CASCADE, related_name="servers")
    # Normalised: lower-case ASCII (IDNA) hostname or domain, or the IP address in its short form.
    target = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.HOST)
    port = models.PositiveIntegerField(default=25)
    # The other ports the same run tests (587, 465, ...), each as its own host: never `port` again.
    more_ports = models.JSONField(
        default=list, blank=True, help_text="Ports tested in the same run besides the target's port."
    )
    mail_domain = models.CharField(
        max_length=255, blank=True, help_text="The domain this server receives mail for (optional)."
    )
    # The addresses the scope check resolved and accepted; runs connect to these, no second lookup.
    addresses = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # How the server stands now, copied from its latest run (the newest started run with a verdict) in
    # the transaction that gives that run its verdict, so lists never read a report (`record_state`).
    latest_run = models.ForeignKey(
        "TestRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    latest_verdict = models.CharField(max_length=20, choices=Verdict.choices, blank=True, db_index=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    blocklisted = models.BooleanField(default=False, db_index=True)
    certificate_expires_at = models.DateTimeField(null=True, blank=True)
    # Kept by the database from the two columns above, and indexed: the overview sorts 50,000 servers
    # by it and reads only the top of the index (6 ms instead of 80).
    severity = models.GeneratedField(expression=SEVERITY, output_field=models.IntegerField(), db_persist=True)
    retest_every = retest_every_field("the department's period")
    # What the last alert said is wrong, by condition (`relaytests.alerts`): the next alert is the difference.
    alert_state = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["target", "port"]
        constraints = [
            models.UniqueConstraint(fields=["target", "port", "kind"], name="one_server_per_target")
        ]
        indexes = [models.Index(models.F("severity").desc(), name="server_severity")]

    def __str__(self) -> str:
        return self.target if self.port == 25 else f"{self.target}:{self.port}"

    def get_absolute_url(self) -> str:
        return reverse("relaytests:server", args=[self.pk])

    @property
    def ports(self) -> list[int]:
        """Every port a run tests, the target's first."""
        return list(dict.fromkeys([self.port, *self.more_ports]))


def hosts_of(addresses: Iterable[str], port: int, more_ports: Iterable[int] = ()) -> set[tuple[str, int]]:
    """The hosts (address and port) a server's runs connect to: each address on its port and its others."""
    return {(address, each) for each in (port, *more_ports) for address in addresses}


def state_from_report(report: Report) -> dict:
    """The server columns a run's report sets: whether it is blocklisted, when its certificate expires."""
    checks = report.all_checks()
    expiries = [
        datetime.fromisoformat(check.data["not_after"])
        for check in checks
        if check.id == "starttls" and isinstance(check.data, dict) and check.data.get("not_after")
    ]
    return {
        "blocklisted": any(check.id.startswith("dnsbl") and check.status == "fail" for check in checks),
        "certificate_expires_at": min(expiries, default=None),
    }


ACTIVE_STATUSES = ("queued", "running")
# The run's page keeps updating itself in these: canary deliveries can still change the verdict.
LIVE_STATUSES = (*ACTIVE_STATUSES, "awaiting_delivery")
# A run in these has a verdict: final when done, so far while it waits for canary deliveries.
VERDICT_STATUSES = ("awaiting_delivery", "done")


class TestRunQuerySet(models.QuerySet):
    def with_verdict(self) -> TestRunQuerySet:
        """Runs that reached a verdict (so far), newest started first: the first is the verdict now."""
        return self.filter(status__in=VERDICT_STATUSES).exclude(verdict="").order_by("-pk")


class RunManager(models.Manager.from_queryset(TestRunQuerySet)):  # type: ignore[misc]
    """The default: runs, not their parts from further vantages, so that history, dashboards, counts,
    alerts and the API never take a part for a run of its own. `TestRun.with_parts` has both (the life
    of a run, which its parts share); related lookups and deletion use the unfiltered base manager."""

    def get_queryset(self) -> TestRunQuerySet:
        return super().get_queryset().filter(part_of__isnull=True)


class TestRun(models.Model):
    __test__ = False  # not a pytest test class, despite the name

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker"
        RUNNING = "running", "Running"
        AWAITING_DELIVERY = "awaiting_delivery", "Waiting for canary deliveries"
        DONE = "done", "Finished"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Test button"
        RETEST = "retest", "Re-test button"
        SCHEDULE = "schedule", "Schedule"
        API = "api", "API"

    # Also indexed with its id (run_server_newest). Its own index stays: on PostgreSQL, dropping it
    # with db_index=False drops the partial unique index one_active_run_per_server on the same column too.
    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    status_reason = models.TextField(blank=True)
    verdict = models.CharField(max_length=20, choices=Verdict.choices, blank=True)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched by the worker while it runs, so the reaper can tell a dead worker from a slow one.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    probe_run_id = models.CharField(max_length=10, unique=True)  # canary.new_run_id()
    report = models.JSONField(default=dict, blank=True)
    addresses = models.JSONField(default=list, blank=True)
    # The portal's address as the person who started the run saw it (scheme://host[:port]), for the
    # permalink in its test messages when SITE_URL is not set.
    site_url = models.CharField(max_length=255, blank=True)
    # The verdict settled after a newer run of the server had its own: history shows it in its place.
    settled_later = models.BooleanField(default=False)
    # Its open_relay came only from canaries that arrived after the run was final (set with the report).
    upgraded_late = models.BooleanField(default=False)
    # Its report was trimmed to its summary after RELAYTEST_EVIDENCE_DAYS (`evidence.trim_old_evidence`).
    evidence_trimmed = models.BooleanField(default=False)
    # Where the run probes from: the vantage of the worker that takes it (RELAYTEST_VANTAGE), whose
    # queue it is sent to (probe.<vantage>).
    vantage = models.CharField(max_length=32, default=DEFAULT_VANTAGE)
    # A run from each further vantage of RELAYTEST_VANTAGES is a part of the run from the first: it
    # has its own probe run id (its deliveries are its own), status, report and verdict, lives like a
    # run (claimed, reaped, finalised) and never stands for the server (the run's verdict does).
    # Indexed for its parts only (run_parts): an index of every run's null would tempt PostgreSQL to
    # AND a million entries into each "this server's runs" lookup of the dashboards (minutes).
    part_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )

    objects = RunManager()
    with_parts = TestRunQuerySet.as_manager()
    _parsed: tuple[dict, Report] | None = None  # `parsed_report`'s: the dict it was parsed from, and it

    class Meta:
        ordering = ["-created_at", "-pk"]
        # The metrics' count by status and verdict of runs (not parts) reads this index, not the rows
        # and their reports.
        indexes = [
            models.Index(
                fields=["status", "verdict"],
                condition=models.Q(part_of__isnull=True),
                name="run_status_verdict",
            ),
            # A server's newest runs first, for "its latest run with a verdict" (before a day, after a run):
            # read one row through this, where the server index let PostgreSQL AND a million rows of the
            # status index into each of 50,000 servers' lookups (minutes, for the overview).
            models.Index(fields=["server", "-id"], name="run_server_newest"),
            models.Index(fields=["part_of"], condition=models.Q(part_of__isnull=False), name="run_parts"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["server"],
                condition=models.Q(status__in=ACTIVE_STATUSES, part_of__isnull=True),
                name="one_active_run_per_server",
                violation_error_message="This server already has a test queued or running.",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.server}"

    def get_absolute_url(self) -> str:
        return reverse("relaytests:run", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    def parts(self) -> list[TestRun]:
        """Its parts from the further vantages, in the order RELAYTEST_VANTAGES listed them."""
        return list(TestRun.with_parts.filter(part_of=self).order_by("pk"))

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def parsed_report(self) -> Report:
        """`report` as the engine's typed Report, parsed once however often a request reads it; again
        when `report` is replaced (refresh_from_db, settling a delivery), never a stale one."""
        if self._parsed is None or self._parsed[0] is not self.report:
            self._parsed = (self.report, Report.from_dict(self.report))
        return self._parsed[1]

    @property
    def permalink(self) -> str:
        """The run page's full address: SITE_URL when set, else where the run was started from."""
        return (settings.SITE_URL or self.site_url) + self.get_absolute_url()

    def previous_run(self) -> TestRun | None:
        """The run started before this one that has a verdict (final or so far): "since last run"."""
        return TestRun.objects.with_verdict().filter(server_id=self.server_id, pk__lt=self.pk).first()

    def record_state(self) -> bool:
        """Make this run the server's latest unless a newer started run has a verdict; whether it did.

        Called in the transaction that gives the run its verdict (finished, settled, late-upgraded), with
        `self.report` the report just stored.
        """
        if self.part_of_id or self.status not in VERDICT_STATUSES or not self.verdict:
            return False  # a part's verdict is its view's only: the server's state follows the run's
        if TestRun.objects.with_verdict().filter(server_id=self.server_id, pk__gt=self.pk).exists():
            return False
        MailServer.objects.filter(pk=self.server_id).update(
            latest_run=self,
            latest_verdict=self.verdict,
            last_tested_at=self.created_at,
            **state_from_report(self.parsed_report),
        )
        return True

    def record_verdict(self, was: str | None = None) -> None:
        """The run's verdict and report were just stored (finished, settled, upgraded late): make it the
        server's state and, once the run is over, write the move in the history; while it waits for
        test messages its verdict is only so far, no change yet. `was` as in `record_verdict_change`.
        A part's verdict is its view's only: the server's state and history follow the run's."""
        if self.part_of_id:
            return
        self.record_state()
        if self.status not in LIVE_STATUSES:
            self.record_verdict_change(was)

    def record_verdict_change(self, was: str | None = None) -> VerdictChange | None:
        """Write the move this run's verdict makes in the server's history, which follows the order
        in which runs were started, not the order in which they settled.

        `was` is this run's own verdict before a late delivery changed it; None when the run has just
        become done, and is compared with the previous run's verdict. A run that settles after a newer
        run has a verdict is only marked settled later: its first verdict still takes its place in the
        history, but a later move is no news, since the newer run already tells how the server stands.
        """
        newer = TestRun.objects.with_verdict().filter(server_id=self.server_id, pk__gt=self.pk).exists()
        if newer and not self.settled_later:
            TestRun.objects.filter(pk=self.pk).update(settled_later=True)
            self.settled_later = True
        if was is None:
            previous = self.previous_run()
            was = previous.verdict if previous else ""
        elif newer:
            return None
        if not self.verdict or self.verdict == was:
            return None
        return VerdictChange.objects.create(
            server_id=self.server_id, run=self, old_verdict=was, new_verdict=self.verdict
        )


class VerdictChange(models.Model):
    """A run's verdict differs from the previous run's (in the order runs were started), or a late
    delivery changed it."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="verdict_changes")
    run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="verdict_changes")
    old_verdict = models.CharField(max_length=20, choices=Verdict.choices, blank=True)
    new_verdict = models.CharField(max_length=20, choices=Verdict.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-run_id", "-created_at", "-pk"]  # newest started run first, as the runs are

    def __str__(self) -> str:
        return f"{self.server}: {self.old_verdict or 'none'} -> {self.new_verdict}"

    @property
    def upgraded_late(self) -> bool:
        """This is the move to open relay that only canaries arriving after the run was final made."""
        return self.run.upgraded_late and self.new_verdict == Verdict.OPEN_RELAY


class CanaryDelivery(models.Model):
    """One canary token that one message carried: a sender's retry of the message adds no row."""

    run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="deliveries")
    vector_id = models.CharField(max_length=64)
    token = models.CharField(max_length=128)
    # The message's Message-ID, or a hash of it (receiver.message_key): the same for a retry.
    message_key = models.CharField(max_length=255)
    received_at = models.DateTimeField(auto_now_add=True)
    peer_address = models.CharField(max_length=64, blank=True)
    received_chain = models.JSONField(default=list, blank=True)  # the Received: header strings
    late = models.BooleanField(default=False)  # arrived after the run was final

    class Meta:
        ordering = ["received_at", "pk"]
        verbose_name_plural = "canary deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["run", "token", "message_key"], name="one_delivery_per_token_and_message"
            )
        ]

    def __str__(self) -> str:
        return f"{self.vector_id} for {self.run}"


class Alert(models.Model):
    """A mail about a change in how a server stands (`relaytests.alerts`): written with the run's verdict,
    sent by a task that retries until the mail server takes it."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="alerts")
    run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="alerts")
    # Each {"condition", "was", "now", "since", "worse"}: the levels before and now ("" = fine).
    changes = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    queued = models.BooleanField(default=False)  # its task reached the broker; else the reaper sends it
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"alert {self.pk} about {self.server}"


class FoundServer(models.Model):
    """A mail server discovery found in scope (`relaytests.unregistered`): an MX host or a listener of the
    scope networks, by address and port. Registered or not follows from the registered servers."""

    class Source(models.TextChoices):
        MX = "mx", "MX host"
        SWEEP = "sweep", "Network sweep"

    address = models.CharField(max_length=64)
    port = models.PositiveIntegerField()
    source = models.CharField(max_length=10, choices=Source.choices)
    name = models.CharField(max_length=255, blank=True)  # the MX host name it was found under
    ptr = models.CharField(max_length=255, blank=True)
    greeting = models.CharField(max_length=255, blank=True)  # "" when nothing answered (an MX host)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()
    # Central IT knows it and does not want it registered (a printer's SMTP, a hosted service).
    ignored = models.BooleanField(default=False)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["address", "port"]
        constraints = [models.UniqueConstraint(fields=["address", "port"], name="one_found_server_per_host")]

    def __str__(self) -> str:
        return f"{self.name or self.address}:{self.port}"

    @property
    def target_text(self) -> str:
        """What a person would type to register it: its MX name, else its address, with the port."""
        host = self.name or (f"[{self.address}]" if ":" in self.address else self.address)
        return f"{host}:{self.port}"


class ApiToken(models.Model):
    """A personal API token (relaytests/tokens.py): it acts with its user's rights until it expires or is
    revoked. Its secret is shown once, when it is created; only the SHA-256 of the whole token is kept,
    found by its public prefix."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What it is for, e.g. the ticket system.")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}) of {self.user}"

    def is_expired(self, now: datetime | None = None) -> bool:
        return bool(self.expires_at and self.expires_at <= (now or timezone.now()))

    def refusal(self, now: datetime) -> str:
        """Why the token may not be used now, or "" when it may."""
        if self.revoked_at:
            return "This API token was revoked."
        if self.is_expired(now):
            return "This API token has expired."
        if not self.user.is_active:
            return "The account of this API token is disabled."
        return ""


class AuditEntry(models.Model):
    """Who did what to which server, run, token or schedule (`relaytests.audit.record`), written in the
    transaction of the change. The user's name is kept as text, so the record outlives the account;
    the object is named by kind and id, so it outlives the object too."""

    class Action(models.TextChoices):
        SERVER_REGISTERED = "server_registered", "Registered a server"
        SERVER_MOVED = "server_moved", "Moved a server"
        SERVER_REMOVED = "server_removed", "Removed a server"
        RUN_STARTED = "run_started", "Started a test"
        TOKEN_CREATED = "token_created", "Created an API token"
        TOKEN_REVOKED = "token_revoked", "Revoked an API token"
        PERIOD_CHANGED = "period_changed", "Changed a schedule period"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, help_text='Who, as named then; "the schedule" for its runs.')
    action = models.CharField(max_length=20, choices=Action.choices)
    object_kind = models.CharField(max_length=50)
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    text = models.CharField(max_length=300, blank=True)
    department = models.ForeignKey(
        Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.username}: {self.get_action_display()} {self.text}"
