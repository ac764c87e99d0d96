"""Imported first by the benchmarks that start a Celery worker: the project on sys.path, every DNS
lookup (in this process and, through RELAYTEST_RESOLVER, in the worker) to the tests' empty DNS
server on loopback, and Django set up on the test settings (the test database as a file the worker
can open too)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.conftest import EMPTY_DNS

os.environ["RELAYTEST_RESOLVER"] = EMPTY_DNS.address  # no lookup leaves loopback, whatever was set
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()
