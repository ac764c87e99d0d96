"""Central IT's administration: departments and their members, servers, (read-only) runs, API tokens and
the audit log."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.db import transaction
from django.utils.html import format_html

from relaytests import audit, tokens
from relaytests.forms import MorePortsField
from relaytests.models import (
    Alert,
    ApiToken,
    AuditEntry,
    CanaryDelivery,
    Department,
    FoundServer,
    MailServer,
    Membership,
    TestRun,
    VerdictChange,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "contact_email", "retest_every"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        record_period_change(request, obj, form, obj)


def record_period_change(request, obj, form, department: Department) -> None:
    """An audit entry when the admin form changed the object's re-test period (`retest_every`)."""
    if "retest_every" in form.changed_data:
        old, new = (period_text(p) for p in (form.initial.get("retest_every"), obj.retest_every))
        audit.record(request.user, audit.Action.PERIOD_CHANGED, obj, f"{obj}: {old} → {new}", department)


def period_text(period) -> str:
    return "inherited" if period is None else "off" if not period else str(period)


# How the server stands, written with its runs' verdicts (`TestRun.record_state`): never edited here.
STATE_FIELDS = [
    "latest_run",
    "latest_verdict",
    "last_tested_at",
    "blocklisted",
    "certificate_expires_at",
    "alert_state",
]


class MailServerForm(forms.ModelForm):
    """The other ports as the registration form has them: checkboxes among RELAYTEST_ALLOWED_PORTS."""

    more_ports = MorePortsField()

    class Meta:
        model = MailServer
        fields = "__all__"

    def clean_more_ports(self) -> list[int]:
        return [port for port in self.cleaned_data["more_ports"] if port != self.instance.port]


@admin.register(MailServer)
class MailServerAdmin(admin.ModelAdmin):
    """Servers are registered through the portal's form, which runs the scope check (staff may pick any
    department there); here central IT moves them between departments, sets the other ports their runs
    test (among RELAYTEST_ALLOWED_PORTS) or removes them. The target and its checked addresses stay as the
    scope check left them."""

    form = MailServerForm
    list_display = ["target", "port", "more_ports", "kind", "department", "created_at"]
    list_filter = ["kind", "department"]
    search_fields = ["target", "mail_domain", "department__name"]
    readonly_fields = ["target", "kind", "port", "addresses", "created_by", "created_at", *STATE_FIELDS]

    def has_add_permission(self, request) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if "department" in form.changed_data:
            was = Department.objects.get(pk=form.initial["department"])
            audit.record(
                request.user,
                audit.Action.SERVER_MOVED,
                obj,
                f"{obj}: {was} → {obj.department}",
                obj.department,
            )
        record_period_change(request, obj, form, obj.department)

    def delete_model(self, request, obj) -> None:
        audit.record(request.user, audit.Action.SERVER_REMOVED, obj, str(obj), obj.department)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for server in queryset.select_related("department"):
                audit.record(
                    request.user, audit.Action.SERVER_REMOVED, server, str(server), server.department
                )
            super().delete_queryset(request, queryset)


class WrittenByWorkers:
    """Runs, their verdict changes and canary deliveries are records: central IT reads them here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class CanaryDeliveryInline(WrittenByWorkers, admin.TabularInline):
    model = CanaryDelivery
    extra = 0
    can_delete = False


@admin.register(TestRun)
class TestRunAdmin(WrittenByWorkers, admin.ModelAdmin):
    list_display = [
        "pk",
        "server",
        "vantage",
        "part_of",
        "status",
        "verdict",
        "trigger",
        "started_by",
        "created_at",
    ]
    list_filter = ["status", "verdict", "trigger", "vantage"]
    search_fields = ["server__target", "probe_run_id", "celery_task_id"]
    date_hierarchy = "created_at"
    exclude = ["report"]
    readonly_fields = ["report_json"]
    inlines = [CanaryDeliveryInline]

    def get_queryset(self, request):
        """Runs and their parts from further vantages, which central IT may need to look into too."""
        return TestRun.with_parts.select_related("server")

    @admin.display(description="Report")
    def report_json(self, run: TestRun) -> str:
        return format_html("<pre>{}</pre>", json.dumps(run.report, indent=2))


@admin.register(VerdictChange)
class VerdictChangeAdmin(WrittenByWorkers, admin.ModelAdmin):
    list_display = ["server", "old_verdict", "new_verdict", "run", "created_at"]
    list_filter = ["new_verdict"]


@admin.register(CanaryDelivery)
class CanaryDeliveryAdmin(WrittenByWorkers, admin.ModelAdmin):
    list_display = ["run", "vector_id", "received_at", "peer_address", "late"]
    list_filter = ["late"]


@admin.register(Alert)
class AlertAdmin(WrittenByWorkers, admin.ModelAdmin):
    list_display = ["server", "run", "created_at", "queued", "sent_at"]
    list_filter = ["queued"]


@admin.register(FoundServer)
class FoundServerAdmin(admin.ModelAdmin):
    """What discovery found (central IT assigns or marks them on the overview's page of them)."""

    list_display = ["address", "port", "source", "name", "ptr", "last_seen", "ignored"]
    list_filter = ["source", "ignored"]
    search_fields = ["address", "name", "ptr", "greeting", "note"]
    readonly_fields = ["address", "port", "source", "name", "ptr", "greeting", "first_seen", "last_seen"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Who holds which token: central IT revokes one (a leaked token, a person who left). Tokens are made
    by their users on the portal's tokens page, so nothing here creates or changes one."""

    list_display = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            tokens.revoke(token, by=request.user)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log, as written by the changes themselves: read here, never edited nor removed."""

    list_display = ["created_at", "username", "action", "object_kind", "object_id", "text", "department"]
    list_filter = ["action", "department"]
    search_fields = ["username", "text"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
