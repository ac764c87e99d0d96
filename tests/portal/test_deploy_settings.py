"""Production settings: `check --deploy` is clean, and the files the portal keeps are private."""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = settings.BASE_DIR
STARTING_TOGETHER = 8
TRIALS = 5  # forks are cheap, so several trials: each is a chance for a race to show
# Each process says which folder it read the key of, and the key.
READ_KEY = """
import portal.settings
os.write(1, f"{os.environ['PORTAL_VAR_DIR']} {portal.settings.SECRET_KEY}\\n".encode())
"""
# The launcher: one process loads all that the settings import but the settings themselves, then, round
# by round, forks the round's processes (each with its own variables and script). They wait at a gate (a
# pipe) that opens for all at once, then run their script, which imports the settings, where the key is
# made. Forks are cheap: a process of its own each cost 0.4 s of CPU.
LAUNCHER = """
import json, os, sys, traceback
import django.conf, dj_database_url, portal, portal.env, relaytests.probe.environment
failed = False
for processes in json.loads(os.environ["ROUNDS"]):
    gate, opener = os.pipe()
    children = []
    for process in processes:
        children.append(os.fork())
        if children[-1] == 0:
            try:
                os.close(opener)
                os.environ.update(process["env"])
                os.read(gate, 1)  # end of file once the launcher closes the other end
                exec(process["script"], {"os": os})
                os._exit(0)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
    os.close(opener)
    failed |= any(os.waitpid(pid, 0)[1] for pid in children)
    os.close(gate)
sys.exit(failed)
"""
# Readers, which say they are ready and read the settings the moment the key file appears.
WAIT_FOR_KEY_FILE = """
import time
open(os.path.join(os.environ["READY_DIR"], str(os.getpid())), "w").close()
while not os.path.exists(os.path.join(os.environ["PORTAL_VAR_DIR"], "secret_key")):
    time.sleep(0.005)
"""
# The writer begins once every reader is ready.
WAIT_FOR_READERS = """
import time
while len(os.listdir(os.environ["READY_DIR"])) < int(os.environ["READERS"]):
    time.sleep(0.05)
"""
# A writer on a slow disk: every write to a file it opens takes three seconds.
SLOW_WRITES = """
import io, time
_open = io.open
def _slow_open(file, mode="r", *args, **kwargs):
    opened = _open(file, mode, *args, **kwargs)
    if "w" in mode:
        write = opened.write
        opened.write = lambda data: (time.sleep(3), write(data))[1]
    return opened
io.open = _slow_open
"""


def _environment(**settings_: str) -> dict[str, str]:
    drop = ("DATABASE_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "PORTAL_PRODUCTION")
    environment = {k: v for k, v in os.environ.items() if k not in drop}
    environment.update(settings_)
    return environment


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_check_deploy_is_clean_with_a_production_environment(tmp_path):
    environment = _environment(
        PORTAL_VAR_DIR=str(tmp_path),
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="0",
        ALLOWED_HOSTS="relaytest.example.edu",
        PORTAL_PRODUCTION="1",
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr


def _keys_read(rounds: list[list[tuple[Path, str, dict[str, str]]]]) -> dict[Path, list[str]]:
    """Run the rounds of processes (each its folder, its script before READ_KEY and its variables) through
    the launcher: the keys each folder's processes read."""
    launched = [
        [{"env": {"PORTAL_VAR_DIR": str(var_dir), **variables}, "script": script + READ_KEY}
         for var_dir, script, variables in processes]
        for processes in rounds
    ]  # fmt: skip
    result = subprocess.run([sys.executable, "-c", LAUNCHER], cwd=BASE_DIR, env=_environment(ROUNDS=json.dumps(launched)),
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    keys: dict[Path, list[str]] = {}
    for line in result.stdout.splitlines():
        var_dir, key = line.split(" ", 1)
        keys.setdefault(Path(var_dir), []).append(key)
    return keys


@pytest.mark.slow
def test_processes_starting_together_on_a_fresh_folder_share_one_complete_key(tmp_path):
    folders = [tmp_path / f"trial-{trial}" for trial in range(TRIALS)]
    keys_read = _keys_read([[(var_dir, "", {})] * STARTING_TOGETHER for var_dir in folders])

    for var_dir in folders:
        keys = keys_read[var_dir]
        assert len(keys) == STARTING_TOGETHER
        [key] = set(keys)
        assert len(key) >= 50
        assert (var_dir / "secret_key").read_text() == key
        assert [path.name for path in var_dir.iterdir() if "secret" in path.name] == ["secret_key"]


def test_a_slow_writer_of_the_key_never_shows_the_others_an_empty_or_partial_key(tmp_path):
    var_dir, ready = tmp_path / "var", tmp_path / "ready"
    ready.mkdir()
    readers = [(var_dir, WAIT_FOR_KEY_FILE, {"READY_DIR": str(ready)})] * (STARTING_TOGETHER - 1)
    slow_writer = (
        var_dir,
        WAIT_FOR_READERS + SLOW_WRITES,
        {"READY_DIR": str(ready), "READERS": str(len(readers))},
    )

    keys = _keys_read([[slow_writer, *readers]])[var_dir]

    assert len(keys) == STARTING_TOGETHER
    [key] = set(keys)
    assert len(key) >= 50


def test_the_data_folder_the_key_and_the_sqlite_database_are_private(tmp_path):
    var_dir = tmp_path / "var"
    environment = _environment(PORTAL_VAR_DIR=str(var_dir))

    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=environment, check=True,
                   capture_output=True)  # fmt: skip

    assert _mode(var_dir) == 0o700
    assert _mode(var_dir / "secret_key") == 0o600
    assert _mode(var_dir / "portal.sqlite3") == 0o600
