"""Production settings: `check --deploy` is clean, and the files the portal keeps are private."""

from __future__ import annotations

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
READ_KEY = "import portal.settings as s; print(s.SECRET_KEY)"
# The racers: one process loads all that the settings import but the settings themselves, then forks
# them; they wait at a gate (a pipe) that opens for all at once, then import the settings, where the
# key is made, and print it.
RACERS = """
import os, sys, traceback
import django.conf, dj_database_url, portal, portal.env, relaytests.probe.environment
gate, opener = os.pipe()
racers = []
for _ in range(int(os.environ["RACERS"])):
    racers.append(os.fork())
    if racers[-1] == 0:
        try:
            os.close(opener)
            os.read(gate, 1)  # end of file once the launcher closes the other end
            import portal.settings
            os.write(1, (portal.settings.SECRET_KEY + "\\n").encode())
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
os.close(opener)
sys.exit(any(os.waitpid(pid, 0)[1] for pid in racers))
"""
# Readers with Django loaded, which say they are ready and read the settings the moment the key file appears.
WAIT_FOR_KEY_FILE = """
import os, time, django.conf, dj_database_url, portal.env  # all but the settings themselves
open(os.path.join(os.environ["READY_DIR"], str(os.getpid())), "w").close()
while not os.path.exists(os.path.join(os.environ["PORTAL_VAR_DIR"], "secret_key")):
    time.sleep(0.005)
"""
# The writer begins once every reader is ready.
WAIT_FOR_READERS = """
import os, time
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


def _start(var_dir: Path, *, prelude: str, **more: str) -> subprocess.Popen:
    script = prelude + READ_KEY
    environment = _environment(PORTAL_VAR_DIR=str(var_dir), **more)
    return subprocess.Popen(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=environment, stdout=subprocess.PIPE, text=True
    )


def _keys_of_racers(var_dir: Path) -> list[str]:
    """The keys read by STARTING_TOGETHER processes that load the settings at one moment on one folder."""
    environment = _environment(PORTAL_VAR_DIR=str(var_dir), RACERS=str(STARTING_TOGETHER))
    result = subprocess.run([sys.executable, "-c", RACERS], cwd=BASE_DIR, env=environment, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _keys(processes: list[subprocess.Popen]) -> set[str]:
    keys = {process.communicate()[0].strip() for process in processes}
    assert all(process.returncode == 0 for process in processes)
    return keys


@pytest.mark.slow
def test_processes_starting_together_on_a_fresh_folder_share_one_complete_key(tmp_path):
    for trial in range(TRIALS):
        var_dir = tmp_path / f"trial-{trial}"
        keys = _keys_of_racers(var_dir)

        assert len(keys) == STARTING_TOGETHER
        [key] = set(keys)
        assert len(key) >= 50
        assert (var_dir / "secret_key").read_text() == key
        assert [path.name for path in var_dir.iterdir() if "secret" in path.name] == ["secret_key"]


def test_a_slow_writer_of_the_key_never_shows_the_others_an_empty_or_partial_key(tmp_path):
    var_dir, ready = tmp_path / "var", tmp_path / "ready"
    ready.mkdir()
    readers = [
        _start(var_dir, prelude=WAIT_FOR_KEY_FILE, READY_DIR=str(ready)) for _ in range(STARTING_TOGETHER - 1)
    ]
    slow_writer = _start(
        var_dir, prelude=WAIT_FOR_READERS + SLOW_WRITES, READY_DIR=str(ready), READERS=str(len(readers))
    )

    [key] = _keys([slow_writer, *readers])

    assert len(key) >= 50


def test_the_data_folder_the_key_and_the_sqlite_database_are_private(tmp_path):
    var_dir = tmp_path / "var"
    environment = _environment(PORTAL_VAR_DIR=str(var_dir))

    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=environment, check=True,
                   capture_output=True)  # fmt: skip

    assert _mode(var_dir) == 0o700
    assert _mode(var_dir / "secret_key") == 0o600
    assert _mode(var_dir / "portal.sqlite3") == 0o600
