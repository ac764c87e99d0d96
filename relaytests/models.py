"""Departments, their mail servers, and the test runs of those servers.

A run's report is the engine's ``Report.to_dict()``, stored unchanged (relaytest/1 schema).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse


class Department(models.Model):
    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    contact_email = models.EmailField(blank=True)
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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "department"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.department}"


class Verdict(models.TextChoices):
    """Worst first, as DESIGN.md orders them."""

    OPEN_RELAY = "open_relay", "Open relay"
    ACCEPTS_RELAY = "accepts_relay", "Accepts relay"
    INCONCLUSIVE = "inconclusive", "Inconclusive"
    SECURE = "secure", "Secure"


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
    mail_domain = models.CharField(
        max_length=255, blank=True, help_text="The domain this server receives mail for (optional)."
    )
    # The addresses the scope check resolved and accepted; runs connect to these, no second lookup.
    addresses = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["target", "port"]
        constraints = [models.UniqueConstraint(fields=["target", "port", "kind"], name="one_server_per_target")]

    def __str__(self) -> str:
        return self.target if self.port == 25 else f"{self.target}:{self.port}"

    def get_absolute_url(self) -> str:
        return reverse("relaytests:server", args=[self.pk])


ACTIVE_STATUSES = ("queued", "running")
# The run's page keeps updating itself in these: canary deliveries can still change the verdict.
LIVE_STATUSES = (*ACTIVE_STATUSES, "awaiting_delivery")


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

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["server"],
                condition=models.Q(status__in=ACTIVE_STATUSES),
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

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    def previous_finished_run(self) -> TestRun | None:
        """The server's last run before this one that reached a verdict: "since last run" compares to it."""
        return (
            TestRun.objects.filter(server_id=self.server_id, pk__lt=self.pk, status=self.Status.DONE)
            .exclude(verdict="")
            .order_by("-pk")
            .first()
        )

    def record_verdict_change(self) -> VerdictChange | None:
        """Write the flip row when this finished run's verdict differs from the previous finished run's."""
        previous = self.previous_finished_run()
        old_verdict = previous.verdict if previous else ""
        if not self.verdict or self.verdict == old_verdict:
            return None
        return VerdictChange.objects.create(
            server_id=self.server_id, run=self, old_verdict=old_verdict, new_verdict=self.verdict
        )


class VerdictChange(models.Model):
    """A run finished with a verdict different from the server's previous finished run."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="verdict_changes")
    run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="verdict_changes")
    old_verdict = models.CharField(max_length=20, choices=Verdict.choices, blank=True)
    new_verdict = models.CharField(max_length=20, choices=Verdict.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.server}: {self.old_verdict or 'none'} -> {self.new_verdict}"


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
            models.UniqueConstraint(fields=["run", "token", "message_key"], name="one_delivery_per_token_and_message")
        ]

    def __str__(self) -> str:
        return f"{self.vector_id} for {self.run}"
