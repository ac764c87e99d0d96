"""The embedded SQLite database is set up for several processes writing at once."""

from __future__ import annotations

import pytest
from django.db import connection, transaction


@pytest.mark.django_db(transaction=True)
def test_sqlite_waits_for_the_write_lock_in_wal_mode():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite settings; PostgreSQL has row locks")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 10_000
    assert connection.transaction_mode == "IMMEDIATE"
    with transaction.atomic(), connection.cursor() as cursor:  # BEGIN IMMEDIATE is accepted by this SQLite
        cursor.execute("SELECT 1")
