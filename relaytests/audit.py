"""The audit log: one entry per change a person (or the schedule) made, written by the code that makes
it, in the same transaction, so a change and its entry are kept or lost together."""

from __future__ import annotations

from django.db import models

from relaytests.models import AuditEntry, Department

Action = AuditEntry.Action
SCHEDULE = "the schedule"  # who starts the scheduled runs


def record(
    user, action: str, obj: models.Model, text: str = "", department: Department | None = None
) -> AuditEntry:
    """Note that `user` (None: the schedule) did `action` to `obj`, described by `text`."""
    return AuditEntry.objects.create(
        user=user,
        username=user.get_username() if user is not None else SCHEDULE,
        action=action,
        object_kind=obj._meta.model_name,
        object_id=obj.pk,
        text=text[: AuditEntry._meta.get_field("text").max_length],
        department=department,
    )
