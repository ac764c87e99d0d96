"""The relaytest console script as the tests run it: the one `make` installs beside the
virtualenv's python (pip install -e .), running this checkout's code whichever checkout it was
installed from."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CONSOLE_SCRIPT = shutil.which("relaytest", path=str(Path(sys.executable).parent))


def command_line(*args: str) -> list[str]:
    assert CONSOLE_SCRIPT, f"no relaytest script beside {sys.executable}: run `make` (pip install -e .)"
    return [CONSOLE_SCRIPT, *args]


def environment(**variables: str) -> dict[str, str]:
    """The test's environment with these variables, and this checkout first on the import path."""
    return {**os.environ, "PYTHONPATH": str(PROJECT), **variables}
