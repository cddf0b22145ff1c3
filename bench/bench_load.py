"""The fleet under load (issue 9): one broker, two balancers, their workers, every session kind.

Why: the system suite (``tests/system/test_system_load.py``) proves every session is served or
refused; this prints the figures behind it (sessions per second, time to first audio p50/p95/p99,
refusals, errors) and what the broker costs, by running the same plan twice in one run: through
the broker to both balancers, and straight at one balancer with the same total slots.

How: the fleet of ``tests/system/fleet.py`` (real ``xtts-broker`` and ``xtts-balancer``
processes on 127.0.0.1, the deterministic ``tone`` backend at ``--ms-per-char`` per character in
real time, ``--workers`` workers of ``--slots`` slots per balancer, no queue) and the driver of
``tests/system/load.py``: ``--ws`` stream-input sessions, ``--multi`` two-context
multi-stream-input sessions and ``--http`` HTTP streams, started over ``--ramp`` seconds, the
websocket ones held open together until all have connected. Every session's audio is read back,
so the table's ``ok`` means "exactly its own audio". A benchmark, not a test: numbers on a shared
machine move with its load, and the load generator shares the machine with the fleet.

    python bench/bench_load.py                       # 160 ws + 50 multi + 30 http, 220 slots
    python bench/bench_load.py --ws 400 --multi 0 --http 0 --slots 100
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

SYSTEM_TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [
    str(SYSTEM_TESTS / "system"),
    str(SYSTEM_TESTS / "balancer"),
    str(SYSTEM_TESTS / "broker"),
]

from fleet import CLIENT_KEY, Fleet, eventually  # noqa: E402
from load import LoadPlan, LoadReport, drive  # noqa: E402
from tones import ToneReader  # noqa: E402


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ws", type=int, default=160)
    parser.add_argument("--multi", type=int, default=50)
    parser.add_argument("--http", type=int, default=30)
    parser.add_argument("--ramp", type=float, default=8.0, help="seconds over which sessions start")
    parser.add_argument("--workers", type=int, default=2, help="workers per balancer")
    parser.add_argument("--slots", type=int, default=55, help="stream slots per worker")
    parser.add_argument("--ms-per-char", type=float, default=20.0)
    return parser.parse_args(argv)


def _run(fleet: Fleet, base: str, plan: LoadPlan, ms_per_char: float) -> LoadReport:
    eventually(fleet.at_rest, "the fleet at rest", 90)
    return asyncio.run(drive(base, CLIENT_KEY, plan, ToneReader(ms_per_char)))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    plan = LoadPlan(args.ws, args.multi, args.http, args.ramp)
    reports: dict[str, LoadReport] = {}
    with tempfile.TemporaryDirectory(prefix="xtts-bench-load-") as tmp:
        directory = Path(tmp)
        voices = directory / "voices"
        voices.mkdir()
        fleet = Fleet(directory, voices)
        fleet.broker.start()
        try:
            options = {"tone_ms_per_char": args.ms_per_char}
            fleet.start_balancer("east", workers=args.workers, slots=args.slots, **options)
            fleet.start_balancer("west", workers=args.workers, slots=args.slots, **options)
            reports["broker -> 2 balancers"] = _run(fleet, fleet.broker.url, plan, args.ms_per_char)
            # The same slots in one balancer, straight: what the broker's hop costs. Direct
            # clients of a balancer in broker mode are refused, so this one is standalone.
            direct = fleet.start_standalone(
                "solo", workers=2 * args.workers, slots=args.slots, **options
            )
            plan2 = LoadPlan(args.ws, args.multi, args.http, args.ramp, first_index=len(plan.kinds))
            reports["direct -> 1 balancer"] = asyncio.run(
                drive(direct.http_url, CLIENT_KEY, plan2, ToneReader(args.ms_per_char))
            )
        finally:
            fleet.stop()
    rows = [name for name, _ in next(iter(reports.values())).rows()]
    columns = {title: dict(report.rows()) for title, report in reports.items()}
    print(f"| | {' | '.join(columns)} |")
    print(f"|---|{'---|' * len(columns)}")
    for row in rows:
        print(
            f"| {row.strip()} | {' | '.join(values.get(row, '') for values in columns.values())} |"
        )
    bad = sum(report.counts["bad"] for report in reports.values())
    print(f"\nsessions with wrong, truncated or foreign audio, or hung: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
