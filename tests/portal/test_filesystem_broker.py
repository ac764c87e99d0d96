"""The embedded filesystem broker: a worker reading while the web server writes loses nothing and
never stops on a half-written file."""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

import pytest
from kombu import Connection

from relaytests import filesystem_broker

MESSAGES = 100
QUEUE = "probe"


def channel_for(folder: Path, transport=filesystem_broker.Transport):
    for sub in ("queue", "processed"):
        (folder / sub).mkdir(exist_ok=True)
    options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
    }
    return Connection("filesystem://", transport=transport, transport_options=options).default_channel


def read_until(folder: Path, count: int, results) -> None:
    """Takes messages as a worker does until `count` have come, counting those that did not decode."""
    channel = channel_for(folder)
    decoded = failed = 0
    while decoded + failed < count:
        try:
            message = channel._get(QUEUE)
        except filesystem_broker.Empty:
            continue
        except ValueError:
            failed += 1
            continue
        decoded += message["n"] is not None
    results.put((decoded, failed))


def test_a_reader_in_another_process_gets_every_message_whole(tmp_path):
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    reader = fork.Process(target=read_until, args=(tmp_path, MESSAGES, results))
    reader.start()
    channel = channel_for(tmp_path)
    # Big enough that encoding it takes a millisecond: Kombu's own transport encodes a message
    # after it has created the file, and a reader in between read it empty (all 100, tried here).
    contents = list(range(20_000))
    for n in range(MESSAGES):
        channel._put(QUEUE, {"n": n, "contents": contents})
    decoded, failed = results.get(timeout=60)
    reader.join(timeout=10)

    assert (decoded, failed) == (MESSAGES, 0)
    assert not list((tmp_path / "processed").glob("**/*.msg")), "a message was set aside"
    assert not os.listdir(tmp_path / "queue")


def test_a_file_that_does_not_decode_is_set_aside_with_an_error_and_the_next_message_is_read(
    tmp_path, caplog
):
    channel = channel_for(tmp_path)
    (tmp_path / "queue" / f"1_broken.{QUEUE}.msg").write_bytes(b"")
    channel._put(QUEUE, {"n": 7})

    with caplog.at_level(logging.ERROR, logger=filesystem_broker.__name__):
        assert channel._get(QUEUE) == {"n": 7}  # before or after the broken file, as the names sort
        with pytest.raises(filesystem_broker.Empty):
            channel._get(QUEUE)

    assert [p.name for p in (tmp_path / "processed" / "unreadable").iterdir()] == [f"1_broken.{QUEUE}.msg"]
    assert "1_broken.probe.msg does not decode" in caplog.text


def test_the_portal_uses_it_when_the_broker_is_the_filesystem(settings):
    from portal.celery import app

    assert settings.CELERY_BROKER_URL.startswith("filesystem://")
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, filesystem_broker.Transport)
