"""What the API shows of each object: the columns the pages read, never a report but on its own path."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from relaytests.forms import KIND_CHOICES
from relaytests.models import ApiToken, Department, MailServer, TestRun, Verdict, VerdictChange
from relaytests.views.dashboards import COUNTED


class PageField(serializers.CharField):
    """The address of the object's page, for a ticket or an alert to link to."""

    def __init__(self, **kwargs):
        super().__init__(
            source="get_absolute_url", read_only=True, help_text="The address of its page.", **kwargs
        )

    def to_representation(self, value):
        request = self.context.get("request")
        return request.build_absolute_uri(value) if request else value


def verdict_field(**kwargs) -> serializers.ChoiceField:
    """A verdict, or "" while there is none (a server never tested, a run still working): said so in the
    schema, which a model field that is only read would not."""
    return serializers.ChoiceField(choices=Verdict.choices, allow_blank=True, read_only=True, **kwargs)


class DepartmentSerializer(serializers.ModelSerializer):
    # Not an email field: the schema's "email" format would not allow the "" of a department without one.
    contact_email = serializers.CharField(read_only=True, help_text="An e-mail address, or empty.")

    class Meta:
        model = Department
        fields = ["slug", "name", "contact_email"]
        read_only_fields = fields


class ServerSerializer(serializers.ModelSerializer):
    department = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    active_run = serializers.IntegerField(
        source="active_run_id",
        read_only=True,
        allow_null=True,
        help_text="The run queued or running, if any.",
    )
    latest_verdict = verdict_field(help_text="How it stands now; empty: never tested.")
    more_ports = serializers.ListField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text="The other ports each run tests besides `port`, each as a host of its own.",
    )
    page = PageField()

    class Meta:
        model = MailServer
        fields = [
            "id",
            "department",
            "target",
            "kind",
            "port",
            "more_ports",
            "mail_domain",
            "addresses",
            "created_at",
            "latest_run",
            "latest_verdict",
            "last_tested_at",
            "blocklisted",
            "certificate_expires_at",
            "active_run",
            "page",
        ]
        read_only_fields = fields


class PortsField(serializers.ListField):
    """A list of port numbers, whose errors are one list of messages as every field's are (the API's
    FieldErrors), not ListField's messages by position."""

    child = serializers.IntegerField()

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            raise serializers.ValidationError("List the ports as whole numbers, e.g. [587, 465].") from None


class RegisterServerSerializer(serializers.Serializer):
    """The registration form's fields. Only their types are checked here; the form checks the rest and
    says what it says on the page."""

    department = serializers.CharField(allow_blank=True, help_text="The department's slug.")
    what = serializers.ChoiceField(choices=KIND_CHOICES, default="server")
    target = serializers.CharField(
        allow_blank=True, trim_whitespace=False, help_text="Hostname, IP address or mail domain, with :PORT"
    )
    mail_domain = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    more_ports = PortsField(
        required=False,
        help_text="Other ports to test in the same runs, among the portal's allowed ports (e.g. [587, 465]).",
    )


class NewTokenRequestSerializer(serializers.Serializer):
    """The token page's fields: only their types here; the page's form checks the rest."""

    name = serializers.CharField(allow_blank=True, help_text="What it is for, e.g. the ticket system.")
    expires_on = serializers.DateField(
        required=False,
        allow_null=True,
        help_text="From the start of this day on it is refused; none: until revoked.",
    )


class NewTokenSerializer(serializers.ModelSerializer):
    token = serializers.SerializerMethodField(
        help_text="The token itself, shown this once: the portal keeps only its SHA-256."
    )

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "token"]
        read_only_fields = fields

    def get_token(self, token) -> str:
        return self.context["text"]


class OtherViewSerializer(serializers.ModelSerializer):
    """A part of a run: the same test from a further vantage (its report at /api/runs/{id}/report/)."""

    verdict = verdict_field(help_text="Empty until it has one; this view's own, never the server's.")
    page = PageField()

    class Meta:
        model = TestRun
        fields = ["id", "vantage", "status", "status_reason", "verdict", "page"]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    server = serializers.PrimaryKeyRelatedField(read_only=True)
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    verdict = verdict_field(help_text="Empty until it has one; so far while awaiting_delivery.")
    vantage = serializers.CharField(read_only=True, help_text="Where it probed from (RELAYTEST_VANTAGES).")
    part_of = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="For a part: the run whose further vantage it tests."
    )
    other_views = serializers.SerializerMethodField(
        help_text="The run's parts from its further vantages; their verdicts never stand for the server."
    )
    page = PageField()

    class Meta:
        model = TestRun
        fields = [
            "id",
            "server",
            "vantage",
            "part_of",
            "other_views",
            "status",
            "status_reason",
            "verdict",
            "trigger",
            "started_by",
            "created_at",
            "started_at",
            "finished_at",
            "settled_later",
            "upgraded_late",
            "evidence_trimmed",
            "page",
        ]
        read_only_fields = fields

    @extend_schema_field(OtherViewSerializer(many=True))
    def get_other_views(self, run: TestRun) -> list:
        """As `vantages.with_other_views` gave them to a page of runs, else read now."""
        parts = getattr(run, "other_views", None)
        return OtherViewSerializer(
            run.parts() if parts is None else parts, many=True, context=self.context
        ).data


class RefusedRunSerializer(serializers.Serializer):
    """Why no run was started (the hourly cap, a run already active) or why it failed at once."""

    detail = serializers.CharField()
    run = RunSerializer(allow_null=True, required=False)


class VerdictChangeSerializer(serializers.ModelSerializer):
    server = serializers.PrimaryKeyRelatedField(read_only=True)
    target = serializers.CharField(source="server.__str__", read_only=True)
    department = serializers.CharField(source="server.department.slug", read_only=True)
    run = serializers.PrimaryKeyRelatedField(read_only=True)
    old_verdict = verdict_field(help_text="Empty for a server's first verdict.")

    class Meta:
        model = VerdictChange
        fields = ["id", "server", "target", "department", "run", "old_verdict", "new_verdict", "created_at"]
        read_only_fields = fields


class VerdictChangesQuery(serializers.Serializer):
    since = serializers.DateTimeField(
        required=False, help_text="Only changes recorded at or after this time (ISO 8601)."
    )


class ServersQuery(serializers.Serializer):
    department = serializers.SlugField(required=False, help_text="Only this department's servers.")
    verdict = serializers.ChoiceField(
        choices=list(COUNTED),
        required=False,
        help_text="Only servers with this verdict now, untested or blocklisted.",
    )


# The largest id a database's integer column holds: a larger one is refused, not sent to the database.
MAX_ID = 2**63 - 1


class RunsQuery(serializers.Serializer):
    server = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    status = serializers.ChoiceField(choices=TestRun.Status.choices, required=False)


class DashboardSerializer(serializers.Serializer):
    servers = serializers.IntegerField(help_text="Every registered server.")
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Servers per verdict now, then untested and blocklisted (the overview's counts).",
    )
