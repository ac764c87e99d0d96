"""`python manage.py seedportal --servers N --runs M`: fill a database with departments, servers and
finished runs for measuring the portal at scale (benchmarks/dashboards.py), quickly (bulk inserts).

Each run carries a report shaped and sized like the engine's (about 12.6 KB: a host with sixteen
vectors, its checks and a sixty-line SMTP transcript); the servers' state columns are set from each
server's newest run, as finishing that run would have. Not for a production database: it only adds.
"""

from __future__ import annotations

import random

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from relaytests.models import Department, MailServer, Membership, TestRun, state_from_report
from relaytests.probe.canary import new_run_id
from relaytests.probe.report import SCHEMA
from relaytests.probe.vocabulary import Verdict

BATCH = 2000
# How often each verdict comes up, roughly as a university's servers stand.
VERDICT_WEIGHTS = {
    Verdict.SECURE: 85,
    Verdict.INCONCLUSIVE: 8,
    Verdict.ACCEPTS_RELAY: 4,
    Verdict.OPEN_RELAY: 3,
}
BLOCKLISTED_ONE_IN = 40


class Command(BaseCommand):
    help = "Add N servers and M finished runs (bulk inserts), for measuring the portal at scale."

    def add_arguments(self, parser):
        parser.add_argument("--servers", type=int, default=200)
        parser.add_argument("--runs", type=int, default=10_000, help="spread evenly over the servers")
        parser.add_argument("--departments", type=int, default=0, help="default: one per 50 servers")
        parser.add_argument("--member", default="", help="a user made a member of the first department")
        parser.add_argument("--seed", type=int, default=13)

    def handle(self, *args, servers: int, runs: int, departments: int, member: str, seed: int, **options):
        rng = random.Random(seed)
        departments = departments or max(1, servers // 50)
        with transaction.atomic():
            made = seed_departments(departments, member)
            server_list = seed_servers(made, servers)
        seed_runs(server_list, runs, rng)
        # The planner's statistics, as autovacuum would gather them later: measured before that, a bulk
        # load is planned as if its tables were empty.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.stdout.write(f"seeded {departments} departments, {servers} servers, {runs} runs")


def seed_departments(count: int, member: str) -> list[Department]:
    start = Department.objects.count()
    made = Department.objects.bulk_create(
        Department(name=f"Department {start + n}", slug=f"department-{start + n}") for n in range(count)
    )
    if member:
        user, _ = get_user_model().objects.get_or_create(username=member)
        Membership.objects.create(user=user, department=made[0])
    return made


def seed_servers(departments: list[Department], count: int) -> list[MailServer]:
    start = MailServer.objects.count()
    servers = (
        MailServer(
            department=departments[n % len(departments)],
            target=f"mx{start + n}.{departments[n % len(departments)].slug}.example.edu",
            addresses=[f"192.0.2.{n % 250 + 1}"],
        )
        for n in range(count)
    )
    return MailServer.objects.bulk_create(servers, batch_size=BATCH)


def seed_runs(servers: list[MailServer], count: int, rng: random.Random) -> None:
    """`count` runs, round after round over the servers, so the last round holds each one's newest.

    On PostgreSQL only the first round is built here; the database copies it into the later rounds
    (INSERT ... SELECT), a week apart as the schedule re-tests them, the servers registered before the
    first: a million runs take minutes instead of hours.
    """
    rounds, rest = divmod(count, len(servers))
    if connection.vendor == "postgresql" and rounds > 1 and not rest:
        first = build_runs(servers, len(servers), rng)
        set_state(copy_rounds(first, rounds))
    else:
        set_state(build_runs(servers, count, rng).values())


def build_runs(servers: list[MailServer], count: int, rng: random.Random) -> dict[int, TestRun]:
    """The runs, inserted in batches; each server's newest by server id."""
    latest: dict[int, TestRun] = {}
    batch: list[TestRun] = []
    for n in range(count):
        server = servers[n % len(servers)]
        verdict = rng.choices(list(VERDICT_WEIGHTS), weights=VERDICT_WEIGHTS.values())[0]
        blocklisted = rng.randrange(BLOCKLISTED_ONE_IN) == 0
        batch.append(
            TestRun(
                server=server,
                status=TestRun.Status.DONE,
                verdict=verdict,
                trigger=TestRun.Trigger.SCHEDULE,
                probe_run_id=new_run_id(),
                addresses=server.addresses,
                report=engine_like_report(server, verdict, blocklisted),
            )
        )
        if len(batch) == BATCH or n == count - 1:
            with transaction.atomic():
                for run in TestRun.objects.bulk_create(batch):
                    latest[run.server_id] = run
            batch = []
    return latest


def copy_rounds(first: dict[int, TestRun], rounds: int) -> list[TestRun]:
    """Copy the first round into rounds 2..`rounds`, a week apart and ending now; the newest runs."""
    shifted = ("created_at", "started_at", "finished_at")
    kept = [
        f.column for f in TestRun._meta.concrete_fields if f.column not in ("id", "probe_run_id", *shifted)
    ]
    ids = [run.pk for run in first.values()]
    with transaction.atomic(), connection.cursor() as cursor:
        moved = ", ".join(f"{c} = {c} - %s * interval '7 days'" for c in shifted)
        cursor.execute(f"UPDATE relaytests_testrun SET {moved} WHERE id = ANY(%s)", [rounds - 1] * 3 + [ids])
        cursor.execute(
            "UPDATE relaytests_mailserver SET created_at = created_at - %s * interval '7 days' WHERE id = ANY(%s)",
            [rounds, list(first)],
        )
        # A run id unique by construction: the first round's id and the round number, in hex.
        later = ", ".join(f"{c} + g * interval '7 days'" for c in shifted)
        cursor.execute(
            f"INSERT INTO relaytests_testrun ({', '.join(kept + list(shifted))}, probe_run_id) "
            f"SELECT {', '.join(kept)}, {later}, "
            "'c' || lpad(to_hex(id * 4096 + g), 9, '0') "
            "FROM relaytests_testrun, generate_series(1, %s) AS g WHERE id = ANY(%s) ORDER BY g, id",
            [rounds - 1, ids],
        )
        cursor.execute(
            "SELECT DISTINCT ON (server_id) server_id, id, created_at FROM relaytests_testrun "
            "WHERE server_id = ANY(%s) ORDER BY server_id, id DESC",
            [list(first)],
        )
        newest = cursor.fetchall()
    for server_id, pk, created_at in newest:
        first[server_id].pk, first[server_id].created_at = pk, created_at
    return list(first.values())


def set_state(runs) -> None:
    servers = [
        MailServer(
            pk=run.server_id,
            latest_run=run,
            latest_verdict=run.verdict,
            last_tested_at=run.created_at,
            **state_from_report(run.parsed_report),
        )
        for run in runs
    ]
    fields = ["latest_run", "latest_verdict", "last_tested_at", "blocklisted", "certificate_expires_at"]
    MailServer.objects.bulk_update(servers, fields, batch_size=BATCH)


def engine_like_report(server: MailServer, verdict: str, blocklisted: bool) -> dict:
    address = server.addresses[0]
    refused = "rejected" if verdict == Verdict.SECURE else "accepted"
    vectors = [
        {
            "id": f"vector-{n:02}", "helo": "relaytest.invalid", "mail_from": "<probe@canary.example.net>",
            "rcpt_to": f"<r-abcdefghij-{n:02}@canary.example.net>", "outcome": refused if n < 3 else "rejected",
            "reason": "relay_denied", "code": 554, "reply": "554 5.7.1 <r@canary.example.net>: Relay access denied",
            "delivered": verdict == Verdict.OPEN_RELAY and n == 0, "step": "rcpt", "tls": False,
            "evidence": "canary-final", "tier": "core", "token": f"r-abcdefghij-{n:02}-0123456789",
            "attempts": 1, "data_code": None, "data_reply": "", "sent_at": None, "delivery": None,
        }
        for n in range(16)
    ]  # fmt: skip
    checks = [
        {"id": "starttls", "status": "pass", "detail": "STARTTLS works (TLSv1.3)",
         "data": {"protocol": "TLSv1.3", "not_after": "2027-06-01T00:00:00+00:00"}},
        {"id": "dnsbl", "status": "fail" if blocklisted else "pass", "detail": "zen.spamhaus.org", "data": {}},
        *({"id": f"check-{n}", "status": "pass", "detail": "as expected " * 6, "data": {}} for n in range(6)),
    ]  # fmt: skip
    transcript = [
        {"t": round(n * 0.05, 3), "dir": "C" if n % 2 else "S", "line": f"{n:03} a line of the SMTP dialogue"}
        for n in range(60)
    ]
    host = {
        "address": address, "port": 25, "name": server.target, "verdict": verdict, "reason": "",
        "banner": f"220 {server.target} ESMTP Postfix", "software": {"family": "postfix", "version": None},
        "vectors": vectors, "checks": checks, "transcript": transcript,
        "connections": 3, "round_trips": 60, "duration_s": 12.5,
    }  # fmt: skip
    return {
        "schema": SCHEMA, "target": server.target, "started_at": "2026-11-27T02:00:00+00:00",
        "finished_at": "2026-11-27T02:00:13+00:00", "duration_s": 13.0, "verdict": verdict,
        "summary": f"{verdict}: seeded", "checks": [],
        "probe": {"source_address": "198.51.100.7", "helo": "relaytest.invalid",
                  "inside_internal_networks": False, "canary_domain": "canary.example.net"},
        "hosts": [host],
    }  # fmt: skip
