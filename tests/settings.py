"""The portal's settings under test (pyproject.toml names this module): the production module as it is,
plus only what a test process needs and no other process notices. The processes the tests start
(workers, the CLI, runportal) inherit this module and so run on the production settings.
"""

import os

from portal.settings import *  # noqa: F403
from portal.settings import DATABASES, VAR_DIR

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Tests run a real Celery worker in another process: the test database must be a file it can
    # open too (pytest-django's default is in memory), one per test process.
    # Its tables come from the models, not the 43 migrations (0.6 s of CPU in each test process); the
    # migrations run for real under `make test-postgres`, in the processes runportal starts, and
    # tests/portal/test_models.py checks that they describe the models.
    DATABASES["default"]["TEST"] = {
        "NAME": str(VAR_DIR / f"test-portal-{os.getpid()}.sqlite3"),
        "MIGRATE": False,
    }
