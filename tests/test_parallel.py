"""What keeps the test processes of `make test` out of each other's way (tests/parallel.py)."""

from types import SimpleNamespace

import pytest
from xdist.scheduler import WorkStealingScheduling

from tests.conftest import pytest_collection_modifyitems
from tests.parallel import loopback, redis_url


def test_each_worker_takes_its_own_redis_database_above_the_first():
    base = "redis://127.0.0.1:6379/8"
    assert [redis_url(base, worker) for worker in range(3)] == [
        "redis://127.0.0.1:6379/8",
        "redis://127.0.0.1:6379/9",
        "redis://127.0.0.1:6379/10",
    ]
    assert redis_url("redis://127.0.0.1:6379", 2) == "redis://127.0.0.1:6379/2"


def test_a_worker_beyond_the_last_redis_database_is_told_what_to_change():
    with pytest.raises(RuntimeError, match=r"would need Redis database 16 .* run fewer workers"):
        redis_url("redis://127.0.0.1:6379/8", 8)


def test_each_worker_has_its_own_loopback_block():
    assert [loopback(22, worker) for worker in range(3)] == ["127.0.0.22", "127.0.1.22", "127.0.2.22"]


class _Process:
    """What pytest-xdist's scheduler needs of a test process: the tests it is sent, in order."""

    shutting_down = False

    def __init__(self, name: str):
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[int] = []

    def send_runtest_some(self, indices):
        self.sent.extend(indices)


class _Item:
    """A collected test: its name and the kind of test its marker says it is (None: a quick one)."""

    def __init__(self, module: str, name: str, kind: str | None):
        self.path, self.nodeid, self.kind = module, f"{module}::{name}", kind

    def get_closest_marker(self, name):
        return name if name == self.kind else None


@pytest.mark.parametrize("quick", [14, 1235])
def test_every_process_begins_with_its_share_of_the_longest_tests(quick):
    """pytest-xdist's own work-stealing scheduler hands each process a slice of the collection first:
    each of the six slices begins with long tests, browser ones before slow ones, and a module's long
    tests (two in each browser module) stay in one slice."""
    processes = 6
    items = [_Item("test_quick.py", f"quick{n}", None) for n in range(quick)]
    items += [_Item(f"test_slow{n}.py", "slow", "slow") for n in range(6)]
    items += [_Item(f"test_browser{n // 2}.py", f"browser{n}", "browser") for n in range(8)]
    pytest_collection_modifyitems(SimpleNamespace(workerinput={"workercount": processes}), items)
    scheduler = WorkStealingScheduling(SimpleNamespace(getvalue={"tx": [f"{processes}*popen"]}.get))
    nodes = [_Process(f"gw{n}") for n in range(processes)]
    for node in nodes:
        scheduler.add_node(node)
        scheduler.add_node_collection(node, [item.nodeid for item in items])
    scheduler.schedule()
    first_slices = [[items[index] for index in node.sent] for node in nodes]
    assert [[item.kind for item in first_slice[:2]] for first_slice in first_slices] == (
        [["browser", "browser"]] * 4 + [["slow", "slow"]] * 2
    )
    browser_modules = [
        {item.path for item in first_slice if item.kind == "browser"} for first_slice in first_slices
    ]
    assert browser_modules == [{f"test_browser{n}.py"} for n in range(4)] + [set()] * 2
    assert sum(len(first_slice) for first_slice in first_slices) == len(items)
