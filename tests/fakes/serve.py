"""Run one fake SMTP server in the foreground, for trying the relaytest command by hand.

    python -m tests.fakes.serve closed --port 2525
    .venv/bin/relaytest 127.0.0.1 --port 2525 --local-domain dept.example.edu

It prints the port it listens on (127.0.0.1 only) and runs until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.fakes.smtp import BANNERS, BEHAVIOURS, FakeSMTPServer, with_banner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.serve", description=__doc__.splitlines()[0])
    parser.add_argument("behaviour", choices=sorted(BEHAVIOURS), help="see tests/fakes/smtp.py")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--banner", choices=sorted(BANNERS), help="greet as this MTA instead")
    args = parser.parse_args(argv)
    behaviour = BEHAVIOURS[args.behaviour]
    if args.banner:
        behaviour = with_banner(behaviour, args.banner)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with FakeSMTPServer(behaviour, port=args.port) as server:
        print(f"{args.behaviour}: {behaviour.description}; listening on 127.0.0.1:{server.port}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
