"""The Celery application: configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def schedule_reaper(sender: Celery, **kwargs) -> None:
    """Beat sends the reaper every RELAYTEST_REAP_EVERY seconds; a missed one expires, never piles up."""
    from django.conf import settings

    every = settings.RELAYTEST_REAP_EVERY
    reaper = sender.signature("relaytests.tasks.reap_stale_runs", options={"expires": every})
    sender.add_periodic_task(every, reaper, name="reap stale runs")


@app.on_after_configure.connect
def schedule_evidence_trimming(sender: Celery, **kwargs) -> None:
    """Beat sends the trimming of old evidence once a day."""
    day = 24 * 3600
    trimming = sender.signature("relaytests.tasks.trim_old_evidence", options={"expires": day})
    sender.add_periodic_task(day, trimming, name="trim old evidence")


@app.on_after_configure.connect
def schedule_retests(sender: Celery, **kwargs) -> None:
    """Beat sweeps for servers due for their scheduled re-test every RELAYTEST_SCHEDULE_SWEEP_EVERY seconds."""
    from django.conf import settings

    every = settings.RELAYTEST_SCHEDULE_SWEEP_EVERY
    sweep = sender.signature("relaytests.tasks.schedule_retests", options={"expires": every})
    sender.add_periodic_task(every, sweep, name="schedule re-tests")


@app.on_after_configure.connect
def schedule_discovery(sender: Celery, **kwargs) -> None:
    """Beat looks for the mail servers in scope every RELAYTEST_DISCOVERY_EVERY seconds (a day)."""
    from django.conf import settings

    every = settings.RELAYTEST_DISCOVERY_EVERY
    discovery = sender.signature("relaytests.tasks.discover_servers", options={"expires": every})
    sender.add_periodic_task(every, discovery, name="discover mail servers")
