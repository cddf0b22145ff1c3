"""Load on the real model: the broker in front of two balancers running the tiny random XTTS
checkpoint (one worker each, four batched stream slots).

The tone backend (``test_system_load.py``) makes load cheap and the audio checkable; this run
puts the same three session kinds through the real engine (text front end, batched GPT decode,
vocoder, chunking) at a load this 2-core machine can carry: 24 sessions over 8 seconds on 8
slots, each speaking as soon as it is open, so some of them are refused (the broker refuses
when no balancer reports a free slot). A random model's audio cannot be read back, so a session is ``ok``
with a normal close, audio, and an alignment that spells its own text; every session must be
``ok`` or refused, and every slot is free afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet import CLIENT_KEY, Fleet, eventually, two_balancers
from load import LoadPlan, drive

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, model_files: tuple[Path, Path]
) -> Iterator[Fleet]:
    model_dir, voices = model_files
    with two_balancers(
        tmp_path_factory.mktemp("xtts-load"), voices, model_dir, workers=1, slots=4,
        max_queue=16, xtts=True, stall_timeout_s=60.0,
    ) as fleet:  # fmt: skip
        yield fleet


def test_the_real_engine_serves_or_refuses_every_session(fleet: Fleet) -> None:
    plan = LoadPlan(ws=12, multi=4, http=8, ramp_s=8.0, session_timeout_s=120.0, hold=False)
    report = asyncio.run(drive(fleet.broker.url, CLIENT_KEY, plan, None))
    print(f"\n{report.table()}")
    wrong = [o for o in report.outcomes if o.status not in ("ok", "refused")]
    assert not wrong, f"{len(wrong)} sessions neither served nor refused, e.g. {wrong[:3]}"
    assert report.counts["ok"] >= 8
    eventually(fleet.at_rest, "every slot free again after the load", 30)
