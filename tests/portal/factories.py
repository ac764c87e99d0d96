"""Plain factory functions for the portal's rows: each takes only what a test cares about."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth.models import User

from relaytests.models import Department, MailServer, Membership, TestRun
from relaytests.probe.canary import host_tag, new_run_id
from relaytests.probe.receiver import Delivery

PASSWORD = "a long test password 42"


def make_user(username: str, *, staff: bool = False) -> User:
    return User.objects.create_user(
        username, email=f"{username}@example.edu", password=PASSWORD, is_staff=staff
    )


def make_department(name: str, *members: User) -> Department:
    department = Department.objects.create(name=name, slug=name.lower().replace(" ", "-"))
    for user in members:
        Membership.objects.create(user=user, department=department)
    return department


def make_server(department: Department, target: str = "mail.physics.example.edu", **fields) -> MailServer:
    fields.setdefault("addresses", ["192.0.2.25"])
    return MailServer.objects.create(department=department, target=target, **fields)


def make_run(server: MailServer, **fields) -> TestRun:
    """A run of the server: finished unless told otherwise. A run with a verdict becomes the server's
    state as the transaction that gives it the verdict makes it (`TestRun.record_state`)."""
    fields.setdefault("status", TestRun.Status.DONE)
    fields.setdefault("addresses", server.addresses)
    run = TestRun.objects.create(server=server, probe_run_id=new_run_id(), **fields)
    run.record_state()
    server.refresh_from_db()
    return run


def vector(vector_id: str, outcome: str, *, delivered: bool | None = None, reason: str = "") -> dict:
    return {
        "id": vector_id,
        "helo": "relaytest.invalid",
        "mail_from": "<probe@canary.example.net>",
        "rcpt_to": f"<{vector_id}@canary.example.net>",
        "outcome": outcome,
        "reason": reason or ("relay_denied" if outcome == "rejected" else ""),
        "code": {"accepted": 250, "rejected": 554, "deferred": 450, "failed": None}[outcome],
        "reply": "554 5.7.1 Relay access denied" if outcome == "rejected" else "250 2.1.5 Ok",
        "delivered": delivered,
    }


def check(check_id: str, status: str, detail: str = "") -> dict:
    return {"id": check_id, "status": status, "detail": detail or f"{check_id} is {status}", "data": {}}


def host(address: str = "192.0.2.25", *, verdict: str = "secure", vectors=(), checks=(), **fields) -> dict:
    return {
        "address": address,
        "port": 25,
        "name": "mail.physics.example.edu",
        "verdict": verdict,
        "reason": "",
        "banner": "220 mail.physics.example.edu ESMTP Postfix",
        "software": {"family": "postfix", "version": None},
        "vectors": list(vectors),
        "checks": list(checks),
        "transcript": [],
        **fields,
    }


def report(verdict: str = "secure", hosts=(), checks=(), **fields) -> dict:
    return {
        "schema": "relaytest/1",
        "target": "mail.physics.example.edu",
        "started_at": "2026-11-27T10:00:00+00:00",
        "finished_at": "2026-11-27T10:01:00+00:00",
        "duration_s": 60.0,
        "verdict": verdict,
        "summary": "",
        "probe": {
            "source_address": "198.51.100.7",
            "helo": "relaytest.invalid",
            "inside_internal_networks": False,
            "canary_domain": "canary.example.net",
        },
        "hosts": list(hosts),
        "checks": list(checks),
        **fields,
    }


# ---- canary deliveries: an engine's final report that awaits test messages, and an arrival ----

HOST_TAG = host_tag("192.0.2.25", 25)
TOKEN = f"r-abcdefghij-{HOST_TAG}-plain-0123456789"
OTHER_TOKEN = f"r-abcdefghij-{HOST_TAG}-percent-hack-0123456789"
CHAIN = ("from probe.example (unknown [198.51.100.7]) by mail.physics.example.edu (Postfix) with ESMTP id 1",)


def accepted_report(also_awaited: str = "") -> dict:
    """An engine's final report: one host took the canary message(s), none has arrived yet.

    `also_awaited` makes the percent-hack vector a second accepted one, with that token.
    """
    plain = awaited_vector("plain", TOKEN)
    refused = vector("percent-hack", "rejected")
    second = awaited_vector("percent-hack", also_awaited) if also_awaited else refused
    accepting = host(verdict="accepts_relay", vectors=[plain, second], reason="accepted outside recipients")
    return report("accepts_relay", hosts=[accepting])


def awaited_vector(vector_id: str, token: str) -> dict:
    return {
        **vector(vector_id, "accepted", delivered=False),
        "token": token,
        "data_code": 250,
        "sent_at": "2026-11-27T10:00:30+00:00",
    }


def delivery_of(
    run: TestRun, token: str = TOKEN, vector_id: str = "plain", message_key: str = ""
) -> Delivery:
    """An arrival of `token`, in the message `message_key` (default: the probe's own, <token@domain>)."""
    address = f"{token}@canary.example.net"
    return Delivery(
        token=token,
        run_id=run.probe_run_id,
        host_tag=HOST_TAG,
        vector_id=vector_id,
        received_at=datetime(2026, 11, 27, 10, 0, 31, tzinfo=UTC),
        peer_address="192.0.2.25",
        received_chain=CHAIN,
        mail_from="b-x@canary.example.net",
        rcpt_tos=(address,),
        message_key=message_key or f"<{address}>",
    )
