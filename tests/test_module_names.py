"""Module names say what a module is: no two modules of the app share one (`relaytests.runs`, the run's
state machine, and the run pages once did), so an import or a traceback names one place."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "relaytests"
# A management command's module name is the command's name: it may repeat the module it runs.
COMMANDS = APP / "management" / "commands"


def test_no_two_modules_of_the_app_share_a_name():
    modules = [
        path.stem
        for path in APP.rglob("*.py")
        if path.stem != "__init__" and "migrations" not in path.parts and path.parent != COMMANDS
    ]
    assert [name for name, count in Counter(modules).items() if count > 1] == []
