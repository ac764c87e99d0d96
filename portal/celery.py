"""The Celery application: configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# What beat sends, under which name, how often: seconds, or the setting that holds them. Each message
# expires after its period, so a missed one is skipped, never piled up.
PERIODIC_TASKS = [
    ("relaytests.tasks.reap_stale_runs", "reap stale runs", "RELAYTEST_REAP_EVERY"),
    ("relaytests.tasks.trim_old_evidence", "trim old evidence", 24 * 3600),
    ("relaytests.tasks.schedule_retests", "schedule re-tests", "RELAYTEST_SCHEDULE_SWEEP_EVERY"),
    ("relaytests.tasks.discover_servers", "discover mail servers", "RELAYTEST_DISCOVERY_EVERY"),
]


@app.on_after_configure.connect
def schedule_periodic_tasks(sender: Celery, **kwargs) -> None:
    from django.conf import settings

    for task, name, period in PERIODIC_TASKS:
        every = getattr(settings, period) if isinstance(period, str) else period
        sender.add_periodic_task(every, sender.signature(task, options={"expires": every}), name=name)
