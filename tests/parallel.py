"""What each test process owns when pytest-xdist runs the suite in several (`make test`: -n 6).

Processes share the machine, so anything two of them could both claim is split by the worker's
index (gw0 is 0, gw1 is 1, ...; a run without xdist is 0): its Redis database number and the
loopback block its Postfix instances and receivers listen in. Databases need nothing here:
pytest-django gives each worker its own test database, and the SQLite file is named by process.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

WORKER_INDEX = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
REDIS_DATABASES = 16  # Redis' default `databases`


def redis_url(base: str, worker: int = WORKER_INDEX) -> str:
    """`base` names the database of the first worker; each further worker takes the next number."""
    parts = urlsplit(base)
    number = int(parts.path.strip("/") or 0) + worker
    if number >= REDIS_DATABASES:
        raise RuntimeError(
            f"test worker {worker} would need Redis database {number} (of 0-{REDIS_DATABASES - 1}): "
            "run fewer workers or give TEST_REDIS_URL a lower database number"
        )
    return urlunsplit(parts._replace(path=f"/{number}"))


def loopback(host: int, worker: int = WORKER_INDEX) -> str:
    """Address `host` in this worker's own 127.0.N.0/24 (worker N), e.g. loopback(22) is 127.0.0.22 in gw0."""
    return f"127.0.{worker}.{host}"
