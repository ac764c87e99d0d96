"""How long the relaytest commands take from start to exit: the console script and manage.py.

    python benchmarks/cli_startup.py [--rounds N]

For each command it times `--list-vectors` (start-up and the catalogue, no network) and a JSON run
against a closed fake server (tests/fakes, in this process; start-up plus one whole probe), and
prints the median and the fastest wall time of N rounds, the median wall time besides the probe
(the report's duration_s: start-up and exit) and the median CPU time. The console script is the venv's `relaytest`
(`make` installs it), else `python -m relaytests.probe.cli`. Every DNS lookup goes to an empty
DNS server on loopback (--resolver), as in the tests. The commands run as on an operator's machine,
with their bytecode cached (PYTHONDONTWRITEBYTECODE is dropped; a first round, not counted, writes
it). Not a test: figures to compare between changes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CACHED_BYTECODE = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
sys.path.insert(0, str(PROJECT))  # run as a script from anywhere

from tests.dnsserver import ZoneServer
from tests.fakes import FakeSMTPServer


def console_script() -> list[str]:
    installed = shutil.which("relaytest", path=str(Path(sys.executable).parent))
    return [installed] if installed else [sys.executable, "-m", "relaytests.probe.cli"]


def seconds(command: list[str]) -> tuple[float, float, float]:
    """One run: its wall time, the CPU time (user and system) it took, which on a busy machine says
    more than the wall time, and the wall time besides the probe (the report's duration_s), which
    is the command's start-up and exit."""
    cpu_before = children_cpu()
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=PROJECT, env=CACHED_BYTECODE, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode > 3 or "Traceback" in result.stderr:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    probing = json.loads(result.stdout)["duration_s"] if "--json" in command else 0.0
    return wall, children_cpu() - cpu_before, wall - probing


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args().rounds
    commands = {
        "relaytest": console_script(),
        "manage.py relaytest": [sys.executable, "manage.py", "relaytest"],
    }
    with FakeSMTPServer("closed") as fake, ZoneServer("") as dns:
        probe = ["127.0.0.1", "--port", str(fake.port), "--json", "--resolver", dns.address]
        for name, command in commands.items():
            for label, args in (("--list-vectors", ["--list-vectors"]), ("closed fake", probe)):
                seconds([*command, *args])  # writes the bytecode
                walls, cpus, besides = zip(*(seconds([*command, *args]) for _ in range(rounds)), strict=True)
                print(
                    f"{name:<20} {label:<15} wall median {statistics.median(walls):.3f} s"
                    f" (fastest {min(walls):.3f} s, besides the probe {statistics.median(besides):.3f} s);"
                    f" CPU median {statistics.median(cpus):.3f} s  ({rounds} rounds)"
                )


if __name__ == "__main__":
    main()
