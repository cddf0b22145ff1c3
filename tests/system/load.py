"""The load driver: many sessions of every kind at once through one front door, and the figures.

Sessions are opened over a ramp (``sessions`` spread evenly over ``ramp_s``); the websocket ones
connect, send their first message and then wait at a :class:`Gate` until every one of them has
connected, so the load really peaks at all of them open together; then all send their text and the
HTTP requests go out. Used by ``test_system_load.py`` (which asserts on the outcomes) and by
``bench/bench_load.py`` (which prints the table).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import numpy as np
from sessions import Gate, Outcome, SessionKind, run_session
from tones import ToneReader

__all__ = ["BackgroundLoad", "LoadPlan", "LoadReport", "drive"]


@dataclass(frozen=True)
class LoadPlan:
    """How many sessions of each kind, over how long a ramp."""

    ws: int
    multi: int
    http: int
    ramp_s: float = 5.0
    session_timeout_s: float = 60.0
    first_index: int = 0
    """Tags are unique per index, so rounds of load use distinct ranges."""
    hold: bool = True
    """Hold the websocket sessions' text until all have connected (the peak); ``False``: each
    session speaks as soon as it is open."""

    @property
    def kinds(self) -> list[SessionKind]:
        """Kinds interleaved, so every part of the ramp has every kind."""
        runs: list[list[SessionKind]] = [
            ["ws"] * self.ws,
            ["multi"] * self.multi,
            ["http"] * self.http,
        ]
        mixed = itertools.zip_longest(*runs)
        return [kind for group in mixed for kind in group if kind is not None]


@dataclass
class LoadReport:
    """The outcomes of one run of a plan, and the figures derived from them."""

    outcomes: list[Outcome]
    wall_s: float
    held_together: int | None = None
    """Websocket sessions open at the same time when their text was released (plans that hold)."""
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.counts = Counter(o.status for o in self.outcomes)

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    def ttfa_ms(self) -> dict[str, float]:
        """Time to first audio of the sessions that got audio: p50, p95, p99 (ms)."""
        values = [o.first_audio_s for o in self.outcomes if o.first_audio_s is not None]
        if not values:
            return {}
        p50, p95, p99 = np.percentile(np.array(values) * 1000, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}

    def rows(self) -> list[tuple[str, str]]:
        ttfa = self.ttfa_ms()
        by_kind = Counter((o.kind, o.status) for o in self.outcomes)
        kinds = sorted({o.kind for o in self.outcomes})
        return [
            ("sessions", str(len(self.outcomes))),
            *([("held open together", str(self.held_together))] if self.held_together else []),
            ("wall time", f"{self.wall_s:.1f} s"),
            ("sessions/s", f"{len(self.outcomes) / self.wall_s:.1f}"),
            *[
                (f"{status}", str(self.counts[status]))
                for status in ("ok", "refused", "error", "bad")
            ],
            *[
                (
                    f"  {kind}",
                    " ".join(
                        f"{s}={by_kind[kind, s]}"
                        for s in ("ok", "refused", "error", "bad")
                        if by_kind[kind, s]
                    ),
                )
                for kind in kinds
            ],
            *[(f"first audio {name}", f"{value:.0f} ms") for name, value in ttfa.items()],
        ]

    def table(self) -> str:
        width = max(len(name) for name, _ in self.rows())
        return "\n".join(f"{name:<{width}}  {value}" for name, value in self.rows())


async def drive(base: str, key: str, plan: LoadPlan, reader: ToneReader | None) -> LoadReport:
    """Run ``plan`` against ``base`` and collect every session's outcome (``reader=None``:
    XTTS, whose audio cannot be read back; see ``sessions._judge``)."""
    kinds = plan.kinds
    sockets = sum(1 for kind in kinds if kind != "http")
    gate = Gate(sockets if plan.hold else 0, plan.ramp_s + 15.0)
    if not plan.hold:
        gate.release()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    start = time.monotonic()
    async with httpx.AsyncClient(timeout=plan.session_timeout_s, limits=limits) as http:
        watchdog = asyncio.create_task(gate.watchdog())

        async def one(position: int, kind: SessionKind) -> Outcome:
            await asyncio.sleep(plan.ramp_s * position / max(len(kinds), 1))
            return await run_session(
                kind, base, key, plan.first_index + position, reader, gate, http,
                plan.session_timeout_s,
            )  # fmt: skip

        outcomes = await asyncio.gather(*(one(i, kind) for i, kind in enumerate(kinds)))
        watchdog.cancel()
    report = LoadReport(list(outcomes), time.monotonic() - start)
    if plan.hold:
        report.held_together = sum(
            1
            for o in outcomes
            if o.kind != "http" and o.status == "ok" and o.started < gate.released_at
        )
    return report


class BackgroundLoad:
    """``clients`` concurrent clients, each running sessions back to back (ws, multi, http in
    turn) against ``base`` until :meth:`stop`: the steady load a fault is injected into.

    It runs on an event loop of its own in a thread, so a test can act (kill, stop, restart)
    while it runs. Tags come from ``first_index`` upwards, unique across the run.
    """

    def __init__(
        self, base: str, key: str, clients: int, reader: ToneReader, first_index: int
    ) -> None:
        self._base, self._key, self._clients, self._reader = base, key, clients, reader
        self._indexes = itertools.count(first_index)
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="load", daemon=True
        )
        self.outcomes: list[Outcome] = []

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        """Let every client finish its current session, then return all outcomes."""
        self._stopping.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the load's clients did not finish"
        return self.outcomes

    async def _main(self) -> None:
        gate = Gate(0, 0.0)
        gate.release()
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            await asyncio.gather(*(self._client(n, gate, http) for n in range(self._clients)))

    async def _client(self, number: int, gate: Gate, http: httpx.AsyncClient) -> None:
        kinds: list[SessionKind] = ["ws", "multi", "http"]
        await asyncio.sleep(0.05 * number)  # spread the clients' starts
        for turn in itertools.count(number):
            if self._stopping.is_set():
                return
            kind = kinds[turn % len(kinds)]
            index = next(self._indexes)
            outcome = await run_session(
                kind, self._base, self._key, index, self._reader, gate, http, 30.0
            )  # fmt: skip
            self.outcomes.append(outcome)
            if outcome.status != "ok":
                await asyncio.sleep(0.1)  # back off, as a real client would
