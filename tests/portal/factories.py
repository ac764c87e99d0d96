"""Rows the run and broker tests need: a department with a member, a registered server, a run."""

from __future__ import annotations

from django.contrib.auth.models import User

from relaytests.models import Department, MailServer, Membership, TestRun
from relaytests.probe.canary import new_run_id

PASSWORD = "correct horse battery staple"


def member(username: str = "mailadmin", department: str = "Physics") -> User:
    """A user who administers the mail of `department` (created when missing)."""
    dept, _ = Department.objects.get_or_create(name=department, slug=department.lower())
    user = User.objects.create_user(username, f"{username}@example.edu", PASSWORD)
    Membership.objects.create(user=user, department=dept)
    return user


def server(user: User, address: str = "127.0.0.1", port: int = 25, **fields) -> MailServer:
    """A server of the user's first department, registered with the one address it resolved to."""
    return MailServer.objects.create(
        department=user.departments.first(), target=address, kind=MailServer.Kind.IP, port=port,
        addresses=[address], created_by=user, **fields,
    )


def run(server: MailServer, **fields) -> TestRun:
    fields.setdefault("addresses", server.addresses)
    return TestRun.objects.create(server=server, probe_run_id=new_run_id(), **fields)
