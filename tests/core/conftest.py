"""Session fixtures for the xtts-core unit tests: one tiny checkpoint, loaded once.

Building a model is the slow part of these tests, so the suite writes one ``tiny`` random
checkpoint (2-layer, 64-wide GPT; the HiFi-GAN decoder and speaker encoder at release size) and
loads it once into an :class:`~xtts_core.engine.XttsEngine` on cpu. Tests must treat both as
read-only; a test that needs other files writes its own next to them.

``engine_fast_vocoder`` is the same checkpoint with a narrow HiFi-GAN generator (the release
geometry, hence the same receptive field and sample mapping, but 32 instead of 512 channels):
the streaming tests vocode many windows, which the release-width generator makes slow on a
2-core CPU. It is a real generator with random weights, not a stand-in.

``one_torch_thread`` runs a module's tests with one intra-op thread. These tests run many small
ops; on a 2-core machine shared with other work, two OpenMP threads spin-wait for each other and
made this suite about 5x slower (195 s instead of 35 s in one measurement). The previous thread
count is restored afterwards, so other test modules are unaffected.

torch is imported inside the fixtures only, so a torch-free environment can still collect the
torch-free tests (config, errors, extras).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from xtts_core.engine import XttsEngine
    from xtts_core.voice import Voice

#: Speakers written into the tiny checkpoint's speakers_xtts.pth (the writer's defaults).
SPEAKERS = ("Random Speaker", "Other Speaker")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for the requesting module (see the module doc)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``tiny`` checkpoint directory in the released layout (seed 0, default variant)."""
    pytest.importorskip("torch")
    from xtts_core.random_checkpoint import write_random_checkpoint

    return write_random_checkpoint(tmp_path_factory.mktemp("tiny"), "tiny", seed=0)


@pytest.fixture(scope="session")
def engine(tiny_dir: Path) -> XttsEngine:
    """The tiny checkpoint loaded through the public API on cpu (read-only: do not mutate)."""
    from xtts_core.engine import XttsEngine

    return XttsEngine.from_pretrained(tiny_dir, device="cpu")


@pytest.fixture(scope="session")
def engine_fast_vocoder(tiny_dir: Path) -> XttsEngine:
    """The tiny checkpoint with a narrow (32-channel) HiFi-GAN generator; see the module doc."""
    import torch

    from xtts_core.engine import XttsEngine
    from xtts_core.loader import load_checkpoint
    from xtts_core.model.hifigan import HifiganConfig, HifiganGenerator

    loaded = load_checkpoint(tiny_dir, device="cpu")
    width = loaded.config.decoder.decoder_input_dim
    torch.manual_seed(1)
    narrow = HifiganGenerator.from_config(
        HifiganConfig(in_channels=width, upsample_initial_channel=32)
    )
    loaded.model.hifigan_decoder.waveform_decoder = narrow.eval().requires_grad_(False)
    return XttsEngine(loaded)


@pytest.fixture(scope="session")
def voice(engine: XttsEngine) -> Voice:
    """A named voice of the tiny checkpoint."""
    return engine.speaker(SPEAKERS[0])
