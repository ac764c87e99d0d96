"""Recording canary deliveries: at once during the wait, late after the run, never lost while it runs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.db import IntegrityError, transaction

from relaytests.deliveries import finalise, record_message, recorded_arrivals
from relaytests.models import CanaryDelivery, TestRun, VerdictChange
from relaytests.probe.canary import host_tag
from tests.portal import factories
from tests.portal.factories import CHAIN, OTHER_TOKEN, TOKEN, accepted_report, delivery_of

pytestmark = pytest.mark.django_db

Status = TestRun.Status


def plain_vector(run: TestRun) -> dict:
    return run.report["hosts"][0]["vectors"][0]


def test_a_delivery_during_the_wait_marks_the_vector_delivered_at_once(server):
    run = factories.make_run(
        server,
        status=Status.AWAITING_DELIVERY,
        verdict="accepts_relay",
        report=accepted_report(also_awaited=OTHER_TOKEN),
    )

    [row] = record_message([delivery_of(run)])

    run.refresh_from_db()
    assert (row.run, row.vector_id, row.token, row.late) == (run, "plain", TOKEN, False)
    assert (row.peer_address, row.received_chain) == ("192.0.2.25", list(CHAIN))
    vector = plain_vector(run)
    assert vector["delivered"] is True
    delivery = vector["delivery"]
    assert (delivery["peer_address"], delivery["received_chain"]) == ("192.0.2.25", list(CHAIN))
    assert delivery["late"] is False and delivery["delay_s"] > 0  # recorded now, sent in the report's past
    assert (run.report["verdict"], run.report["hosts"][0]["verdict"], run.verdict) == ("open_relay",) * 3
    assert run.report["summary"].startswith("Open relay:")
    assert run.status == Status.AWAITING_DELIVERY  # the other test message is still out
    assert VerdictChange.objects.count() == 0  # the run is not over: its finaliser writes the change


def test_the_last_awaited_delivery_finalises_the_run_without_waiting_on(server):
    factories.make_run(server, verdict="secure", report=factories.report("secure"))
    run = factories.make_run(
        server,
        status=Status.AWAITING_DELIVERY,
        verdict="accepts_relay",
        report=accepted_report(also_awaited=OTHER_TOKEN),
    )

    record_message([delivery_of(run)])
    record_message([delivery_of(run, OTHER_TOKEN, "percent-hack")])

    run.refresh_from_db()
    assert (run.status, run.verdict) == (Status.DONE, "open_relay")
    assert [v["delivered"] for v in run.report["hosts"][0]["vectors"]] == [True, True]
    change = VerdictChange.objects.get()
    assert (change.run, change.old_verdict, change.new_verdict) == (run, "secure", "open_relay")
    assert not finalise(run.pk)  # the finalising task, when it comes, finds nothing to do


def test_the_finaliser_settles_what_arrived_and_ends_the_run_once(server):
    factories.make_run(server, verdict="secure", report=factories.report("secure"))
    run = factories.make_run(
        server,
        status=Status.AWAITING_DELIVERY,
        verdict="accepts_relay",
        report=accepted_report(also_awaited=OTHER_TOKEN),
    )
    record_message([delivery_of(run)])

    assert finalise(run.pk)
    assert not finalise(run.pk)

    run.refresh_from_db()
    assert (run.status, run.verdict) == (Status.DONE, "open_relay")
    assert [v["delivered"] for v in run.report["hosts"][0]["vectors"]] == [True, False]
    change = VerdictChange.objects.get()
    assert (change.run, change.old_verdict, change.new_verdict) == (run, "secure", "open_relay")


def test_the_finaliser_leaves_a_run_that_is_not_waiting_alone(server):
    for status in (Status.RUNNING, Status.DONE, Status.INTERRUPTED):
        run = factories.make_run(server, status=status, report=accepted_report())

        assert not finalise(run.pk)

        assert TestRun.objects.get(pk=run.pk).status == status
    assert VerdictChange.objects.count() == 0


def test_a_late_delivery_upgrades_the_verdict_and_records_the_change(server):
    factories.make_run(server, verdict="secure", report=factories.report("secure"))
    run = factories.make_run(server, verdict="accepts_relay", report=accepted_report())

    [row] = record_message([delivery_of(run)])

    run.refresh_from_db()
    assert row.late is True
    assert plain_vector(run)["delivery"]["late"] is True
    assert (run.status, run.verdict, run.report["verdict"]) == (Status.DONE, "open_relay", "open_relay")
    change = VerdictChange.objects.get()
    assert (change.run, change.old_verdict, change.new_verdict) == (run, "accepts_relay", "open_relay")


def test_a_retried_message_adds_no_row_and_another_message_changes_nothing_more(server):
    run = factories.make_run(server, verdict="accepts_relay", report=accepted_report())

    record_message([delivery_of(run)])
    first = TestRun.objects.get(pk=run.pk).report
    retry = record_message([delivery_of(run)])
    another = record_message([delivery_of(run, message_key="<a-copy@relay.example.org>")])

    run.refresh_from_db()
    assert (retry, len(another)) == ([], 1)
    assert CanaryDelivery.objects.filter(run=run).count() == 2
    assert run.report == first  # the first arrival is the one shown
    assert VerdictChange.objects.count() == 1


def test_the_rows_of_one_message_are_unique_in_the_database_too(server):
    run = factories.make_run(server, report=accepted_report())
    record_message([delivery_of(run)])
    row = CanaryDelivery.objects.get()

    with pytest.raises(IntegrityError), transaction.atomic():
        CanaryDelivery.objects.create(
            run=run, token=row.token, message_key=row.message_key, vector_id="plain"
        )


def test_a_forged_delivery_for_a_refused_vector_proves_nothing_even_late(server):
    factories.make_run(server, verdict="secure", report=factories.report("secure"))
    refused = {**factories.vector("plain", "rejected"), "token": TOKEN}
    secure = factories.report("secure", hosts=[factories.host(verdict="secure", vectors=[refused])])
    run = factories.make_run(server, verdict="secure", report=secure)

    [row] = record_message([delivery_of(run)])

    run.refresh_from_db()
    assert row.late is True
    assert (run.verdict, run.report["verdict"], run.report["hosts"][0]["verdict"]) == ("secure",) * 3
    assert plain_vector(run)["delivered"] is None
    assert VerdictChange.objects.count() == 0
    [unexpected] = run.report["unexpected_deliveries"]
    assert (unexpected["token"], unexpected["host"], unexpected["port"], unexpected["late"]) == (
        TOKEN,
        "192.0.2.25",
        25,
        True,
    )
    assert unexpected["why"].startswith("the server refused this vector (554 5.7.1 Relay access denied)")
    assert (unexpected["peer_address"], unexpected["received_chain"]) == ("192.0.2.25", list(CHAIN))


def test_a_delivery_for_another_host_of_the_run_proves_nothing_for_this_one(server):
    run = factories.make_run(
        server,
        status=Status.AWAITING_DELIVERY,
        verdict="accepts_relay",
        report=accepted_report(also_awaited=OTHER_TOKEN),
    )
    elsewhere = TOKEN.replace(factories.HOST_TAG, host_tag("192.0.2.26", 25))

    record_message([delivery_of(run, elsewhere)])

    run.refresh_from_db()
    assert [v["delivered"] for v in run.report["hosts"][0]["vectors"]] == [False, False]
    assert run.verdict == "accepts_relay"
    [unexpected] = run.report["unexpected_deliveries"]
    assert (unexpected["host"], unexpected["why"]) == (None, "its token names no host of this run")


def test_a_delivery_while_the_worker_writes_the_report_is_kept_for_its_finish(server):
    hosts_so_far = [factories.host(verdict="inconclusive")]
    snapshot = {"schema": "relaytest/1", "target": server.target, "hosts": hosts_so_far}
    run = factories.make_run(server, status=Status.RUNNING, report=snapshot)

    [row] = record_message([delivery_of(run)])

    run.refresh_from_db()
    assert row.late is False
    assert run.report == snapshot  # the worker owns the report until it is final
    assert recorded_arrivals(run) == {
        TOKEN: {
            "received_at": row.received_at.isoformat(timespec="milliseconds"),
            "peer_address": "192.0.2.25",
            "received_chain": list(CHAIN),
            "late": False,
        }
    }


def test_a_token_of_an_unknown_run_is_not_recorded(server):
    run = factories.make_run(server, report=accepted_report())
    stranger = replace(delivery_of(run), run_id="zzzzzzzzzz")

    assert record_message([stranger]) == []
    assert CanaryDelivery.objects.count() == 0
